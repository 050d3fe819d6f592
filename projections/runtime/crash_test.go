package runtime_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/wmstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/runtime"
)

// errKilled is how an injected crash ends the runner: a canceled context, as when the
// process is stopped, so nothing mistakes it for an event the projection refuses.
var errKilled = fmt.Errorf("projector killed: %w", context.Canceled)

// The projector is killed at many random points, just before a transaction commits or just
// after it committed but before the event is acknowledged, both while it catches up from the
// log and while it runs live; it is restarted each time. The read model must equal a fresh
// rebuild, with every event counted once.
func TestKilledAnywhereBetweenApplyAndAckLeavesAnExactReadModel(t *testing.T) {
	projectiontest.ForEachBackend(t, func(t *testing.T, store eventstore.Store, db *projections.DB) {
		seed := uint64(time.Now().UnixNano())
		t.Logf("seed %d", seed)
		rng := rand.New(rand.NewPCG(seed, seed>>1))
		ctx := context.Background()
		p := &projectiontest.Counter{}
		group := runtime.ConsumerGroup(projections.TablesFor(p, ""))
		checkpoints := store.(eventstore.Checkpoints)
		streams := []string{"s-a", "s-b", "s-c", "s-d", "s-e", "s-f", "s-g", "s-h"}
		appendSome := func(n int) []eventstore.Event {
			var added []eventstore.Event
			for len(added) < n {
				types := []string{"test.a.v1", "test.b.v1", "test.c.v1"}[:1+rng.IntN(3)]
				added = append(added, projectiontest.AppendTo(t, store, streams[rng.IntN(len(streams))], types...)...)
			}
			return added
		}
		appendSome(40)

		const kills = 40
		var before, after, live, catchUp int
		for i := range kills {
			cfg := projectiontest.RunnerConfig(store, db)
			cfg.CatchUpBatch = 1 + rng.IntN(16) // several transactions per catch-up
			if rng.IntN(2) == 0 {
				// The consumer group stays where it was acknowledged, so the live handler
				// gets again what the catch-up applied: redeliveries, one by one.
				cfg.AdvanceGroup = nil
			}
			r := projectiontest.NewRunner(t, cfg, p)
			runCtx, kill := context.WithCancel(ctx)
			killBefore := rng.IntN(2) == 0
			liveMode := rng.IntN(3) > 0
			var target int64
			type killed struct{ inCatchUp bool }
			died := make(chan killed, 1)
			die := func(ctx context.Context) error {
				select {
				case died <- killed{runtime.InCatchUp(ctx)}:
				default:
				}
				kill()
				return errKilled
			}
			// In live mode the target is written while the runner runs: events after base
			// wait in the hooks until the target is known (armed).
			armed := make(chan struct{})
			var base atomic.Int64
			base.Store(math.MaxInt64)
			hit := func(e eventstore.Event) bool {
				if e.Position > base.Load() {
					<-armed
				}
				return isArmed(armed) && e.Position == target
			}
			runtime.InjectFaults(r,
				func(ctx context.Context, e eventstore.Event) error {
					if killBefore && hit(e) {
						return die(ctx)
					}
					return nil
				},
				func(ctx context.Context, events []eventstore.Event) error {
					if !killBefore && slices.ContainsFunc(events, hit) {
						return die(ctx)
					}
					return nil
				})

			if !liveMode {
				// The target is in the log already: the catch-up meets it.
				pending := appendSome(1 + rng.IntN(30))
				target = pending[rng.IntN(len(pending))].Position
				close(armed)
			}
			done := make(chan error, 1)
			go func() { done <- r.Run(runCtx) }()
			if liveMode {
				// Wait until the runner is live and caught up, then write the target.
				projectiontest.WaitUntil(t, 30*time.Second, "runner live", func() bool {
					st, err := r.Status(ctx)
					return err == nil && st[0].State == runtime.StateRunning && st[0].Lag.Events == 0
				})
				base.Store(projectiontest.LastPosition(t, store))
				pending := appendSome(1 + rng.IntN(20))
				target = pending[rng.IntN(len(pending))].Position
				close(armed)
			}
			var k killed
			select {
			case k = <-died:
			case <-time.After(30 * time.Second):
				kill()
				t.Fatalf("kill %d: the runner never reached position %d", i, target)
			}
			if err := <-done; err != nil {
				t.Fatalf("kill %d: run: %v", i, err)
			}
			if liveMode && k.inCatchUp {
				t.Fatalf("kill %d: a live runner killed in its catch-up", i)
			}

			cp := projectiontest.Checkpoint(t, db, p)
			acked, err := checkpoints.LoadCheckpoint(ctx, wmstore.CheckpointName(group, wmstore.AllTopic))
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case killBefore && cp >= target:
				t.Fatalf("kill %d before the commit of %d: checkpoint %d moved past it", i, target, cp)
			case !killBefore && cp < target:
				t.Fatalf("kill %d after the commit of %d: checkpoint %d", i, target, cp)
			case acked >= target:
				t.Fatalf("kill %d at %d: the consumer group acknowledged it (%d)", i, target, acked)
			}
			if killBefore {
				before++
			} else {
				after++
			}
			// A target already in the log is usually met by the catch-up, but PostgreSQL may
			// hold it back from ReadAll while another transaction runs: then the live
			// handler meets it.
			if k.inCatchUp {
				catchUp++
			} else {
				live++
			}
		}
		t.Logf("%d kills: %d before commit, %d after commit and before ack; %d live, %d in catch-up", kills, before, after, live, catchUp)
		if before == 0 || after == 0 || live == 0 || catchUp == 0 {
			t.Fatal("some kind of kill never happened: run again with more kills")
		}

		// A last run without faults, with events arriving while it runs, then a clean restart.
		stop := projectiontest.Start(t, projectiontest.NewRunner(t, projectiontest.RunnerConfig(store, db), p))
		appendSome(25)
		projectiontest.WaitCheckpoint(t, db, p, projectiontest.LastPosition(t, store))
		stop()
		stop = projectiontest.Start(t, projectiontest.NewRunner(t, projectiontest.RunnerConfig(store, db), p))
		appendSome(5)
		projectiontest.WaitCheckpoint(t, db, p, projectiontest.LastPosition(t, store))
		stop()

		total := int64(len(projectiontest.AllEvents(t, store)))
		tables := projections.TablesFor(p, "")
		if n := projectiontest.Count(t, db, `SELECT sum(n) FROM `+tables.Name("counts")); n != total {
			t.Fatalf("counted %d events, the log has %d", n, total)
		}
		if n := projectiontest.Count(t, db, `SELECT count(*) FROM `+tables.Name("seen")); n != total {
			t.Fatalf("%d events seen, the log has %d", n, total)
		}
		if n := projectiontest.Count(t, db, `SELECT count(*) FROM projection_parked`); n != 0 {
			t.Fatalf("%d events parked", n)
		}
		projectiontest.AssertSameAsRebuild(t, db, store, p)
	})
}

func isArmed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
