package projectiontest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/eventcrm/crm/domain/catalog"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/codec"
	"github.com/eventcrm/crm/eventstore/postgres"
	"github.com/eventcrm/crm/eventstore/postgres/postgrestest"
	"github.com/eventcrm/crm/eventstore/sqlite"
	"github.com/eventcrm/crm/projections"
)

// Backend is an event store with a read-model database beside it, as `crm serve` pairs them.
type Backend struct {
	Name string
	Open func(t testing.TB) (eventstore.Store, *projections.DB)
}

// Backends are SQLite (both in files of a temporary directory) and PostgreSQL (both in
// fresh schemas of the database PostgresURL names; a test fails when it cannot be reached).
func Backends() []Backend {
	return []Backend{
		{"sqlite", func(t testing.TB) (eventstore.Store, *projections.DB) {
			dir := t.TempDir()
			store, err := sqlite.Open(context.Background(), filepath.Join(dir, "crm.db"), sqlite.WithPollInterval(50*time.Millisecond))
			if err != nil {
				t.Fatalf("open sqlite store: %v", err)
			}
			t.Cleanup(func() { store.Close() })
			db, err := projections.OpenSQLite(context.Background(), filepath.Join(dir, "readmodels.db"))
			if err != nil {
				t.Fatalf("open read models: %v", err)
			}
			t.Cleanup(func() { db.SQL.Close() })
			return Upcasting(t, store), db
		}},
		{"postgres", func(t testing.TB) (eventstore.Store, *projections.DB) {
			url := PostgresURL()
			storeSchema, rmSchema := FreshSchema(t, "projections_test_store_"), FreshSchema(t, "projections_test_rm_")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			store, err := postgres.Open(ctx, url, postgres.WithSchema(storeSchema), postgres.WithPollInterval(50*time.Millisecond))
			if err != nil {
				t.Fatalf("open postgres store at %s (set CRM_TEST_POSTGRES_URL): %v", url, err)
			}
			t.Cleanup(func() { store.Close() })
			db, err := projections.OpenPostgres(ctx, url, rmSchema)
			if err != nil {
				t.Fatalf("open postgres read models: %v", err)
			}
			t.Cleanup(func() { db.SQL.Close() })
			return Upcasting(t, store), db
		}},
	}
}

// Upcasting is store read through a codec with the catalog's upcasters, as `crm serve` reads
// it (without sealing: these stores hold no key): events of older versions, such as the
// contact.created.v1 of the histories, are read as their newest version.
func Upcasting(t testing.TB, store eventstore.Store) eventstore.Store {
	var ups []codec.Upcaster
	for _, u := range catalog.Upcasters() {
		ups = append(ups, codec.Upcaster{From: u.From, To: u.To, Up: u.Up})
	}
	c, err := codec.New(codec.Config{Upcasters: ups})
	if err != nil {
		t.Fatal(err)
	}
	return codec.NewStore(store, c)
}

// FreshSchema names a schema no other test uses and drops it when t ends (after the pools
// registered later were closed).
func FreshSchema(t testing.TB, prefix string) string {
	schema := prefix + randomHex(t, 6)
	postgrestest.DropWhenDone(t, PostgresURL(), schema)
	return schema
}

// ForEachBackend runs test as parallel subtests, one per backend.
func ForEachBackend(t *testing.T, test func(t *testing.T, store eventstore.Store, db *projections.DB)) {
	for _, b := range Backends() {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			store, db := b.Open(t)
			test(t, store, db)
		})
	}
}
