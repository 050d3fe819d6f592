package runtime_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/codec"
	"github.com/eventcrm/crm/eventstore/postgres"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/lease"
	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/runtime"
)

func openPostgresBackend(t *testing.T) (eventstore.Store, *projections.DB) {
	t.Helper()
	for _, b := range projectiontest.Backends() {
		if b.Name == "postgres" {
			return b.Open(t)
		}
	}
	t.Fatal("no postgres backend")
	return nil, nil
}

func leases(t *testing.T, db *projections.DB, node string) *lease.Manager {
	t.Helper()
	m, err := lease.New(lease.Config{DB: db, Node: node, TTL: 600 * time.Millisecond, Renew: 100 * time.Millisecond, Poll: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not %s after 15s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func statusOf(t *testing.T, r *runtime.Runner, name string) runtime.Status {
	t.Helper()
	list, err := r.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range list {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no status of %s", name)
	return runtime.Status{}
}

// A runner that started before another one parked an event of a stream must still park the
// later events of that stream behind it: the blocking is read from the parked table under
// the set's lock, not from what each runner saw at its start.
func TestParkedStreamBlocksEveryRunner(t *testing.T) {
	projectiontest.ForEachBackend(t, func(t *testing.T, store eventstore.Store, db *projections.DB) {
		p := &projectiontest.Counter{Refuse: func(e eventstore.Event) error {
			if e.Type == "test.poison.v1" {
				return errors.New("cannot apply this")
			}
			return nil
		}}
		cfg := projectiontest.RunnerConfig(store, db)
		later := projectiontest.NewRunner(t, cfg, p)
		if err := later.Init(context.Background()); err != nil { // knows of no parked event
			t.Fatal(err)
		}
		first := projectiontest.NewRunner(t, cfg, p)
		projectiontest.AppendTo(t, store, "s-a", "test.a.v1", "test.poison.v1")
		stopFirst := projectiontest.Start(t, first)
		projectiontest.WaitCheckpoint(t, db, p, projectiontest.LastPosition(t, store))
		stopFirst()

		behind := projectiontest.AppendTo(t, store, "s-a", "test.b.v1")[0]
		projectiontest.AppendTo(t, store, "s-b", "test.a.v1")
		projectiontest.Start(t, later)
		projectiontest.WaitCheckpoint(t, db, p, projectiontest.LastPosition(t, store))
		parked := parkedByEvent(t, later)
		if _, ok := parked[behind.ID]; !ok || len(parked) != 2 {
			t.Fatalf("parked %v, want the poison event and %s behind it", parked, behind.ID)
		}
		if v := appliedVersion(t, db, p, "s-a"); v != 1 {
			t.Errorf("s-a applied up to version %d, want 1: a later event went past the parked one", v)
		}
		waitUntil(t, "counting 2 parked events", func() bool { return statusOf(t, later, p.Name()).Parked == 2 })
	})
}

// Two servers share the database: one owns the projection and applies it; the other stands
// by, follows its checkpoint, parked events and retries from the database (so its answers,
// min_position waits and kept answers hold), and takes over when the owner stops.
func TestStandbyFollowsTheOwnerAndTakesOver(t *testing.T) {
	store, db := openPostgresBackend(t)
	var broken = true
	p := &projectiontest.Counter{Refuse: func(e eventstore.Event) error {
		if broken && e.Type == "test.poison.v1" {
			return errors.New("cannot apply this")
		}
		return nil
	}}
	cfgA, cfgB := projectiontest.RunnerConfig(store, db), projectiontest.RunnerConfig(store, db)
	cfgA.Leases, cfgB.Leases = leases(t, db, "a"), leases(t, db, "b")
	cfgA.SyncInterval, cfgB.SyncInterval = 20*time.Millisecond, 20*time.Millisecond
	a := projectiontest.NewRunner(t, cfgA, p)
	stopA := projectiontest.Start(t, a)
	waitUntil(t, "owned by a", func() bool { return statusOf(t, a, p.Name()).Role == runtime.RoleOwner })
	b := projectiontest.NewRunner(t, cfgB, p)
	projectiontest.Start(t, b)

	projectiontest.AppendTo(t, store, "s-a", "test.a.v1", "test.poison.v1", "test.b.v1")
	head := projectiontest.LastPosition(t, store)
	f, err := b.WaitFor(context.Background(), p.Name(), head, 10*time.Second)
	if err != nil || f.Stale || f.Position != head {
		t.Fatalf("standby freshness %+v, %v; want position %d", f, err, head)
	}
	if st := statusOf(t, b, p.Name()); st.Role != runtime.RoleStandby || st.Parked != 2 {
		t.Errorf("standby status %+v, want standby with 2 parked", st)
	}

	// A retry on the standby: the owner sees the change (its kept answers go) and the count.
	before, _ := a.Changes(p.Name())
	broken = false
	list, err := b.Parked(context.Background(), projections.ParkedFilter{})
	if err != nil || len(list) != 2 {
		t.Fatalf("parked %v, %v", list, err)
	}
	res, err := b.RetryParked(context.Background(), list[0].ID)
	if err != nil || len(res.Applied) != 2 || res.StillParked != 0 {
		t.Fatalf("retry on the standby = %+v, %v; want 2 applied, 0 still parked", res, err)
	}
	waitUntil(t, "seen by the owner", func() bool {
		n, _ := a.Changes(p.Name())
		return n != before && statusOf(t, a, p.Name()).Parked == 0
	})

	// The owner stops: the standby takes over within about a lease TTL and applies.
	stopA()
	waitUntil(t, "owned by b", func() bool { return statusOf(t, b, p.Name()).Role == runtime.RoleOwner })
	projectiontest.AppendTo(t, store, "s-b", "test.a.v1")
	projectiontest.WaitCheckpoint(t, db, p, projectiontest.LastPosition(t, store))
	projectiontest.AssertSameAsRebuild(t, db, store, p)
}

// A writer holds back the feed at a gap in the positions while commands go on: lag is
// measured from the store's head, never 0, and the feed and the projections say stalled;
// once the transaction ends, they catch up and the alarm clears.
func TestStalledFeedIsReportedNotLagZero(t *testing.T) {
	store, db := openPostgresBackend(t)
	p := &projectiontest.Counter{CountOnly: true}
	cfg := projectiontest.RunnerConfig(store, db)
	cfg.HeadPoll = 20 * time.Millisecond
	cfg.StallAfter = 300 * time.Millisecond
	r := projectiontest.NewRunner(t, cfg, p)
	projectiontest.AppendTo(t, store, "s-a", "test.a.v1")
	projectiontest.Start(t, r)
	projectiontest.WaitCheckpoint(t, db, p, projectiontest.LastPosition(t, store))
	reached := projectiontest.LastPosition(t, store)

	// A writer that took a position and hangs before its commit (a stuck connection, say): a
	// transaction with an id that holds a position of the log.
	ctx := context.Background()
	end := projectiontest.HoldPosition(t, store.(*codec.Store).Unwrap().(*postgres.Store).Pool())
	projectiontest.AppendTo(t, store, "s-b", "test.a.v1", "test.b.v1")

	waitUntil(t, "reported stalled", func() bool { return r.Feed().Stalled })
	st := statusOf(t, r, p.Name())
	if st.State != runtime.StateStalled || st.Lag.Events == 0 || st.Checkpoint != reached || st.Lag.Seconds <= 0 {
		t.Errorf("status while the feed is stalled: %+v; want state stalled, lag > 0 at checkpoint %d", st, reached)
	}
	f, err := r.Freshness(ctx, p.Name())
	if err != nil || f.Lag.Events == 0 || f.Head <= reached {
		t.Errorf("freshness while stalled %+v, %v: want the store's head and a lag", f, err)
	}

	end()
	projectiontest.WaitCheckpoint(t, db, p, projectiontest.LastPosition(t, store))
	waitUntil(t, "moving again", func() bool { return !r.Feed().Stalled })
	if st := statusOf(t, r, p.Name()); st.State == runtime.StateStalled || st.Lag.Events != 0 {
		t.Errorf("status after the stall %+v", st)
	}
}
