package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/runtime"
)

// appliedVersion returns the last version of stream that p applied.
func appliedVersion(t testing.TB, db *projections.DB, p projections.Projection, stream string) int64 {
	t.Helper()
	var version int64
	err := db.SQL.QueryRow(db.Dialect.Rebind(`SELECT coalesce(max(version), 0) FROM `+projections.TablesFor(p, "").Name("streams")+` WHERE stream = ?`), stream).Scan(&version)
	if err != nil {
		t.Fatal(err)
	}
	return version
}

// parkedByEvent maps event ids to their parked rows.
func parkedByEvent(t testing.TB, r *runtime.Runner) map[string]projections.ParkedEvent {
	t.Helper()
	list, err := r.Parked(context.Background(), projections.ParkedFilter{})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]projections.ParkedEvent{}
	for _, p := range list {
		m[p.EventID] = p
	}
	return m
}

func TestRefusedEventIsParkedAndItsStreamWaitsBehindIt(t *testing.T) {
	projectiontest.ForEachBackend(t, func(t *testing.T, store eventstore.Store, db *projections.DB) {
		ctx := context.Background()
		var broken atomic.Bool
		broken.Store(true)
		p := &projectiontest.Counter{Refuse: func(e eventstore.Event) error {
			if !broken.Load() {
				return nil
			}
			switch e.Type {
			case "test.poison.v1":
				return errors.New("cannot apply this")
			case "test.panic.v1":
				panic("boom")
			}
			return nil
		}}
		cfg := projectiontest.RunnerConfig(store, db)
		retries := cfg.Retry.MaxRetries

		// Written before the runner starts: the catch-up meets the refused events.
		projectiontest.AppendTo(t, store, "s-a", "test.a.v1")
		a2 := projectiontest.AppendTo(t, store, "s-a", "test.poison.v1")[0]
		projectiontest.AppendTo(t, store, "s-b", "test.a.v1", "test.b.v1")
		a3 := projectiontest.AppendTo(t, store, "s-a", "test.a.v1")[0]
		c := projectiontest.AppendTo(t, store, "s-c", "test.panic.v1", "test.a.v1")
		r := projectiontest.NewRunner(t, cfg, p)
		stop := projectiontest.Start(t, r)
		projectiontest.WaitCheckpoint(t, db, p, projectiontest.LastPosition(t, store))

		parked := parkedByEvent(t, r)
		if len(parked) != 4 {
			t.Fatalf("%d events parked, want 4: %+v", len(parked), parked)
		}
		if got := parked[a2.ID]; got.Attempts != retries+1 || got.Error == "" || got.Stream != "s-a" || got.Position != a2.Position || got.Projection != p.Name() {
			t.Errorf("refused event parked as %+v, want %d attempts", got, retries+1)
		}
		if got := parked[a3.ID]; got.Attempts != 0 || !strings.Contains(got.Error, "waiting behind") {
			t.Errorf("event behind it parked as %+v", got)
		}
		if got := parked[c[0].ID]; got.Attempts != retries+1 || got.Error != "panic: boom" {
			t.Errorf("panicking event parked as %+v", got)
		}
		if got := parked[c[1].ID]; got.Attempts != 0 {
			t.Errorf("event behind the panic parked as %+v", got)
		}
		if v := appliedVersion(t, db, p, "s-a"); v != 1 {
			t.Errorf("s-a applied up to version %d, want 1", v)
		}
		if v := appliedVersion(t, db, p, "s-b"); v != 2 {
			t.Errorf("s-b applied up to version %d, want 2", v)
		}

		// After a restart, the blocked streams are known again; live events of s-a wait, the
		// other streams go on, and a refused live event is parked too.
		stop()
		r = projectiontest.NewRunner(t, cfg, p)
		stop = projectiontest.Start(t, r)
		a4 := projectiontest.AppendTo(t, store, "s-a", "test.b.v1")[0]
		projectiontest.AppendTo(t, store, "s-b", "test.c.v1")
		d := projectiontest.AppendTo(t, store, "s-d", "test.poison.v1")[0]
		projectiontest.WaitCheckpoint(t, db, p, projectiontest.LastPosition(t, store))
		parked = parkedByEvent(t, r)
		if _, ok := parked[a4.ID]; !ok || len(parked) != 6 {
			t.Fatalf("after live events, parked %+v", parked)
		}
		if got := parked[d.ID]; got.Attempts != retries+1 {
			t.Errorf("refused live event parked as %+v", got)
		}
		if v := appliedVersion(t, db, p, "s-b"); v != 3 {
			t.Errorf("s-b applied up to version %d, want 3", v)
		}
		// The status is the runner's own view, brought up to date just after the commit that
		// WaitCheckpoint saw, and its state leaves catching_up just after the checkpoint
		// reaches the head: wait until it has caught up too.
		var st []runtime.Status
		for i := 0; ; i++ {
			var err error
			if st, err = r.Status(ctx); err != nil {
				t.Fatal(err)
			}
			if st[0].Checkpoint == st[0].Head && st[0].State == runtime.StateRunning || i == 500 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if st[0].Parked != 6 || st[0].State != runtime.StateRunning {
			t.Errorf("status %+v", st[0])
		}

		// An event parked behind another cannot be retried alone.
		_, err := r.RetryParked(ctx, parked[a3.ID].ID)
		var nf *projections.NotFirstError
		if !errors.As(err, &nf) || !errors.Is(err, projections.ErrNotFirstParked) || nf.First != parked[a2.ID].ID {
			t.Fatalf("retry of an event behind another: %v", err)
		}
		// Still refused: the retry records the new attempt and changes nothing else.
		res, err := r.RetryParked(ctx, parked[a2.ID].ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Applied) != 0 || res.Failed == nil || res.Failed.Attempts != retries+2 || res.StillParked != 3 {
			t.Fatalf("failed retry: %+v", res)
		}
		if got := parkedByEvent(t, r)[a2.ID]; got.Attempts != retries+2 {
			t.Fatalf("after a failed retry, parked as %+v", got)
		}

		// Fixed: the retry applies the event and those behind it, in stream order, and the
		// tables' change count moves (answers kept for the state before are not reused).
		broken.Store(false)
		before, err := r.Changes(p.Name())
		if err != nil {
			t.Fatal(err)
		}
		res, err = r.RetryParked(ctx, parked[a2.ID].ID)
		if err != nil {
			t.Fatal(err)
		}
		if after, _ := r.Changes(p.Name()); after == before {
			t.Errorf("changes stayed at %d after a retry applied events", after)
		}
		var ids []string
		for _, a := range res.Applied {
			ids = append(ids, a.EventID)
		}
		if strings.Join(ids, ",") != strings.Join([]string{a2.ID, a3.ID, a4.ID}, ",") || res.Failed != nil || res.StillParked != 0 {
			t.Fatalf("retry applied %v (%+v), want a2, a3, a4", ids, res)
		}
		if v := appliedVersion(t, db, p, "s-a"); v != 4 {
			t.Errorf("s-a applied up to version %d, want 4", v)
		}
		// The stream is free again: its next event is applied live.
		projectiontest.AppendTo(t, store, "s-a", "test.c.v1")
		projectiontest.WaitCheckpoint(t, db, p, projectiontest.LastPosition(t, store))
		if v := appliedVersion(t, db, p, "s-a"); v != 5 {
			t.Errorf("s-a applied up to version %d, want 5", v)
		}
		if _, err := r.RetryParked(ctx, parked[a2.ID].ID); !errors.Is(err, projections.ErrParkedNotFound) {
			t.Fatalf("retry of an applied event: %v", err)
		}
		for _, ev := range []eventstore.Event{c[0], d} {
			if res, err := r.RetryParked(ctx, parked[ev.ID].ID); err != nil || res.Failed != nil {
				t.Fatalf("retry %s: %+v, %v", ev.ID, res, err)
			}
		}
		if left := parkedByEvent(t, r); len(left) != 0 {
			t.Fatalf("still parked: %+v", left)
		}
		st, err = r.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st[0].Parked != 0 {
			t.Errorf("status after the retries: %+v", st[0])
		}
		stop()
		// Applied in stream order, every event once: the same as a rebuild.
		projectiontest.AssertSameAsRebuild(t, db, store, p)
	})
}

func TestFreshnessAndStatus(t *testing.T) {
	projectiontest.ForEachBackend(t, func(t *testing.T, store eventstore.Store, db *projections.DB) {
		ctx := context.Background()
		p := &projectiontest.Counter{}
		first := projectiontest.AppendTo(t, store, "s-a", "test.a.v1", "test.b.v1")[0]
		projectiontest.AppendTo(t, store, "s-b", "test.a.v1")
		head := projectiontest.LastPosition(t, store)
		now := time.Now().Add(time.Hour)
		cfg := projectiontest.RunnerConfig(store, db)
		cfg.Now = func() time.Time { return now }
		r := projectiontest.NewRunner(t, cfg, p)
		if err := r.Init(ctx); err != nil {
			t.Fatal(err)
		}

		f, err := r.Freshness(ctx, p.Name())
		if err != nil {
			t.Fatal(err)
		}
		wantSeconds := math.Round(now.Sub(first.RecordedAt).Seconds()*1000) / 1000
		if f.Position != 0 || f.Head != head || f.Lag.Events != head || f.Lag.Seconds != wantSeconds || f.Stale {
			t.Fatalf("before running: %+v, want head %d and %.3f s of lag", f, head, wantSeconds)
		}
		st, err := r.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := runtime.Status{Name: p.Name(), Version: 1, TableSet: "event_counts_v1_", Group: "projection:event_counts_v1",
			Checkpoint: 0, Head: head, Lag: f.Lag, State: runtime.StateCatchingUp}
		if st[0] != want {
			t.Fatalf("status before running:\n got %+v\nwant %+v", st[0], want)
		}
		begin := time.Now()
		f, err = r.WaitFor(ctx, p.Name(), head, 50*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if !f.Stale || f.MinPosition != head || time.Since(begin) < 50*time.Millisecond {
			t.Fatalf("waiting for a position a stopped projection cannot reach: %+v after %v", f, time.Since(begin))
		}

		stop := projectiontest.Start(t, r)
		f, err = r.WaitFor(ctx, p.Name(), head, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if f.Stale || f.Position < head || f.Lag != (runtime.Lag{}) {
			t.Fatalf("after the wait: %+v", f)
		}
		// A position written while the client waits.
		go func() {
			time.Sleep(20 * time.Millisecond)
			projectiontest.AppendTo(t, store, "s-c", "test.a.v1")
		}()
		f, err = r.WaitFor(ctx, p.Name(), head+1, 10*time.Second)
		if err != nil || f.Stale {
			t.Fatalf("waiting for a live event: %+v, %v", f, err)
		}
		projectiontest.WaitUntil(t, 10*time.Second, "state running", func() bool {
			st, err := r.Status(ctx)
			return err == nil && st[0].State == runtime.StateRunning && st[0].Lag.Events == 0
		})
		if _, err := r.Freshness(ctx, "nope"); !errors.Is(err, projections.ErrUnknownProjection) {
			t.Fatalf("unknown projection: %v", err)
		}

		// The read-model database goes away: the projection reports failed.
		db.SQL.Close()
		projectiontest.AppendTo(t, store, "s-c", "test.b.v1")
		projectiontest.WaitUntil(t, 10*time.Second, "state failed", func() bool {
			st, err := r.Status(ctx)
			return err == nil && st[0].State == runtime.StateFailed && st[0].Error != ""
		})
		stop()
	})
}

func TestNewRunnerRefusesBadConfigurations(t *testing.T) {
	_, err := runtime.NewRunner(runtime.RunnerConfig{}, &projectiontest.Counter{ProjectionName: "Bad-Name"}, &projectiontest.Counter{}, &projectiontest.Counter{})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"no read-model database", "no event store", "no subscriber", "no message decoder", "snake_case", "registered twice"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// TestLiveProjectionFarBehindReadsTheLogInBatches: a live projection that finds itself more
// than CatchingUpLag behind the head stops applying events one transaction each and reads the
// log in batches up to the head; the messages of the events it applied that way are
// acknowledged as duplicates, and the read model is what a rebuild gives.
func TestLiveProjectionFarBehindReadsTheLogInBatches(t *testing.T) {
	projectiontest.ForEachBackend(t, func(t *testing.T, store eventstore.Store, db *projections.DB) {
		p := &projectiontest.Counter{}
		cfg := projectiontest.RunnerConfig(store, db)
		cfg.CatchingUpLag, cfg.CatchUpBatch = 50, 200
		r := projectiontest.NewRunner(t, cfg, p)
		var batched, single atomic.Int64
		runtime.InjectFaults(r, nil, func(ctx context.Context, events []eventstore.Event) error {
			if runtime.InCatchUp(ctx) {
				batched.Add(int64(len(events)))
			} else {
				single.Add(int64(len(events)))
			}
			return nil
		})
		projectiontest.Start(t, r) // live on an empty log
		types := make([]string, 100)
		for i := range types {
			types[i] = "test.a.v1"
		}
		for i := range 30 {
			projectiontest.AppendTo(t, store, fmt.Sprintf("s-%d", i), types...)
		}
		projectiontest.WaitCheckpoint(t, db, p, projectiontest.LastPosition(t, store))
		if b, s := batched.Load(), single.Load(); b < 1000 || b+s != 3000 {
			t.Fatalf("%d events applied in batches, %d one by one; want most of the 3000 in batches", b, s)
		}
		projectiontest.AssertSameAsRebuild(t, db, store, p)
	})
}

// readCounter counts the reads of the whole log.
type readCounter struct {
	eventstore.Store
	reads atomic.Int64
}

func (c *readCounter) ReadAll(ctx context.Context, after int64, limit int) ([]eventstore.Event, error) {
	c.reads.Add(1)
	return c.Store.ReadAll(ctx, after, limit)
}

// The answers of a projection that stays at one checkpoint share one reading of the oldest
// event it has not applied: a hundred readers do not each read the log for their lag.
func TestFreshnessReadsTheLogOncePerCheckpoint(t *testing.T) {
	projectiontest.ForEachBackend(t, func(t *testing.T, store eventstore.Store, db *projections.DB) {
		ctx := context.Background()
		p := &projectiontest.Counter{}
		first := projectiontest.AppendTo(t, store, "s-a", "test.a.v1", "test.b.v1")[0]
		now := time.Now().Add(time.Hour)
		counted := &readCounter{Store: store}
		cfg := projectiontest.RunnerConfig(counted, db)
		cfg.Now = func() time.Time { return now }
		r := projectiontest.NewRunner(t, cfg, p)
		if err := r.Init(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Freshness(ctx, p.Name()); err != nil { // the head, seen once
			t.Fatal(err)
		}
		before := counted.reads.Load()
		wantSeconds := math.Round(now.Sub(first.RecordedAt).Seconds()*1000) / 1000
		for range 5 {
			f, err := r.Freshness(ctx, p.Name())
			if err != nil {
				t.Fatal(err)
			}
			if f.Lag.Seconds != wantSeconds {
				t.Fatalf("lag %.3f s, want %.3f s", f.Lag.Seconds, wantSeconds)
			}
		}
		if n := counted.reads.Load() - before; n != 0 {
			t.Errorf("5 answers at one checkpoint read the log %d times after the first answer, want 0", n)
		}
	})
}
