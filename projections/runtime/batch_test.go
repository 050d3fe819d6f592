package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/readmodel"
	"github.com/eventcrm/crm/projections/runtime"
)

// streamVersions is a read model of the kit (so it has the batch path): per stream, how
// many events it has and the position of the last. It refuses test.poison.v1.
type streamVersions struct {
	streams *readmodel.Table[streamRow]
}

type streamRow struct {
	stream string
	events int64
	last   int64
}

func newStreamVersions() *readmodel.Model {
	m := &streamVersions{streams: readmodel.NewTable("streams", 1,
		readmodel.Text("stream", func(r *streamRow) *string { return &r.stream }),
		readmodel.BigInt("events", func(r *streamRow) *int64 { return &r.events }),
		readmodel.BigInt("last", func(r *streamRow) *int64 { return &r.last }))}
	return readmodel.Define(readmodel.Spec{Name: "stream_versions", Version: 1,
		Tables: []readmodel.AnyTable{m.streams}, Fold: m.fold})
}

func (m *streamVersions) fold(e *readmodel.Event, rows *readmodel.Rows) error {
	if e.Type == "test.poison.v1" {
		return errors.New("cannot apply this")
	}
	r, _ := m.streams.Get(rows, e.Stream)
	r.stream, r.events, r.last = e.Stream, r.events+1, e.Position
	m.streams.Upsert(rows, r)
	return nil
}

// eventsOf returns how many events of stream p applied (both projections keep it).
func eventsOf(t testing.TB, db *projections.DB, p projections.Projection, stream string) int64 {
	t.Helper()
	tables := projections.TablesFor(p, "")
	query := `SELECT coalesce(max(events), 0) FROM ` + tables.Name("streams") + ` WHERE stream = ?`
	if _, ok := p.(*projectiontest.Counter); ok {
		query = `SELECT coalesce(sum(n), 0) FROM ` + tables.Name("counts") + ` WHERE stream = ?`
	}
	var n int64
	if err := db.SQL.QueryRow(db.Dialect.Rebind(query), stream).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// commits records the transactions a runner committed (the hook after each commit).
type commits struct {
	mu    sync.Mutex
	sizes []int // events per transaction, in commit order
	last  int64 // the highest position committed
}

func (c *commits) hook(_ context.Context, events []eventstore.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sizes = append(c.sizes, len(events))
	for _, e := range events {
		c.last = max(c.last, e.Position)
	}
	return nil
}

// committed reports whether the hook has run after the commit of position pos.
func (c *commits) committed(pos int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last >= pos
}

func (c *commits) load() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.sizes)
}

func sum(ns []int) int {
	total := 0
	for _, n := range ns {
		total += n
	}
	return total
}

// waitHook waits until the hook after the commit of position pos has run.
func waitHook(t *testing.T, c *commits, pos int64) {
	t.Helper()
	projectiontest.WaitUntil(t, 30*time.Second, "the hook after the last commit", func() bool {
		return c.committed(pos)
	})
}

// waitLive waits until r runs live with no lag.
func waitLive(t *testing.T, r *runtime.Runner) {
	t.Helper()
	projectiontest.WaitUntil(t, 30*time.Second, "runner live", func() bool {
		st, err := r.Status(context.Background())
		return err == nil && st[0].State == runtime.StateRunning && st[0].Lag.Events == 0
	})
}

// Events delivered live that are committed together are applied in one transaction, with
// one checkpoint write: through the batch path of a read model of the kit, one by one in
// that transaction for a projection without one. With LiveBatch 1 (the runner before live
// batches) each is a transaction of its own.
func TestLiveEventsAreAppliedInBatches(t *testing.T) {
	cases := []struct {
		name      string
		p         func() projections.Projection
		liveBatch int
		want      []int
	}{
		{"kit read model", func() projections.Projection { return newStreamVersions() }, 0, []int{40}},
		{"projection without a batch path", func() projections.Projection { return &projectiontest.Counter{} }, 0, []int{40}},
		{"batches bounded", func() projections.Projection { return newStreamVersions() }, 16, []int{16, 16, 8}},
		{"one by one", func() projections.Projection { return newStreamVersions() }, 1, slices.Repeat([]int{1}, 40)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			projectiontest.ForEachBackend(t, func(t *testing.T, store eventstore.Store, db *projections.DB) {
				p := tc.p()
				cfg := projectiontest.RunnerConfig(store, db)
				cfg.LiveBatch = tc.liveBatch
				r := projectiontest.NewRunner(t, cfg, p)
				var c commits
				runtime.InjectFaults(r, nil, c.hook)
				projectiontest.Start(t, r)
				waitLive(t, r)
				// One append: the 40 events are committed before the first is delivered.
				projectiontest.AppendTo(t, store, "s-a", slices.Repeat([]string{"test.a.v1"}, 40)...)
				projectiontest.WaitCheckpoint(t, db, p, projectiontest.LastPosition(t, store))
				// The hook runs just after the commit that WaitCheckpoint saw.
				projectiontest.WaitUntil(t, 30*time.Second, "the hook after the last commit", func() bool {
					return sum(c.load()) == 40
				})
				if got := c.load(); !slices.Equal(got, tc.want) {
					t.Fatalf("live transactions of %v events, want %v", got, tc.want)
				}
				if n := eventsOf(t, db, p, "s-a"); n != 40 {
					t.Fatalf("%d events applied, want 40", n)
				}
				projectiontest.AssertSameAsRebuild(t, db, store, p)
			})
		})
	}
}

// A refused event inside a live batch is parked alone, with the later events of its stream
// behind it; the other streams of the batch are applied, and the batches after it are
// batches again.
func TestRefusedEventInALiveBatchParksOnlyItsStream(t *testing.T) {
	for _, mk := range []func() projections.Projection{
		func() projections.Projection { return newStreamVersions() },
		func() projections.Projection {
			return &projectiontest.Counter{Refuse: func(e eventstore.Event) error {
				if e.Type == "test.poison.v1" {
					return errors.New("cannot apply this")
				}
				return nil
			}}
		},
	} {
		t.Run(mk().Name(), func(t *testing.T) {
			projectiontest.ForEachBackend(t, func(t *testing.T, store eventstore.Store, db *projections.DB) {
				p := mk()
				cfg := projectiontest.RunnerConfig(store, db)
				retries := cfg.Retry.MaxRetries
				r := projectiontest.NewRunner(t, cfg, p)
				// The first live transaction waits after its commit until the events of the
				// batch are in the log: the next delivered event then starts a batch of them.
				hold, first := make(chan struct{}), sync.Once{}
				var c commits
				runtime.InjectFaults(r, nil, func(ctx context.Context, events []eventstore.Event) error {
					if !runtime.InCatchUp(ctx) {
						first.Do(func() { <-hold })
					}
					return c.hook(ctx, events)
				})
				projectiontest.Start(t, r)
				waitLive(t, r)
				projectiontest.AppendTo(t, store, "s-x", "test.a.v1")
				projectiontest.AppendTo(t, store, "s-a", "test.a.v1")
				poison := projectiontest.AppendTo(t, store, "s-a", "test.poison.v1")[0]
				projectiontest.AppendTo(t, store, "s-b", "test.a.v1", "test.b.v1")
				behind := projectiontest.AppendTo(t, store, "s-a", "test.a.v1")[0]
				projectiontest.AppendTo(t, store, "s-c", "test.a.v1")
				close(hold)
				projectiontest.WaitCheckpoint(t, db, p, projectiontest.LastPosition(t, store))

				parked := parkedByEvent(t, r)
				if len(parked) != 2 {
					t.Fatalf("%d events parked, want 2: %+v", len(parked), parked)
				}
				if got := parked[poison.ID]; got.Attempts != retries+1 || got.Stream != "s-a" {
					t.Errorf("refused event parked as %+v, want %d attempts", got, retries+1)
				}
				if got, ok := parked[behind.ID]; !ok || got.Attempts != 0 {
					t.Errorf("event behind it parked as %+v", got)
				}
				for stream, want := range map[string]int64{"s-x": 1, "s-a": 1, "s-b": 2, "s-c": 1} {
					if n := eventsOf(t, db, p, stream); n != want {
						t.Errorf("%s: %d events applied, want %d", stream, n, want)
					}
				}

				// Later events come in a batch again. The hook runs just after the commit
				// that WaitCheckpoint saw: wait for it before counting the transactions.
				waitHook(t, &c, projectiontest.LastPosition(t, store))
				before := len(c.load())
				projectiontest.AppendTo(t, store, "s-d", slices.Repeat([]string{"test.a.v1"}, 10)...)
				projectiontest.WaitCheckpoint(t, db, p, projectiontest.LastPosition(t, store))
				waitHook(t, &c, projectiontest.LastPosition(t, store))
				if got := c.load()[before:]; !slices.Equal(got, []int{10}) {
					t.Errorf("live transactions of %v events after the parking, want one of 10", got)
				}
				if n := eventsOf(t, db, p, "s-d"); n != 10 {
					t.Errorf("s-d: %d events applied, want 10", n)
				}
			})
		})
	}
}

// A live batch that fails on the database (not on an event) is not parked: it is retried,
// then applied.
func TestLiveBatchStorageFailureIsRetried(t *testing.T) {
	projectiontest.ForEachBackend(t, func(t *testing.T, store eventstore.Store, db *projections.DB) {
		p := newStreamVersions()
		r := projectiontest.NewRunner(t, projectiontest.RunnerConfig(store, db), p)
		var failed sync.Once
		errDown := fmt.Errorf("database down: %w", context.DeadlineExceeded)
		runtime.InjectFaults(r, func(ctx context.Context, e eventstore.Event) error {
			var err error
			if !runtime.InCatchUp(ctx) {
				failed.Do(func() { err = errDown })
			}
			return err
		}, nil)
		projectiontest.Start(t, r)
		waitLive(t, r)
		projectiontest.AppendTo(t, store, "s-a", slices.Repeat([]string{"test.a.v1"}, 20)...)
		projectiontest.WaitCheckpoint(t, db, p, projectiontest.LastPosition(t, store))
		if parked := parkedByEvent(t, r); len(parked) != 0 {
			t.Fatalf("parked %+v", parked)
		}
		if n := eventsOf(t, db, p, "s-a"); n != 20 {
			t.Fatalf("%d events applied, want 20", n)
		}
	})
}

// A projection far behind catches up as a rebuild builds, in place: batches of the builder
// (counted through its commit hook), with the refused events parked with their streams,
// then runs live; the read model is what a rebuild gives.
func TestFarBehindCatchUpBuildsInPlace(t *testing.T) {
	for _, mk := range []func() projections.Projection{
		func() projections.Projection { return newStreamVersions() },
		func() projections.Projection {
			return &projectiontest.Counter{Refuse: func(e eventstore.Event) error {
				if e.Type == "test.poison.v1" {
					return errors.New("cannot apply this")
				}
				return nil
			}}
		},
	} {
		t.Run(mk().Name(), func(t *testing.T) {
			projectiontest.ForEachBackend(t, func(t *testing.T, store eventstore.Store, db *projections.DB) {
				p := mk()
				for i := range 12 {
					projectiontest.AppendTo(t, store, fmt.Sprintf("s-%d", i), slices.Repeat([]string{"test.a.v1"}, 50)...)
				}
				poison := projectiontest.AppendTo(t, store, "s-3", "test.poison.v1")[0]
				behind := projectiontest.AppendTo(t, store, "s-3", "test.a.v1")[0]
				projectiontest.AppendTo(t, store, "s-4", "test.b.v1")
				cfg := projectiontest.RunnerConfig(store, db)
				cfg.BuildBehind = 500
				r := projectiontest.NewRunner(t, cfg, p)
				var c commits
				runtime.InjectFaults(r, nil, c.hook)
				var built []int64
				var mu sync.Mutex
				runtime.OnBuiltCommit(r, func(cp int64) {
					mu.Lock()
					built = append(built, cp)
					mu.Unlock()
				})
				projectiontest.Start(t, r)
				head := projectiontest.LastPosition(t, store)
				projectiontest.WaitCheckpoint(t, db, p, head)
				// The build's hook runs just after its commit, which WaitCheckpoint may see
				// first.
				projectiontest.WaitUntil(t, 30*time.Second, fmt.Sprintf("the last build commit at %d", head), func() bool {
					mu.Lock()
					defer mu.Unlock()
					return len(built) > 0 && built[len(built)-1] == head
				})
				parked := parkedByEvent(t, r)
				if len(parked) != 2 || parked[poison.ID].Stream != "s-3" || parked[behind.ID].Attempts != 0 {
					t.Fatalf("parked %+v, want the refused event and the one behind it", parked)
				}
				for stream, want := range map[string]int64{"s-3": 50, "s-4": 51, "s-0": 50} {
					if n := eventsOf(t, db, p, stream); n != want {
						t.Errorf("%s: %d events applied, want %d", stream, n, want)
					}
				}
				// The status is the runner's own view, brought up to date just after the
				// commit that WaitCheckpoint saw.
				projectiontest.WaitUntil(t, 30*time.Second, "2 parked in the status", func() bool {
					st, err := r.Status(context.Background())
					return err == nil && st[0].Parked == 2
				})
				waitLive(t, r)
				projectiontest.AppendTo(t, store, "s-5", "test.a.v1", "test.b.v1")
				projectiontest.WaitCheckpoint(t, db, p, projectiontest.LastPosition(t, store))
				if n := eventsOf(t, db, p, "s-5"); n != 52 {
					t.Errorf("s-5: %d events applied live, want 52", n)
				}
			})
		})
	}
}
