package timetravel_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/timetravel"
)

// Two servers share the read-model database: a server that starts leaves the temporary sets
// of the other one alone while it runs, and drops them once it has stopped beating.
func TestTemporarySetsOutliveAnotherServersStartButNotTheirOwner(t *testing.T) {
	ran := false
	for _, b := range projectiontest.Backends() {
		if b.Name != "postgres" {
			continue
		}
		ran = true
		st, d := b.Open(t)
		p := &projectiontest.Counter{}
		for range 5 {
			projectiontest.AppendTo(t, st, "s-a", "test.a.v1")
		}
		ctx := context.Background()
		var clock atomic.Int64
		clock.Store(time.Now().UnixMilli())
		now := func() time.Time { return time.UnixMilli(clock.Load()) }
		newTT := func(node string) *timetravel.TimeTravel {
			tt, err := timetravel.NewTimeTravel(timetravel.TimeTravelConfig{DB: d, Store: st, Every: 1000, Node: node,
				OwnerTTL: 6 * time.Second, Now: now}, p)
			if err != nil {
				t.Fatal(err)
			}
			if err := tt.Init(ctx); err != nil {
				t.Fatal(err)
			}
			return tt
		}
		a := newTT("a")
		set, release, err := a.At(ctx, p.Name(), 3)
		if err != nil {
			t.Fatal(err)
		}
		release()
		if n := projectiontest.Count(t, d, `SELECT count(*) FROM `+set.Tables.Name("counts")); n == 0 {
			t.Fatal("the temporary set at 3 is empty")
		}

		newTT("b") // another server starts: a's set stays
		if _, err := d.SQL.ExecContext(ctx, `SELECT 1 FROM `+set.Tables.Name("counts")); err != nil {
			t.Fatalf("a's temporary set is gone after b started: %v", err)
		}
		// a is gone (no heartbeat for longer than the TTL): the next start drops its set.
		clock.Add((7 * time.Second).Milliseconds())
		newTT("c")
		if _, err := d.SQL.ExecContext(ctx, `SELECT 1 FROM `+set.Tables.Name("counts")); err == nil {
			t.Error("the temporary set of a server gone for longer than the TTL is still there")
		}
	}
	if !ran {
		t.Fatal("no postgres backend")
	}
}
