package projectiontest

import (
	"context"
	"os"
	"strconv"
	"testing"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
)

// EnvCount is the count the environment variable name gives (at least least), def when it is
// not set; a benchmark's size.
func EnvCount(b *testing.B, name string, least, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < least {
		b.Fatalf("%s=%q is not a count of at least %d", name, v, least)
	}
	return n
}

// Loaded is a fresh database of dialect d holding the read model of p built from events, in
// batches of batch events, as a benchmark's data set: on PostgreSQL then vacuumed and
// analyzed, as autovacuum does after a load (statistics, and the visibility map that lets a
// query scan an index without the table).
func Loaded(b *testing.B, d projections.Dialect, p projections.Projection, events []eventstore.Event, batch int) (*projections.DB, projections.Tables) {
	b.Helper()
	db := Open(b, d)
	tables := projections.TablesFor(p, "")
	ctx := context.Background()
	if err := db.EnsureSchema(ctx, p, tables); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < len(events); i += batch {
		if _, err := db.ApplyBatch(ctx, p, tables, events[i:min(i+batch, len(events))]); err != nil {
			b.Fatal(err)
		}
	}
	if d == projections.Postgres {
		if _, err := db.SQL.ExecContext(ctx, "VACUUM ANALYZE"); err != nil {
			b.Fatal(err)
		}
	}
	return db, tables
}
