package projectiontest_test

import (
	"context"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore/postgres"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// On PostgreSQL the global log may have a gap (a position taken by an append that has not
// committed yet), and ReadAll returns the events after a gap only once every append that may
// still write into it has ended, or stops before the gap after its read wait. A writer of the
// log that holds a position holds that back: the log's last position and its events must
// still be those committed, or a test that waits for its projections to reach "the head"
// compares them before they applied the log's tail.
func TestLogHeldBackByARunningTransaction(t *testing.T) {
	ctx := context.Background()
	store, err := postgres.Open(ctx, projectiontest.PostgresURL(), postgres.WithSchema(projectiontest.FreshSchema(t, "projectiontest_log_")),
		postgres.WithReadWait(20*time.Millisecond))
	if err != nil {
		t.Fatalf("open postgres store: %v", err)
	}
	t.Cleanup(func() { store.Close() })
	first := projectiontest.AppendTo(t, store, "a", "t.one")[0]
	// A writer that took a position before the next append and holds it past the read wait:
	// a gap that may still be written into.
	end := projectiontest.HoldPosition(t, store.Pool())
	last := projectiontest.AppendTo(t, store, "b", "t.two")[0]
	if last.Position <= first.Position+1 {
		t.Fatalf("no gap: positions %d then %d", first.Position, last.Position)
	}
	if page, err := store.ReadAll(ctx, 0, 10); err != nil || len(page) != 1 {
		t.Fatalf("ReadAll while the transaction runs = %d events (%v), want 1: the case is not set up", len(page), err)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		end()
	}()

	if got := projectiontest.LastPosition(t, store); got != last.Position {
		t.Errorf("LastPosition = %d, want %d", got, last.Position)
	}
	var got []int64
	for _, e := range projectiontest.AllEvents(t, store) {
		got = append(got, e.Position)
	}
	if len(got) != 2 || got[0] != first.Position || got[1] != last.Position {
		t.Errorf("AllEvents at positions %v, want [%d %d]", got, first.Position, last.Position)
	}
}
