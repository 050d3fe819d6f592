package httpapi_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/audit"
	"github.com/eventcrm/crm/eventstore/postgres"
	"github.com/eventcrm/crm/eventstore/sqlite"
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

func postgresURL() string {
	if u := os.Getenv("CRM_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// openPostgres opens a store in a fresh schema, dropped when t ends. It fails, never skips,
// when PostgreSQL cannot be reached.
func openPostgres(t *testing.T) *postgres.Store {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "httpapi_test_" + hex.EncodeToString(b[:])
	s, err := postgres.Open(context.Background(), postgresURL(), postgres.WithSchema(schema))
	if err != nil {
		t.Fatalf("open PostgreSQL at %s (set CRM_TEST_POSTGRES_URL): %v", redact(postgresURL()), err)
	}
	t.Cleanup(func() {
		s.Close()
		conn, err := pgx.Connect(context.Background(), postgresURL())
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return s
}

func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(the URL)"
	}
	return p.Redacted()
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
