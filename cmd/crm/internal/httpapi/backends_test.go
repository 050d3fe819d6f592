package httpapi_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/audit"
	"github.com/eventcrm/crm/eventstore/postgres"
	"github.com/eventcrm/crm/eventstore/sqlite"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// auditBackends are the stores the audit tests run on.
func auditBackends() []string { return []string{"sqlite", "postgres"} }

// auditStore is a store with the sources the audit reads it with.
type auditStore struct {
	store     eventstore.Store
	feed, src audit.Source
}

// openAuditStore opens a fresh store of the named backend, with the audit sources crm serve
// picks for it: SQLite rows feed the tree directly; PostgreSQL feeds it through the store,
// whose ReadAll waits for positions still committing, and is re-read raw for proofs.
func openAuditStore(t *testing.T, backend, dir string) auditStore {
	t.Helper()
	switch backend {
	case "sqlite":
		s, err := sqlite.Open(context.Background(), filepath.Join(dir, "crm.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		raw := audit.SQLiteSource(s.DB())
		return auditStore{store: s, feed: raw, src: raw}
	case "postgres":
		s := openPostgres(t)
		return auditStore{store: s, feed: audit.StoreSource(s), src: audit.PostgresSource(s.Pool())}
	}
	t.Fatalf("unknown backend %q", backend)
	return auditStore{}
}

// openPostgres opens a store in a fresh schema, dropped when t ends. It fails, never skips,
// when PostgreSQL cannot be reached.
func openPostgres(t testing.TB) *postgres.Store {
	s, _ := openPostgresSchema(t)
	return s
}

// openPostgresSchema is openPostgres, also naming the store's schema.
func openPostgresSchema(t testing.TB) (*postgres.Store, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	schema := freshSchema(t, "httpapi_test_")
	s, err := postgres.Open(ctx, projectiontest.PostgresURL(), postgres.WithSchema(schema))
	if err != nil {
		t.Fatalf("open postgres at %s (set CRM_TEST_POSTGRES_URL): %v", projectiontest.PostgresURL(), err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, schema
}

// openSQLiteStore opens a fresh SQLite store, closed when t ends.
func openSQLiteStore(t testing.TB) eventstore.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "crm.db"))
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// logLength is the number of events in the whole log.
func logLength(t *testing.T, s eventstore.Store) int {
	t.Helper()
	n := 0
	for after := int64(0); ; {
		batch, err := s.ReadAll(context.Background(), after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		n += len(batch)
		if len(batch) < 1000 {
			return n
		}
		after = batch[len(batch)-1].Position
	}
}
