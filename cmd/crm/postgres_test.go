package main

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/eventcrm/crm/eventstore/postgres/postgrestest"
)

// postgresURL is the PostgreSQL the tests use; they fail, never skip, when it is unreachable.
func postgresURL() string {
	if u := os.Getenv("CRM_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// freshSchema returns a CRM_STORE value with a new schema, dropped (with its read models)
// when the test ends.
func freshSchema(t testing.TB) string {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "crm_cli_" + hex.EncodeToString(b)
	url := postgresURL()
	postgrestest.DropWhenDone(t, url, schema, schema+"_readmodels", schema+"_keys")
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	return url + sep + "schema=" + schema
}

// boundedSchema is freshSchema with each pool of a server or command that opens it bounded
// by pool_max_conns=4 (about 14 connections a server): the PostgreSQL server's default 100
// connections are shared by the servers of the tests running at once in this package and
// in others (unbounded, one server's read-model pool alone may take 32).
func boundedSchema(t testing.TB) string {
	t.Helper()
	return strings.Replace(freshSchema(t), "schema=", "pool_max_conns=4&schema=", 1) // the schema last, as freshSchema's
}

// The CLI honours CRM_STORE=postgres://...: the same seed, verify and history as on SQLite.
func TestCommandLineOnPostgres(t *testing.T) {
	t.Parallel()
	env := map[string]string{"CRM_STORE": boundedSchema(t), "CRM_DATA_DIR": t.TempDir()}
	out, _, err := crm(t, env, "seed", "--contacts", "30", "--quiet")
	if err != nil || !strings.HasPrefix(out, "seeded 30 contacts") {
		t.Fatalf("seed on PostgreSQL: %q, %v", out, err)
	}
	out, _, err = crm(t, env, "verify", "--quiet")
	if err != nil || !strings.HasPrefix(out, "OK: ") {
		t.Fatalf("verify on PostgreSQL: %q, %v", out, err)
	}
	// The same seed on SQLite writes the same events: ids and data do not depend on the store.
	sqliteEnv, sqlitePath := seeded(t, "30")
	_ = sqliteEnv
	var stream string
	if err := openDB(t, sqlitePath).QueryRow(`SELECT stream FROM events WHERE type = 'deal.won.v1' LIMIT 1`).Scan(&stream); err != nil {
		t.Fatal(err)
	}
	pgHistory, _, err := crm(t, env, "history", "--json", stream)
	if err != nil {
		t.Fatalf("history on PostgreSQL of a stream seeded on SQLite: %v", err)
	}
	if !strings.Contains(pgHistory, `"type":"deal.won.v1"`) {
		t.Fatalf("history on PostgreSQL lacks the won event:\n%s", pgHistory)
	}
}
