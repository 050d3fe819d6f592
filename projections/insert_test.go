package projections_test

import (
	"context"
	"testing"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// A table whose columns are all key (a set of pairs) takes a row twice in every conflict
// mode but ConflictFail: there is nothing to update or add, so the second is the same row
// (the statement used to end in an empty SET list, a syntax error on both backends).
func TestInsertIntoATableThatIsAllKey(t *testing.T) {
	projectiontest.ForEachBackend(t, func(t *testing.T, _ eventstore.Store, db *projections.DB) {
		ctx := context.Background()
		if _, err := db.SQL.ExecContext(ctx, `CREATE TABLE pairs (a TEXT NOT NULL, b TEXT NOT NULL, PRIMARY KEY (a, b))`); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name string
			mode projections.OnConflict
		}{{"ignore", projections.ConflictIgnore}, {"update", projections.ConflictUpdate}, {"add", projections.ConflictAdd}} {
			t.Run(tc.name, func(t *testing.T) {
				for range 2 {
					tx, err := db.Begin(ctx)
					if err != nil {
						t.Fatal(err)
					}
					err = tx.Insert(ctx, "pairs", []string{"a", "b"}, 2, tc.mode, []any{tc.name, "x", tc.name, "y"})
					if err != nil {
						_ = tx.Rollback()
						t.Fatalf("insert: %v", err)
					}
					if err := tx.Commit(); err != nil {
						t.Fatal(err)
					}
				}
				var n int
				if err := db.SQL.QueryRowContext(ctx, db.Dialect.Rebind(`SELECT count(*) FROM pairs WHERE a = ?`), tc.name).Scan(&n); err != nil {
					t.Fatal(err)
				}
				if n != 2 {
					t.Fatalf("%d rows, want 2", n)
				}
			})
		}
	})
}
