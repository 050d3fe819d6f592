package tasks_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/tasks"
)

// Paging through the tasks neither repeats nor misses one, at every page size, about now and
// about a past time.
func TestPagingNeitherRepeatsNorMisses(t *testing.T) {
	history := projectiontest.ReadHistory(t, "testdata/assigned/events.txt")
	tests := []struct {
		name string
		asOf time.Time
	}{
		{"now", time.Date(2024, 2, 10, 0, 0, 0, 0, time.UTC)},
		{"past", time.Date(2024, 1, 20, 12, 0, 0, 0, time.UTC)},
	}
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		ctx := context.Background()
		tables := projections.TablesFor(tasks.Projection(), "")
		projectiontest.MustApply(t, db, tasks.Projection(), tables, history)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				all, err := tasks.Query(ctx, db, tables, tasks.Params{AsOf: tt.asOf, Limit: tasks.MaxLimit})
				if err != nil {
					t.Fatal(err)
				}
				want := ids(all.Tasks)
				for limit := 1; limit <= len(want)+1; limit++ {
					t.Run(fmt.Sprint("limit ", limit), func(t *testing.T) {
						var got []string
						params := tasks.Params{AsOf: tt.asOf, Limit: limit}
						for range len(want) + 2 {
							page, err := tasks.Query(ctx, db, tables, params)
							if err != nil {
								t.Fatal(err)
							}
							got = append(got, ids(page.Tasks)...)
							if params.Cursor = page.NextCursor; page.NextCursor == "" {
								break
							}
						}
						if !slices.Equal(got, want) {
							t.Fatalf("pages of %d gave %v, want %v", limit, got, want)
						}
					})
				}
			})
		}
	})
}

func ids(list []tasks.Task) []string {
	out := make([]string, len(list))
	for i, tk := range list {
		out[i] = tk.TaskID
	}
	return out
}
