package projections_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore/postgres/postgrestest"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// Opening read models on a server that never answers fails on its own, saying it timed out;
// the caller's deadline is only the test's guard against a hang.
func TestOpenPostgresGivesUpOnAServerThatNeverAnswers(t *testing.T) {
	t.Parallel()
	addr := postgrestest.SilentServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db, err := projections.OpenPostgres(ctx, "postgres://postgres@"+addr+"/postgres?sslmode=disable", "")
	if err == nil {
		db.SQL.Close()
		t.Fatal("OpenPostgres succeeded against a server that never answers")
	}
	if ctx.Err() != nil {
		t.Fatalf("OpenPostgres waited for the caller's deadline: %v", err)
	}
	if !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("error %q does not say it timed out", err)
	}
}

// Dropping a set whose table another server's transaction reads gives up after the lock
// timeout instead of waiting without end (and queueing every later reader behind it).
func TestDropSetGivesUpOnALockedTable(t *testing.T) {
	db := projectiontest.Postgres(t)
	ctx := context.Background()
	p := &projectiontest.Counter{}
	tables := projections.TablesFor(p, "t1")
	if err := db.EnsureSchema(ctx, p, tables); err != nil {
		t.Fatal(err)
	}
	reader, err := db.SQL.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Rollback() //nolint:errcheck
	if _, err := reader.ExecContext(ctx, `SELECT count(*) FROM `+tables.Name("counts")); err != nil {
		t.Fatal(err)
	}
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	err = db.DropSet(dctx, p, tables, true)
	if err == nil || !strings.Contains(err.Error(), "lock timeout") {
		t.Fatalf("drop of a table being read = %v, want a lock timeout", err)
	}
	if dctx.Err() != nil {
		t.Fatal("the drop waited for the reader until the test's deadline")
	}
}
