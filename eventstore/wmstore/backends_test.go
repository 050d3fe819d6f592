package wmstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/postgres"
	"github.com/eventcrm/crm/eventstore/postgres/postgrestest"
	"github.com/eventcrm/crm/eventstore/sqlite"
	"github.com/jackc/pgx/v5"
)

// defaultPostgresURL is the local PostgreSQL of a developer machine and of CI.
const defaultPostgresURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// storePollInterval is the stores' own polling fallback in tests. Appends through the same
// Store wake subscriptions at once; this only bounds how long a lost wake-up costs.
const storePollInterval = 50 * time.Millisecond

// backend opens a fresh, empty store that is closed (and dropped) when t ends.
type backend struct {
	name string
	open func(t testing.TB) eventstore.Store
}

func backends() []backend {
	return []backend{
		{"sqlite", func(t testing.TB) eventstore.Store { return openSQLite(t) }},
		{"postgres", func(t testing.TB) eventstore.Store { return openPostgres(t) }},
	}
}

func openSQLite(t testing.TB) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "events.db"),
		sqlite.WithPollInterval(storePollInterval))
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close sqlite: %v", err)
		}
	})
	return s
}

// postgresURL names the test database: CRM_TEST_POSTGRES_URL, or the local default. The tests
// fail, never skip, when it cannot be reached.
func postgresURL() string {
	if u := os.Getenv("CRM_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return defaultPostgresURL
}

// openPostgres opens a store in a schema of its own, dropped when t ends.
func openPostgres(t testing.TB) *postgres.Store {
	t.Helper()
	return openPostgresIn(t, postgresURL(), newSchema(t))
}

// newSchema returns a schema name no other test run uses; the schema is dropped when t ends.
func newSchema(t testing.TB) string {
	t.Helper()
	schema := "wmstore_test_" + randomHex(t, 6)
	postgrestest.DropWhenDone(t, postgresURL(), schema)
	return schema
}

// openPostgresIn opens a store of the database at url in schema, closed when t ends.
func openPostgresIn(t testing.TB, url, schema string) *postgres.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := postgres.Open(ctx, url, postgres.WithSchema(schema),
		postgres.WithPollInterval(storePollInterval), postgres.WithMaxConns(16))
	if err != nil {
		t.Fatalf("open postgres at %s (set CRM_TEST_POSTGRES_URL): %v", url, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close postgres: %v", err)
		}
	})
	return s
}

// execPostgres runs sql on a connection of its own and returns how many rows it touched.
func execPostgres(ctx context.Context, sql string, args ...any) (int64, error) {
	conn, err := pgx.Connect(ctx, postgresURL())
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	tag, err := conn.Exec(ctx, sql, args...)
	return tag.RowsAffected(), err
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random: %v", err)
	}
	return hex.EncodeToString(b)
}
