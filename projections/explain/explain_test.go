package explain_test

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/explain"
	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/readmodel"
)

// A table of a Shape keeps only the columns the shape names, keyed by position first when
// ByPosition; read through its Source, a part has the columns not kept at their zero value
// and counts 1, alone and beside the parts a read model keeps elsewhere (Question.Open).
func TestShapeKeepsItsColumnsAndReadsTheOthersAsZero(t *testing.T) {
	for _, tc := range []struct {
		name    string
		shape   explain.Shape
		columns []string
		insert  []any // the kept columns, in order
		want    explain.Part
	}{
		{name: "measure, by position", shape: explain.Shape{Measure: true, ByPosition: true},
			columns: []string{"position", "entity", "figure", "event_id", "at", "measure"},
			insert:  []any{int64(7), "c1", "f/a", "e7", int64(1000), int64(86_400_000_000)},
			want:    explain.Part{Entity: "c1", Figure: "f/a", Position: 7, EventID: "e7", At: 1000, Count: 1, Measure: 86_400_000_000}},
		{name: "until, owner, amounts", shape: explain.Shape{Until: true, Owner: true, Amounts: true},
			columns: []string{"entity", "figure", "position", "event_id", "at", "until_at", "owner", "amount", "currency"},
			insert:  []any{"d1", "f/a", int64(3), "e3", int64(500), int64(2000), "rep-a", int64(1234), "JPY"},
			want: explain.Part{Entity: "d1", Figure: "f/a", Position: 3, EventID: "e3", At: 500,
				Until: sql.NullInt64{Int64: 2000, Valid: true}, Owner: "rep-a", Count: 1, Amount: 1234, Currency: "JPY"}},
		{name: "every column", shape: explain.Shape{Bucket: true, Until: true, Owner: true, Channel: true, Segment: true, Amounts: true, Measure: true},
			columns: []string{"entity", "figure", "position", "event_id", "at", "bucket", "until_at", "owner", "channel", "segment", "amount", "currency", "measure"},
			insert:  []any{"d2", "f/a", int64(4), "e4", int64(600), "2026-01-02", nil, "rep-b", "web", "smb", int64(5), "EUR", int64(9)},
			want: explain.Part{Entity: "d2", Figure: "f/a", Position: 4, EventID: "e4", Bucket: "2026-01-02", At: 600, Owner: "rep-b",
				Channel: "web", Segment: "smb", Count: 1, Amount: 5, Currency: "EUR", Measure: 9}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
				ctx := context.Background()
				table := createParts(t, db, "parts_shape", tc.shape.NewTable("parts"))
				rows, err := db.SQL.QueryContext(ctx, `SELECT * FROM `+table)
				if err != nil {
					t.Fatal(err)
				}
				columns, err := rows.Columns()
				rows.Close()
				if err != nil || !slices.Equal(columns, tc.columns) {
					t.Fatalf("columns %v (%v), want %v", columns, err, tc.columns)
				}
				insert := `INSERT INTO ` + table + ` VALUES (?` + strings.Repeat(", ?", len(tc.insert)-1) + `)`
				if _, err := db.SQL.ExecContext(ctx, db.Dialect.Rebind(insert), tc.insert...); err != nil {
					t.Fatalf("%s: %v", insert, err)
				}
				open := `SELECT 'o1', 'f/a', 9, 'e9', '', 100, NULL, '', '', '', 1, 0, '', 0`
				for _, q := range []explain.Question{
					{Figures: []string{"f/a"}, AsOf: time.UnixMicro(1500)},
					{Figures: []string{"f/"}, AsOf: time.UnixMicro(1500), Open: open},
				} {
					var got []explain.Part
					err := db.ReadOnly(ctx, func(tx *sql.Tx) error {
						var err error
						got, err = explain.Select(ctx, tx, db.Dialect, tc.shape.Source(table), q)
						return err
					})
					if err != nil {
						t.Fatal(err)
					}
					want := []explain.Part{tc.want}
					if q.Open != "" {
						want = append(want, explain.Part{Entity: "o1", Figure: "f/a", Position: 9, EventID: "e9", At: 100, Count: 1})
					}
					if !slices.Equal(got, want) {
						t.Errorf("open %t: parts\n%+v, want\n%+v", q.Open != "", got, want)
					}
				}
			})
		})
	}
}

// A figure prefix over a month (the parts of a month's won deals, in every currency) is read
// figure by figure, each a range of the figure index over the month: not every part of the
// prefix of every month. The parts are those of a plain filter of every row.
func TestPrefixOverAMonthReadsTheMonthOfEachFigure(t *testing.T) {
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		ctx := context.Background()
		table := createParts(t, db, "parts_prefix", explain.NewTable("parts"))
		figures := []string{"won/EUR", "won/JPY", "won/USD", "wonder/x", "lost/JPY", "lead/web", "lead/seminar"}
		var all []explain.Part
		tx, err := db.SQL.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		insert := db.Dialect.Rebind(`INSERT INTO ` + table + ` VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		pos := int64(0)
		for month := range 24 {
			bucket := time.Date(2024, time.Month(1+month), 1, 0, 0, 0, 0, time.UTC)
			for i := range 120 {
				pos++
				p := explain.Part{Entity: fmt.Sprintf("d%05d", pos), Figure: figures[i%len(figures)], Position: pos,
					EventID: fmt.Sprintf("e%d", pos), Bucket: bucket.AddDate(0, 0, i%28).Format(time.DateOnly),
					At: bucket.UnixMicro() + int64(i), Owner: "rep-a", Count: 1, Amount: 100, Currency: "JPY"}
				if i%11 == 0 {
					p.Until = sql.NullInt64{Int64: p.At + 1, Valid: true} // revoked at once
				}
				if _, err := tx.ExecContext(ctx, insert, p.Entity, p.Figure, p.Position, p.EventID, p.Bucket, p.At, p.Until,
					p.Owner, p.Channel, p.Segment, p.Count, p.Amount, p.Currency, p.Measure); err != nil {
					t.Fatal(err)
				}
				all = append(all, p)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if _, err := db.SQL.ExecContext(ctx, `ANALYZE `+table); err != nil {
			t.Fatal(err)
		}
		asOf := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
		q := explain.Question{Figures: []string{"won/", "lost/JPY"}, From: "2025-03-01", To: "2025-04-01", AsOf: asOf}
		var want []explain.Part
		for _, p := range all {
			if (strings.HasPrefix(p.Figure, "won/") || p.Figure == "lost/JPY") && p.Bucket >= q.From && p.Bucket < q.To &&
				p.At <= asOf.UnixMicro() && (!p.Until.Valid || p.Until.Int64 > asOf.UnixMicro()) {
				want = append(want, p)
			}
		}
		var (
			got  []explain.Part
			stmt string
			args []any
		)
		err = db.ReadOnly(ctx, func(tx *sql.Tx) error {
			var err error
			if got, err = explain.Select(ctx, tx, db.Dialect, table, q); err != nil {
				return err
			}
			stmt, args, err = explain.SelectStatement(ctx, tx, db.Dialect, table, q)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(want) == 0 || !slices.Equal(got, want) {
			t.Fatalf("parts (%d)\n%+v\nwant (%d)\n%+v", len(got), got, len(want), want)
		}
		plan := projectiontest.QueryPlanAsRun(t, db, stmt, args...)
		byMonth := strings.Contains(plan, "figure=? AND bucket>? AND bucket<?") || // SQLite
			strings.Contains(plan, "(bucket >= ") && strings.Contains(plan, "Index Cond") // PostgreSQL
		// A range of figure names in the index condition reads every part of the prefix (of
		// every month) in the index.
		rangeOfFigures := strings.Contains(plan, "figure>?") || strings.Contains(plan, "figure >=")
		if !byMonth || rangeOfFigures || !strings.Contains(plan, "_figure") {
			t.Errorf("the parts are not read by the figure index over the month:\n%s\n%s", stmt, plan)
		}
	})
}

// createParts creates parts, a parts table of a read model named name, in db, and returns its
// name there.
func createParts(t *testing.T, db *projections.DB, name string, parts readmodel.AnyTable) string {
	t.Helper()
	m := readmodel.Define(readmodel.Spec{Name: name, Version: 1, Tables: []readmodel.AnyTable{parts},
		Fold: func(*readmodel.Event, *readmodel.Rows) error { return nil }})
	set := projections.TablesFor(m, "")
	for _, s := range m.Schema(db.Dialect, set) {
		if _, err := db.SQL.ExecContext(context.Background(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	return set.Name("parts")
}
