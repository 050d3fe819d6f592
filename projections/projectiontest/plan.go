package projectiontest

import (
	"context"
	"strings"
	"testing"

	"github.com/eventcrm/crm/projections"
)

// QueryPlan returns the plan the database chooses for stmt (written with ? placeholders)
// with args, one line per step: SQLite's EXPLAIN QUERY PLAN, PostgreSQL's EXPLAIN with
// sequential scans, bitmap scans and sorts priced out, so that a test's small tables are
// read the way a large one would be (a scan or a sort of a few rows is always cheapest): the
// plan shows whether an index serves the question, in its order. The tables are analyzed
// first.
func QueryPlan(t testing.TB, db *projections.DB, stmt string, args ...any) string {
	t.Helper()
	ctx := context.Background()
	tx, err := db.SQL.BeginTx(ctx, nil)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	defer tx.Rollback() //nolint:errcheck // nothing is written
	explain := "EXPLAIN QUERY PLAN "
	if db.Dialect == projections.Postgres {
		explain = "EXPLAIN "
		for _, s := range []string{"ANALYZE", "SET LOCAL enable_seqscan = off",
			"SET LOCAL enable_bitmapscan = off", "SET LOCAL enable_sort = off"} {
			if _, err := tx.ExecContext(ctx, s); err != nil {
				t.Fatalf("plan: %s: %v", s, err)
			}
		}
	} else if _, err := tx.ExecContext(ctx, "ANALYZE"); err != nil {
		t.Fatalf("plan: ANALYZE: %v", err)
	}
	rows, err := tx.QueryContext(ctx, explain+db.Dialect.Rebind(stmt), args...)
	if err != nil {
		t.Fatalf("plan of %s: %v", stmt, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	var lines []string
	for rows.Next() {
		// SQLite: id, parent, notused, detail; PostgreSQL: one line of text.
		values := make([]any, len(cols))
		var line string
		for i := range values {
			values[i] = new(any)
		}
		values[len(values)-1] = &line
		if err := rows.Scan(values...); err != nil {
			t.Fatalf("plan: %v", err)
		}
		lines = append(lines, line)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("plan: %v", err)
	}
	return strings.Join(lines, "\n")
}
