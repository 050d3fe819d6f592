package runtime_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/runtime"
)

// buildBatch is the batch of the builds in place of these tests: the reads of that size are
// the builds' (the live path and the catch-up read in batches of other sizes).
const buildBatch = 97

// buildReads is the real store, counting the events its reads of buildBatch events
// returned: what the builds in place read of the log.
type buildReads struct {
	eventstore.Store
	events atomic.Int64
}

func (s *buildReads) ReadAll(ctx context.Context, after int64, limit int) ([]eventstore.Event, error) {
	events, err := s.Store.ReadAll(ctx, after, limit)
	if limit == buildBatch {
		s.events.Add(int64(len(events)))
	}
	return events, err
}

func (s *buildReads) Unwrap() eventstore.Store { return s.Store }

// A first start over a log builds every read model far behind from one read of the log:
// each event is read (and opened) once for all of them, from the lowest checkpoint, and
// each applies only what lies past its own checkpoint (one was applied up to the middle of
// the log before, one is already at the head and is not built). Every read model then
// equals a rebuild, and runs live.
//
// Alone on its database, and sharing it by lease (on SQLite every lease is the runner's at
// once, on PostgreSQL this runner takes them all): the leases taken at the start are built
// from the same read.
func TestFirstStartBuildsEveryReadModelFromOneReadOfTheLog(t *testing.T) {
	for _, shared := range []bool{false, true} {
		t.Run(map[bool]string{false: "alone", true: "by_lease"}[shared], func(t *testing.T) {
			firstStartFromOneRead(t, shared)
		})
	}
}

func firstStartFromOneRead(t *testing.T, shared bool) {
	projectiontest.ForEachBackend(t, func(t *testing.T, inner eventstore.Store, db *projections.DB) {
		ctx := context.Background()
		for i := range 12 {
			projectiontest.AppendTo(t, inner, fmt.Sprintf("s-%d", i), slices.Repeat([]string{"test.a.v1", "test.b.v1"}, 25)...)
		}
		log := projectiontest.AllEvents(t, inner)
		head := log[len(log)-1].Position

		fresh, middle, current := newStreamVersions(), &projectiontest.Counter{}, &projectiontest.Counter{ProjectionName: "caught_up"}
		if err := db.EnsureRegistry(ctx); err != nil {
			t.Fatal(err)
		}
		for p, upTo := range map[projections.Projection]int{middle: len(log) / 2, current: len(log)} {
			tables := projections.TablesFor(p, "")
			if err := db.EnsureSchema(ctx, p, tables); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Apply(ctx, p, tables, log[:upTo]); err != nil {
				t.Fatal(err)
			}
		}

		store := &buildReads{Store: inner}
		cfg := projectiontest.RunnerConfig(inner, db)
		cfg.Store = store // the runner's own reads; the feed's subscribers read inner
		cfg.BuildBehind = 100
		cfg.BuildBatch = buildBatch
		if shared {
			cfg.Leases = leases(t, db, "node-1")
		}
		r := projectiontest.NewRunner(t, cfg, fresh, middle, current)
		projectiontest.Start(t, r)
		for _, p := range []projections.Projection{fresh, middle, current} {
			projectiontest.WaitCheckpoint(t, db, p, head)
		}
		if got := store.events.Load(); got != head {
			t.Errorf("the builds read %d events of the log, want %d: the log read once", got, head)
		}

		projectiontest.AppendTo(t, inner, "s-live", "test.a.v1", "test.b.v1")
		head = projectiontest.LastPosition(t, inner)
		for _, p := range []projections.Projection{fresh, middle, current} {
			projectiontest.WaitCheckpoint(t, db, p, head)
			projectiontest.AssertSameAsRebuild(t, db, inner, p)
		}
	})
}

// A build in place whose commits are further apart than StallAfter moves the feed all the
// same: while it reads the log neither the feed nor any projection is reported stalled
// (they are catching up), and the runner never logs the feed as stalled.
func TestBuildWithCommitsFurtherApartThanStallAfterIsNoStall(t *testing.T) {
	projectiontest.ForEachBackend(t, func(t *testing.T, store eventstore.Store, db *projections.DB) {
		for i := range 6 {
			projectiontest.AppendTo(t, store, fmt.Sprintf("s-%d", i), slices.Repeat([]string{"test.a.v1"}, 50)...)
		}
		head := projectiontest.LastPosition(t, store)
		p := &projectiontest.Counter{}
		cfg := projectiontest.RunnerConfig(store, db)
		cfg.BuildBehind = 100
		cfg.BuildBatch = buildBatch
		cfg.HeadPoll = 5 * time.Millisecond
		cfg.StallAfter = 100 * time.Millisecond
		logs := &stallLog{}
		cfg.Logger = logs
		r := projectiontest.NewRunner(t, cfg, p)
		var commits atomic.Int64
		runtime.OnBuiltCommit(r, func(int64) {
			commits.Add(1)
			time.Sleep(4 * cfg.StallAfter) // the next commit comes well after StallAfter
		})

		var (
			mu     sync.Mutex
			seen   []string
			stop   = make(chan struct{})
			polled = make(chan struct{})
		)
		go func() {
			defer close(polled)
			for {
				select {
				case <-stop:
					return
				case <-time.After(2 * time.Millisecond):
				}
				list, feed, err := r.Overview(context.Background())
				if err != nil {
					continue
				}
				mu.Lock()
				if feed.Stalled {
					seen = append(seen, fmt.Sprintf("feed stalled %+v", feed))
				}
				for _, st := range list {
					if st.State == runtime.StateStalled {
						seen = append(seen, fmt.Sprintf("%s stalled at %d", st.Name, st.Checkpoint))
					}
				}
				mu.Unlock()
			}
		}()
		projectiontest.Start(t, r)
		projectiontest.WaitCheckpoint(t, db, p, head)
		close(stop)
		<-polled
		if n := commits.Load(); n < 3 {
			t.Fatalf("%d commits of the build, want at least 3", n)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(seen) > 0 {
			t.Errorf("reported stalled during the build: %v", seen[:min(len(seen), 5)])
		}
		if logs.stalled.Load() {
			t.Error(`logged "The feed is stalled" during the build`)
		}
		projectiontest.AssertSameAsRebuild(t, db, store, p)
	})
}

// stallLog is a logger that remembers whether the runner logged the feed as stalled.
type stallLog struct {
	watermill.NopLogger
	stalled atomic.Bool
}

func (l *stallLog) Error(msg string, err error, fields watermill.LogFields) {
	if strings.HasPrefix(msg, "The feed is stalled") {
		l.stalled.Store(true)
	}
}

func (l *stallLog) With(watermill.LogFields) watermill.LoggerAdapter { return l }

// A first start with more read models far behind than half the read-model pool holds builds
// them all all the same: the build writes on at most half the pool's connections, the sets
// taking turns on them, and the other half serves the lease renewals, the fencing checks and
// the questions asked meanwhile. With a connection kept per set, a pool of four and six sets
// stood still: four sets held every connection, the two others waited for one for ever, and
// the leases were lost for want of a connection to renew them.
func TestFirstStartWithASmallPoolBuildsEveryReadModel(t *testing.T) {
	projectiontest.ForEachBackend(t, func(t *testing.T, inner eventstore.Store, db *projections.DB) {
		const pool = 4
		db.SQL.SetMaxOpenConns(pool)
		for i := range 8 {
			projectiontest.AppendTo(t, inner, fmt.Sprintf("s-%d", i), slices.Repeat([]string{"test.a.v1", "test.b.v1"}, 20)...)
		}
		head := projectiontest.LastPosition(t, inner)

		var ps []projections.Projection
		for i := range pool + 2 {
			ps = append(ps, &projectiontest.Counter{ProjectionName: fmt.Sprintf("counter_%d", i)})
		}
		cfg := projectiontest.RunnerConfig(inner, db)
		cfg.BuildBehind = 100
		cfg.BuildBatch = buildBatch
		cfg.Leases = leases(t, db, "node-1")
		r := projectiontest.NewRunner(t, cfg, ps...)
		projectiontest.Start(t, r)

		// A build standing still holds every connection, so the checkpoints are read under a
		// deadline: the test fails rather than waits with it.
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		for _, p := range ps {
			for {
				cp, err := db.Checkpoint(ctx, projections.TablesFor(p, ""))
				if ctx.Err() != nil {
					t.Fatalf("%s not at %d after 90 s with a pool of %d: the build stands still", p.Name(), head, pool)
				}
				if err != nil {
					t.Fatalf("checkpoint of %s: %v", p.Name(), err)
				}
				if cp >= head {
					break
				}
				if projections.Sleep(ctx, 10*time.Millisecond) != nil {
					t.Fatalf("%s at %d, not at %d after 90 s with a pool of %d: the build stands still", p.Name(), cp, head, pool)
				}
			}
		}
		for _, p := range ps {
			projectiontest.AssertSameAsRebuild(t, db, inner, p)
		}
	})
}
