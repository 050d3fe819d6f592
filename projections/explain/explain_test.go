package explain_test

import (
	"context"
	"database/sql"
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
				m := readmodel.Define(readmodel.Spec{Name: "parts_shape", Version: 1,
					Tables: []readmodel.AnyTable{tc.shape.NewTable("parts")},
					Fold:   func(*readmodel.Event, *readmodel.Rows) error { return nil }})
				set := projections.TablesFor(m, "")
				for _, s := range m.Schema(db.Dialect, set) {
					if _, err := db.SQL.ExecContext(ctx, s); err != nil {
						t.Fatalf("%s: %v", s, err)
					}
				}
				table := set.Name("parts")
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
