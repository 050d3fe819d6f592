package tasks_test

import (
	"context"
	"errors"
	"flag"
	"testing"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/tasks"
)

var update = flag.Bool("update", false, "rewrite the golden answers in testdata (then check them by hand)")

func TestGolden(t *testing.T) {
	projectiontest.RunGolden(t, "testdata", tasks.Projection(), projectiontest.AnswerWith(tasks.Query), *update)
}

func TestApplyModes(t *testing.T) {
	projectiontest.RunApplyModes(t, "testdata", tasks.Projection())
}

func TestQueryRejectsBadParams(t *testing.T) {
	asOf := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		params tasks.Params
		field  string
	}{
		{"no as_of", tasks.Params{}, "as_of"},
		{"unknown status", tasks.Params{AsOf: asOf, Status: "late"}, "status"},
		{"negative limit", tasks.Params{AsOf: asOf, Limit: -1}, "limit"},
		{"limit too large", tasks.Params{AsOf: asOf, Limit: tasks.MaxLimit + 1}, "limit"},
		{"due_from not a date", tasks.Params{AsOf: asOf, DueFrom: "2024-02-30"}, "due_from"},
		{"due_to not a date", tasks.Params{AsOf: asOf, DueTo: "tomorrow"}, "due_to"},
		{"due_to before due_from", tasks.Params{AsOf: asOf, DueFrom: "2024-02-02", DueTo: "2024-02-01"}, "due_to"},
		{"cursor not base64", tasks.Params{AsOf: asOf, Cursor: "!!"}, "cursor"},
		{"cursor without task", tasks.Params{AsOf: asOf, Cursor: "eyJkIjoiMjAyNC0wMS0wMSJ9"}, "cursor"},
	}
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		tables := projections.TablesFor(tasks.Projection(), "")
		projectiontest.MustApply(t, db, tasks.Projection(), tables, nil)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := tasks.Query(context.Background(), db, tables, tt.params)
				var de *domain.Error
				if !errors.As(err, &de) || de.Code != domain.CodeInvalid || de.Field != tt.field {
					t.Fatalf("error = %v, want an invalid %s", err, tt.field)
				}
			})
		}
	})
}

// The name is persisted (checkpoints, table names): it must never change.
func TestName(t *testing.T) {
	if got := tasks.Projection().Name(); got != "tasks" {
		t.Errorf("name = %q, want %q", got, "tasks")
	}
}
