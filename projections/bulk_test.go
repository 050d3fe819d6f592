package projections_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// Upserts of many rows in a builder's batch (on PostgreSQL copied into a temporary table and
// merged from there) end as the same upserts one row at a time would: counters added to the
// stored rows or inserted, rows overwritten or inserted, twice in one transaction.
func TestInsertManyRowsMergesThemWithTheStoredOnes(t *testing.T) {
	const n = 1500 // beyond the rows from which a batch is copied and merged
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		ctx := context.Background()
		for _, tc := range []struct {
			name       string
			onConflict projections.OnConflict
			// want is the count of key i after the stored rows and two upserts of i*10+1.
			want func(i int64) int64
		}{
			{"add", projections.ConflictAdd, func(i int64) int64 {
				stored := int64(0)
				if i%2 == 0 {
					stored = i
				}
				return stored + 2*(i*10+1)
			}},
			{"update", projections.ConflictUpdate, func(i int64) int64 { return i*10 + 1 }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				table := "merged_" + tc.name
				if _, err := db.SQL.ExecContext(ctx, `CREATE TABLE `+table+` (owner TEXT NOT NULL, day BIGINT NOT NULL, n BIGINT NOT NULL, PRIMARY KEY (owner, day))`); err != nil {
					t.Fatal(err)
				}
				// Every other key is stored before.
				for i := int64(0); i < n; i += 2 {
					if _, err := db.SQL.ExecContext(ctx, db.Dialect.Rebind(`INSERT INTO `+table+` VALUES (?, ?, ?)`), fmt.Sprint("o", i%7), i, i); err != nil {
						t.Fatal(err)
					}
				}
				b := &projections.Builder{DB: db}
				if err := b.Open(ctx); err != nil {
					t.Fatal(err)
				}
				defer b.Close()
				tx, err := b.BeginGroup(ctx, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
				var values []any
				for i := int64(n - 1); i >= 0; i-- {
					values = append(values, fmt.Sprint("o", i%7), i, i*10+1)
				}
				for range 2 {
					if err := tx.Insert(ctx, table, []string{"owner", "day", "n"}, 2, tc.onConflict, append([]any(nil), values...)); err != nil {
						t.Fatal(err)
					}
				}
				if err := tx.Commit(); err != nil {
					t.Fatal(err)
				}
				rows, err := db.SQL.QueryContext(ctx, `SELECT owner, day, n FROM `+table+` ORDER BY day`)
				if err != nil {
					t.Fatal(err)
				}
				defer rows.Close()
				var i int64
				for ; rows.Next(); i++ {
					var (
						owner  string
						day, c int64
					)
					if err := rows.Scan(&owner, &day, &c); err != nil {
						t.Fatal(err)
					}
					if owner != fmt.Sprint("o", i%7) || day != i || c != tc.want(i) {
						t.Fatalf("row %d = %s, %d, %d; want %s, %d, %d", i, owner, day, c, fmt.Sprint("o", i%7), i, tc.want(i))
					}
				}
				if err := rows.Err(); err != nil {
					t.Fatal(err)
				}
				if i != n {
					t.Errorf("%d rows, want %d", i, n)
				}
			})
		}
	})
}
