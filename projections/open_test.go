package projections_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// TestPostgresReadModelSessions: every read-model connection works in the read models' schema
// and commits without waiting for the WAL flush (see sessionDSN: the checkpoint commits with
// the change, so a crash loses both and the log refills them).
func TestPostgresReadModelSessions(t *testing.T) {
	db := projectiontest.Postgres(t)
	ctx := context.Background()
	db.SQL.SetMaxOpenConns(3)
	for range 3 { // several connections of the pool, each with the settings
		conn, err := db.SQL.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var syncCommit, schema string
		if err := conn.QueryRowContext(ctx, `SELECT current_setting('synchronous_commit'), current_schema()`).Scan(&syncCommit, &schema); err != nil {
			t.Fatal(err)
		}
		if syncCommit != "off" || schema == "" || schema == "public" {
			t.Fatalf("synchronous_commit %q, schema %q; want off and the read models' schema", syncCommit, schema)
		}
	}
}

// TestSQLiteReadModelSessions: read-model connections on SQLite use WAL, synchronous=NORMAL
// and read through a memory map.
func TestSQLiteReadModelSessions(t *testing.T) {
	db := projectiontest.SQLite(t)
	ctx := context.Background()
	var (
		journal           string
		synchronous, mmap int64
	)
	for pragma, into := range map[string]any{"journal_mode": &journal, "synchronous": &synchronous, "mmap_size": &mmap} {
		if err := db.SQL.QueryRowContext(ctx, `PRAGMA `+pragma).Scan(into); err != nil {
			t.Fatalf("%s: %v", pragma, err)
		}
	}
	if journal != "wal" || synchronous != 1 || mmap < 1<<28 {
		t.Fatalf("journal_mode %s, synchronous %d, mmap_size %d; want wal, 1 (NORMAL), at least 256 MiB", journal, synchronous, mmap)
	}
}

// A read on a read-model database that was closed (the server is stopping) is ErrClosed, which
// the HTTP edge answers 503 with a Retry-After, not 500.
func TestReadAfterCloseIsErrClosed(t *testing.T) {
	projectiontest.ForEachBackend(t, func(t *testing.T, _ eventstore.Store, db *projections.DB) {
		if err := db.SQL.Close(); err != nil {
			t.Fatal(err)
		}
		err := db.ReadOnly(context.Background(), func(*sql.Tx) error { return nil })
		if !errors.Is(err, projections.ErrClosed) {
			t.Fatalf("read after close: %v, want ErrClosed", err)
		}
	})
}
