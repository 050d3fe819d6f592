// Package projectiontest holds what the tests of every read model share: a fresh read-model
// database per test on both dialects, histories written by hand in testdata, golden answers and
// table dumps for comparing two table sets.
package projectiontest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore/postgres/postgrestest"
	"github.com/eventcrm/crm/projections"
)

// DefaultPostgresURL is the local PostgreSQL of a developer machine and of CI.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// PostgresURL names the database the tests use: CRM_TEST_POSTGRES_URL, or the local default.
func PostgresURL() string {
	if u := os.Getenv("CRM_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return DefaultPostgresURL
}

// ForEachDialect runs test as parallel subtests "sqlite" and "postgres", each with a fresh,
// empty read-model database.
func ForEachDialect(t *testing.T, test func(t *testing.T, db *projections.DB)) {
	t.Helper()
	for _, d := range []projections.Dialect{projections.SQLite, projections.Postgres} {
		t.Run(d.String(), func(t *testing.T) {
			t.Parallel()
			test(t, Open(t, d))
		})
	}
}

// Open returns a fresh, empty read-model database of dialect d, removed when t ends.
func Open(t testing.TB, d projections.Dialect) *projections.DB {
	t.Helper()
	switch d {
	case projections.SQLite:
		return SQLite(t)
	case projections.Postgres:
		return Postgres(t)
	default:
		t.Fatalf("unknown dialect %q", d)
		return nil
	}
}

// SQLite returns a read-model database in a temporary SQLite file, opened like the product's
// (projections.OpenSQLite: WAL).
func SQLite(t testing.TB) *projections.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := projections.OpenSQLite(ctx, filepath.Join(t.TempDir(), "readmodels.db"))
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	t.Cleanup(func() {
		if err := db.SQL.Close(); err != nil {
			t.Errorf("close sqlite: %v", err)
		}
	})
	return db
}

// Postgres returns a read-model database in a fresh schema of the PostgreSQL named by
// PostgresURL, opened like the product's (projections.OpenPostgres: the schema is the
// connections' search_path), dropped when t ends. The test fails, never skips, when
// PostgreSQL cannot be reached.
func Postgres(t testing.TB) *projections.DB {
	t.Helper()
	return PostgresApp(t, "")
}

// PostgresApp is Postgres with its sessions named app (application_name, for PgCPU; "":
// unnamed).
func PostgresApp(t testing.TB, app string) *projections.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	schema := "readmodel_test_" + randomHex(t, 6)
	url := PostgresURL()
	if app != "" {
		url = AppURL(url, app)
	}
	db, err := projections.OpenPostgres(ctx, url, schema)
	if err != nil {
		t.Fatalf("open postgres at %s (set CRM_TEST_POSTGRES_URL to another PostgreSQL): %v", PostgresURL(), err)
	}
	postgrestest.DropWhenDone(t, PostgresURL(), schema)
	t.Cleanup(func() {
		if err := db.SQL.Close(); err != nil {
			t.Errorf("close postgres: %v", err)
		}
	})
	var current string
	if err := db.SQL.QueryRowContext(ctx, "SELECT current_schema()").Scan(&current); err != nil {
		t.Fatalf("current schema: %v", err)
	}
	if current != schema {
		t.Fatalf("current schema is %q, want %q", current, schema)
	}
	return db
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random: %v", err)
	}
	return hex.EncodeToString(b)
}

// Dump returns the rows of every table of set t, per table base name, each row one line of
// its column values, sorted: two table sets hold the same read model when their dumps are
// equal.
func Dump(t testing.TB, db *projections.DB, tables projections.Tables) map[string][]string {
	t.Helper()
	ctx := context.Background()
	names, err := tableNames(ctx, db, tables.Prefix())
	if err != nil {
		t.Fatalf("tables of %s: %v", tables.Prefix(), err)
	}
	if len(names) == 0 {
		t.Fatalf("no table with prefix %s", tables.Prefix())
	}
	dump := make(map[string][]string, len(names))
	for _, name := range names {
		rows, err := dumpTable(ctx, db, name)
		if err != nil {
			t.Fatalf("dump %s: %v", name, err)
		}
		dump[strings.TrimPrefix(name, tables.Prefix())] = rows
	}
	return dump
}

func tableNames(ctx context.Context, db *projections.DB, prefix string) ([]string, error) {
	// Ordinary tables only: a text search's trigram tables are an index (see
	// projections.Dialect.TextSearch).
	query := `SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'table'`
	if db.Dialect == projections.Postgres {
		query = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()`
	}
	rows, err := db.SQL.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, err
		}
		if strings.HasPrefix(name, prefix) {
			names = append(names, name)
		}
	}
	return names, rows.Err()
}

func dumpTable(ctx context.Context, db *projections.DB, name string) ([]string, error) {
	rows, err := db.SQL.QueryContext(ctx, "SELECT * FROM "+name)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var lines []string
	for rows.Next() {
		values := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range values {
			ptrs[i] = &values[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		var b strings.Builder
		for i, v := range values {
			if i > 0 {
				b.WriteString(" | ")
			}
			if raw, ok := v.([]byte); ok {
				v = string(raw)
			}
			fmt.Fprintf(&b, "%s=%v", cols[i], v)
		}
		lines = append(lines, b.String())
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	slices.Sort(lines)
	return lines, nil
}
