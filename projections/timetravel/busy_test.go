package timetravel_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/timetravel"
)

// While the read models catch up (busy), RunSnapshots takes no snapshot: it would replay the
// log a second time beside the catch-up. Once they have caught up, its next round takes every
// snapshot missed meanwhile.
func TestSnapshotsWaitWhileTheReadModelsCatchUp(t *testing.T) {
	for _, b := range projectiontest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			st, d := b.Open(t)
			p := &projectiontest.Counter{}
			ctx := context.Background()
			for range 3 {
				projectiontest.AppendTo(t, st, "s-a", "test.a.v1")
			}
			tt, err := timetravel.NewTimeTravel(timetravel.TimeTravelConfig{DB: d, Store: st, Every: 2, Node: "a", Dir: t.TempDir()}, p)
			if err != nil {
				t.Fatal(err)
			}
			if err := tt.Init(ctx); err != nil {
				t.Fatal(err)
			}
			defer tt.Close(ctx) //nolint:errcheck

			// run runs RunSnapshots until busy has been asked rounds times, then stops it.
			run := func(catchingUp bool, rounds int) {
				runCtx, cancel := context.WithCancel(ctx)
				var asked atomic.Int32
				var wg sync.WaitGroup
				wg.Go(func() {
					tt.RunSnapshots(runCtx, 0, func(context.Context) bool {
						if asked.Add(1) >= int32(rounds) {
							cancel()
						}
						return catchingUp
					}, func(err error) { t.Errorf("snapshot round: %v", err) })
				})
				wg.Wait()
			}

			run(true, 3)
			if taken, err := tt.Snapshot(ctx); err != nil || taken != 1 {
				t.Fatalf("after three rounds while catching up, a snapshot round took %d (%v), want 1: none was taken before", taken, err)
			}
			for range 2 {
				projectiontest.AppendTo(t, st, "s-a", "test.a.v1")
			}
			run(false, 2) // the second ask comes after the first round's snapshots
			if taken, err := tt.Snapshot(ctx); err != nil || taken != 0 {
				t.Fatalf("after a round once caught up, a snapshot round took %d (%v), want 0: the one at 4 was taken", taken, err)
			}
		})
	}
}
