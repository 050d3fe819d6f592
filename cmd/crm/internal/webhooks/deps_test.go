package webhooks_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/eventcrm/crm/cmd/crm/internal/webhooks"
	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/keys"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/hooks"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// deps is what a Service needs besides its settings, real: the command handler over store, a
// key store in a SQLite file, and the subscriptions' read model kept live by a runner (until
// the test ends).
func deps(t testing.TB, store eventstore.Store, db *projections.DB) webhooks.Config {
	t.Helper()
	k, err := keys.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "keys.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k.Close() })
	r := projectiontest.NewRunner(t, projectiontest.RunnerConfig(store, db), hooks.Projection())
	projectiontest.Start(t, r)
	return webhooks.Config{DB: db, Store: store, Commands: commands.NewHandler(store), Keys: k,
		Tables: func(context.Context) (projections.Tables, error) { return r.Tables(hooks.Name) }}
}

// with is cfg with the dependencies of base.
func with(base, cfg webhooks.Config) webhooks.Config {
	cfg.DB, cfg.Store, cfg.Commands, cfg.Keys, cfg.Tables = base.DB, base.Store, base.Commands, base.Keys, base.Tables
	return cfg
}

// admin is the metadata of an admin's change.
var admin = commands.Meta{Actor: "admin", Reason: "test"}
