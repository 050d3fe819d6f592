package projectiontest_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// A benchmark's data set is vacuumed and analyzed on PostgreSQL, its own tables only: the
// other schemas of the database (other tests and benchmarks, a shared seed) are not touched.
func TestLoadedVacuumsItsOwnTablesOnly(t *testing.T) {
	ctx := context.Background()
	other := projectiontest.Postgres(t)
	if _, err := other.SQL.ExecContext(ctx, `CREATE TABLE elsewhere (id BIGINT PRIMARY KEY)`); err != nil {
		t.Fatalf("create a table elsewhere: %v", err)
	}
	if _, err := other.SQL.ExecContext(ctx, `INSERT INTO elsewhere VALUES (1)`); err != nil {
		t.Fatalf("fill the table elsewhere: %v", err)
	}
	p := &projectiontest.Counter{}
	events := projectiontest.MustParseHistory(t, `
2024-01-01T00:00:00Z contact-a t.one {}
2024-01-02T00:00:00Z contact-a t.two {}
`)
	db, tables := projectiontest.Loaded(t, projections.Postgres, p, events, 1)

	for _, tc := range []struct {
		db       *projections.DB
		table    string
		vacuumed bool
	}{
		{db, tables.Name("counts"), true},
		{db, tables.Name("seen"), true},
		{db, tables.Name("streams"), true},
		{other, "elsewhere", false},
	} {
		var vacuumed, analyzed bool
		err := tc.db.SQL.QueryRowContext(ctx, `SELECT last_vacuum IS NOT NULL, last_analyze IS NOT NULL
			FROM pg_stat_user_tables WHERE schemaname = current_schema() AND relname = $1`, tc.table).Scan(&vacuumed, &analyzed)
		if errors.Is(err, sql.ErrNoRows) {
			t.Fatalf("no statistics of %s", tc.table)
		}
		if err != nil {
			t.Fatalf("statistics of %s: %v", tc.table, err)
		}
		if vacuumed != tc.vacuumed || analyzed != tc.vacuumed {
			t.Errorf("%s: vacuumed %v, analyzed %v; want both %v", tc.table, vacuumed, analyzed, tc.vacuumed)
		}
	}
}
