package timetravel_test

import (
	"context"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore/postgres"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// TestTimeTravelWaitsForAPositionHeldBack asks for the read model at a position the log
// reader cannot yet reach: on PostgreSQL an event found after a gap is returned only once
// every older append of the log has ended (one might still write into the gap), and a read that
// waited its full read wait returns the events before the gap alone. The set must still
// hold every event up to the position asked for: a build that took the short read for the
// end of the log would be listed as complete at that position with the later events
// missing, and answer wrongly for as long as it is kept. PostgreSQL only: SQLite's log has
// no such gaps.
func TestTimeTravelWaitsForAPositionHeldBack(t *testing.T) {
	ctx := context.Background()
	store, err := postgres.Open(ctx, projectiontest.PostgresURL(),
		postgres.WithSchema(projectiontest.FreshSchema(t, "timetravel_heldback_")),
		postgres.WithReadWait(20*time.Millisecond))
	if err != nil {
		t.Fatalf("open postgres store: %v", err)
	}
	t.Cleanup(func() { store.Close() })

	first := projectiontest.AppendTo(t, store, "a", "t.one")[0]
	// A writer that took a position before the next appends and holds it past the read wait:
	// a gap that may still be written into.
	end := projectiontest.HoldPosition(t, store.Pool())
	later := projectiontest.AppendTo(t, store, "b", "t.two", "t.three")
	last := later[len(later)-1]
	if page, err := store.ReadAll(ctx, 0, 10); err != nil || len(page) != 1 || page[0].Position != first.Position {
		t.Fatalf("ReadAll while the transaction runs = %d events (%v), want the first alone: the case is not set up", len(page), err)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		end()
	}()

	counter := &projectiontest.Counter{}
	db := projectiontest.Postgres(t)
	tt := openTimeTravel(t, db, store, counter)
	ts, release, err := tt.At(ctx, counter.Name(), last.Position)
	if err != nil {
		t.Fatalf("at %d: %v", last.Position, err)
	}
	defer release()
	if ts.Position != last.Position {
		t.Fatalf("set at %d, want %d", ts.Position, last.Position)
	}
	var seen int64
	if err := ts.DB.SQL.QueryRowContext(ctx, `SELECT count(*) FROM `+ts.Tables.Name("seen")).Scan(&seen); err != nil {
		t.Fatalf("count the set's events: %v", err)
	}
	if seen != 3 {
		t.Errorf("the set at %d holds %d events, want 3 (every event up to it)", last.Position, seen)
	}
}
