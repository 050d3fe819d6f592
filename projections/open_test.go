package projections_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
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

// pool_max_conns in the URL bounds the read models' pool, as it bounds the store's, and is
// not sent to the server as a setting (which PostgreSQL would refuse as unknown); a value
// that is not a count, or a pool too small for a build beside the questions, is refused.
func TestPostgresReadModelPoolSize(t *testing.T) {
	ctx := context.Background()
	url := projectiontest.PostgresURL()
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	schema := projectiontest.FreshSchema(t, "readmodel_pool_")
	tests := []struct {
		param   string
		want    int
		wantErr string
	}{
		{"", 32, ""},
		{"pool_max_conns=3", 3, ""},
		{"pool_max_conns=5&pool_max_conn_idle_time=1m", 5, ""},
		{"pool_max_conns=2", 2, ""},
		{"pool_max_conns=1", 0, "at least 2 connections"},
		{"pool_max_conns=0", 0, "pool_max_conns"},
		{"pool_max_conns=many", 0, "pool_max_conns"},
	}
	for _, tt := range tests {
		t.Run(tt.param, func(t *testing.T) {
			u := url
			if tt.param != "" {
				u += sep + tt.param
			}
			db, err := projections.OpenPostgres(ctx, u, schema)
			if tt.wantErr != "" {
				if err == nil {
					db.SQL.Close()
				}
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("OpenPostgres(%s): %v, want an error naming %s", tt.param, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("OpenPostgres(%s): %v", tt.param, err)
			}
			defer db.SQL.Close()
			if got := db.SQL.Stats().MaxOpenConnections; got != tt.want {
				t.Errorf("pool size %d, want %d", got, tt.want)
			}
			var one int
			if err := db.SQL.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
				t.Errorf("query: %v", err)
			}
		})
	}
}
