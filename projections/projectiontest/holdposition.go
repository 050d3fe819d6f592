package projectiontest

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// HoldPosition begins a transaction on pool (a PostgreSQL store's, whose search_path is the
// log's schema) that takes a position of the log and holds it, as a writer does that has not
// committed: the log reader stops before that position until end rolls the transaction back.
// end may be called from any goroutine, more than once; the test's cleanup calls it too, and
// waits for a call in progress (two rollbacks at once on one connection are not safe).
func HoldPosition(t testing.TB, pool *pgxpool.Pool) (end func()) {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	var once sync.Once
	end = func() { once.Do(func() { _ = tx.Rollback(context.Background()) }) }
	t.Cleanup(end)
	if _, err := tx.Exec(ctx, `SELECT pg_current_xact_id(), nextval('events_position_seq')`); err != nil {
		t.Fatalf("take a position: %v", err)
	}
	return end
}
