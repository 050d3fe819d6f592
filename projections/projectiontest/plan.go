package projectiontest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
)

// PlanSorts tells whether a plan (QueryPlan's) sorts the rows it reads: SQLite's TEMP B-TREE,
// PostgreSQL's Sort.
func PlanSorts(plan string) bool {
	return strings.Contains(plan, "TEMP B-TREE") || strings.Contains(plan, "Sort")
}

// pageLimit is the line of a PostgreSQL plan that limits the rows read to a page.
var pageLimit = regexp.MustCompile(`(?m)^( *)(->  )?Limit `)

// PlanSortsBelowPage tells whether a plan (QueryPlan's) sorts rows before they are limited to
// a page: a sort of the page's rows, above its limit, is not one of all the rows read. SQLite:
// any sort but the last (ORDER BY), which sorts the page's rows.
func PlanSortsBelowPage(plan string) bool {
	if strings.Count(plan, "TEMP B-TREE") > 1 {
		return true
	}
	loc := pageLimit.FindStringIndex(plan)
	if loc == nil {
		return strings.Contains(plan, "Sort")
	}
	below := plan[loc[1]:]
	return strings.Contains(below, "Sort  (") || strings.Contains(below, "Sort Key")
}

// QueryPlan returns the plan the database chooses for stmt (written with ? placeholders)
// with args, one line per step: SQLite's EXPLAIN QUERY PLAN; on PostgreSQL, the plan of stmt
// prepared as the product's connections prepare it, under their own plan_cache_mode (the
// read models plan a prepared question once, for any arguments: a plan that reads a common
// value's rows by an index suits a rare value too), with sequential scans, bitmap scans and
// sorts priced out, so that a test's small tables are read the way a large one would be (a
// scan or a sort of a few rows is always cheapest): the plan shows whether an index serves
// the question, in its order. The tables are analyzed first (vacuumed too on PostgreSQL).
func QueryPlan(t testing.TB, db *projections.DB, stmt string, args ...any) string {
	t.Helper()
	return QueryPlanWith(t, db, "", stmt, args...)
}

// QueryPlanWith is QueryPlan of a question that runs setting first in its transaction on
// PostgreSQL ("": none), such as Features.CustomPlans.
func QueryPlanWith(t testing.TB, db *projections.DB, setting, stmt string, args ...any) string {
	t.Helper()
	return queryPlan(t, db, []string{"SET LOCAL enable_seqscan = off", "SET LOCAL enable_bitmapscan = off",
		"SET LOCAL enable_sort = off", setting}, stmt, args...)
}

// QueryPlanAsRun is the plan that runs stmt with args on PostgreSQL, prepared as the product's
// connections prepare it, with nothing priced out: for a data set of thousands of rows with
// their statistics, on which the planner chooses as it does in production (a hash join
// that reads a whole table looks cheaper on a small one). On SQLite, QueryPlan.
func QueryPlanAsRun(t testing.TB, db *projections.DB, stmt string, args ...any) string {
	t.Helper()
	return queryPlan(t, db, nil, stmt, args...)
}

// queryPlan is the plan of stmt with args, the settings run first in its transaction on
// PostgreSQL ("": none).
func queryPlan(t testing.TB, db *projections.DB, settings []string, stmt string, args ...any) string {
	t.Helper()
	ctx := context.Background()
	conn, err := db.SQL.Conn(ctx)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	defer conn.Close()
	if db.Dialect == projections.Postgres {
		vacuumSchema(t, ctx, conn)
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	defer tx.Rollback() //nolint:errcheck // nothing is written
	explain, explainArgs := "EXPLAIN QUERY PLAN "+stmt, args
	if db.Dialect == projections.Postgres {
		for _, s := range settings {
			if s == "" {
				continue
			}
			if _, err := tx.ExecContext(ctx, s); err != nil {
				t.Fatalf("plan: %s: %v", s, err)
			}
		}
		name := preparedName()
		if _, err := tx.ExecContext(ctx, "PREPARE "+name+" AS "+db.Dialect.Rebind(stmt)); err != nil {
			t.Fatalf("plan: prepare %s: %v", stmt, err)
		}
		// A prepared statement outlives the transaction: gone with the test's connection.
		defer conn.ExecContext(ctx, "DEALLOCATE "+name) //nolint:errcheck // the schema is dropped after the test
		explain, explainArgs = "EXPLAIN EXECUTE "+name+literals(t, args), nil
	} else if _, err := tx.ExecContext(ctx, "ANALYZE"); err != nil {
		t.Fatalf("plan: ANALYZE: %v", err)
	}
	return planLines(t, ctx, tx, explain, explainArgs)
}

// vacuumSchema vacuums and analyzes the tables of the connection's schema, as autovacuum
// keeps a table that is written to: the size of an index counts in its price, and one that
// lost entries (a row updated out of a partial index) is only as small as its live entries
// once vacuumed.
func vacuumSchema(t testing.TB, ctx context.Context, conn *sql.Conn) {
	t.Helper()
	tables := schemaTables(t, ctx, conn)
	if tables == "" {
		return
	}
	if _, err := conn.ExecContext(ctx, "VACUUM (ANALYZE) "+tables); err != nil {
		t.Fatalf("plan: vacuum: %v", err)
	}
}

// schemaTables lists the tables of the current schema, quoted, for a VACUUM or an ANALYZE
// ("": none).
func schemaTables(t testing.TB, ctx context.Context, q projections.Queryer) string {
	t.Helper()
	var tables sql.NullString
	if err := q.QueryRowContext(ctx, `SELECT string_agg(quote_ident(tablename), ', ')
		FROM pg_tables WHERE schemaname = current_schema()`).Scan(&tables); err != nil {
		t.Fatalf("plan: tables: %v", err)
	}
	return tables.String
}

// planLines runs an EXPLAIN and returns its lines.
func planLines(t testing.TB, ctx context.Context, tx *sql.Tx, explain string, args []any) string {
	t.Helper()
	rows, err := tx.QueryContext(ctx, explain, args...)
	if err != nil {
		t.Fatalf("plan of %s: %v", explain, err)
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

// preparedName is a name no other prepared statement of a connection has.
func preparedName() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return "plan_" + hex.EncodeToString(b)
}

// literals writes args as the argument list of an EXECUTE, each a literal that PostgreSQL
// casts to its parameter's type: a utility statement such as EXPLAIN takes no parameters.
func literals(t testing.TB, args []any) string {
	t.Helper()
	if len(args) == 0 {
		return ""
	}
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = literal(t, a)
	}
	return "(" + strings.Join(out, ", ") + ")"
}

func literal(t testing.TB, a any) string {
	t.Helper()
	quote := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	switch v := a.(type) {
	case nil:
		return "NULL"
	case string:
		return quote(v)
	case []string:
		items := make([]string, len(v))
		for i, s := range v {
			items[i] = quote(s)
		}
		return "ARRAY[" + strings.Join(items, ", ") + "]::text[]"
	case bool:
		return strconv.FormatBool(v)
	case int:
		return strconv.Itoa(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case time.Time:
		return quote(v.Format(time.RFC3339Nano))
	default:
		t.Fatalf("plan: no literal for an argument of type %T", a)
		return ""
	}
}

// Prepared counts how a prepared statement ran: its plans made for any arguments (generic)
// and those made for the arguments of one run (custom).
type Prepared struct {
	Generic, Custom int64
}

// AskedOnOneConnection applies the history events to the set of p in a fresh PostgreSQL
// read-model database of one connection, runs ask on it, and returns how each statement of
// the set's tables that ask ran was prepared and planned, by its text (with placeholders as
// Dialect.Rebind writes them): the runs of the apply's statements left out.
func AskedOnOneConnection(t testing.TB, p projections.Projection, events []eventstore.Event, ask func(db *projections.DB, set projections.Tables)) map[string]Prepared {
	t.Helper()
	_, ran := ranOnOneConnection(t, p, events, func(*projections.DB) {}, ask)
	asked := make(map[string]Prepared, len(ran))
	for stmt, s := range ran {
		asked[stmt] = s.Prepared
	}
	return asked
}

// GenericPlans applies the history events to the set of p in a fresh PostgreSQL read-model
// database of one connection, analyzes its tables, runs ask on it, and returns the plan
// PostgreSQL made for any arguments of each statement of the set's tables that ask ran (as
// the product's sessions plan it, decision 36), by its text (with placeholders as
// Dialect.Rebind writes them): the statements of the apply left out. Unlike QueryPlan,
// nothing is priced out: the plans are the planner's own choice at the size of the tables,
// so events must make tables of a realistic size (thousands of rows). The tables are
// analyzed, not vacuumed, as a set built in place has them (decision 38): with an empty
// visibility map, an index-only scan is priced as reading the table too.
func GenericPlans(t testing.TB, p projections.Projection, events []eventstore.Event, ask func(db *projections.DB, set projections.Tables)) map[string]string {
	t.Helper()
	ctx := context.Background()
	db, ran := ranOnOneConnection(t, p, events, func(db *projections.DB) {
		if _, err := db.SQL.ExecContext(ctx, "ANALYZE "+schemaTables(t, ctx, db.SQL)); err != nil {
			t.Fatalf("plans: analyze: %v", err)
		}
	}, ask)
	plans := make(map[string]string, len(ran))
	for stmt, s := range ran {
		// The plan made for any arguments is the same for every argument: NULL will do.
		explain := `EXPLAIN EXECUTE "` + strings.ReplaceAll(s.name, `"`, `""`) + `"`
		if s.params > 0 {
			explain += "(NULL" + strings.Repeat(", NULL", s.params-1) + ")"
		}
		tx, err := db.SQL.BeginTx(ctx, nil)
		if err != nil {
			t.Fatalf("plans: %v", err)
		}
		plans[stmt] = planLines(t, ctx, tx, explain, nil)
		if err := tx.Rollback(); err != nil {
			t.Fatalf("plans: %v", err)
		}
	}
	return plans
}

// prepared is a statement prepared on a connection: its name, how many parameters it takes
// and how it ran.
type prepared struct {
	Prepared
	name   string
	params int
}

// ranOnOneConnection applies the history events to the set of p in a fresh PostgreSQL
// read-model database of one connection, runs before and then ask on it, and returns the
// database and each statement of the set's tables that ask ran, by its text, with the runs
// ask made.
func ranOnOneConnection(t testing.TB, p projections.Projection, events []eventstore.Event, before func(db *projections.DB),
	ask func(db *projections.DB, set projections.Tables)) (*projections.DB, map[string]prepared) {
	t.Helper()
	db := Postgres(t)
	db.SQL.SetMaxOpenConns(1) // the questions and pg_prepared_statements share it
	set := projections.TablesFor(p, "")
	MustApply(t, db, p, set, events)
	before(db)
	applied := preparedStatements(t, db)
	ask(db, set)
	ran := map[string]prepared{}
	for stmt, s := range preparedStatements(t, db) {
		s.Generic -= applied[stmt].Generic
		s.Custom -= applied[stmt].Custom
		if s.Prepared != (Prepared{}) && strings.Contains(stmt, set.Prefix()) {
			ran[stmt] = s
		}
	}
	return db, ran
}

// preparedStatements returns, by statement text, the statements prepared on the one
// connection of db.
func preparedStatements(t testing.TB, db *projections.DB) map[string]prepared {
	t.Helper()
	rows, err := db.SQL.QueryContext(context.Background(),
		`SELECT statement, name, cardinality(parameter_types), generic_plans, custom_plans FROM pg_prepared_statements`)
	if err != nil {
		t.Fatalf("prepared statements: %v", err)
	}
	defer rows.Close()
	out := map[string]prepared{}
	for rows.Next() {
		var (
			stmt string
			p    prepared
		)
		if err := rows.Scan(&stmt, &p.name, &p.params, &p.Generic, &p.Custom); err != nil {
			t.Fatalf("prepared statements: %v", err)
		}
		if _, ok := out[stmt]; ok {
			t.Errorf("prepared twice on one connection: %s", stmt)
		}
		out[stmt] = p
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("prepared statements: %v", err)
	}
	return out
}
