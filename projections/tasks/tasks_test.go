package tasks_test

import (
	"testing"
	"time"

	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/tasks"
)

func TestGolden(t *testing.T) {
	projectiontest.RunGolden(t, "testdata", tasks.Projection(), projectiontest.AnswerWith(tasks.Query))
}

func TestApplyModes(t *testing.T) {
	projectiontest.RunApplyModes(t, "testdata", tasks.Projection())
}

func TestQueryRejectsBadParams(t *testing.T) {
	asOf := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	projectiontest.Refuses(t, tasks.Projection(), tasks.Query, []projectiontest.Refusal[tasks.Params]{
		{Name: "no as_of", Params: tasks.Params{}, Field: "as_of"},
		{Name: "unknown status", Params: tasks.Params{AsOf: asOf, Status: "late"}, Field: "status"},
		{Name: "negative limit", Params: tasks.Params{AsOf: asOf, Limit: -1}, Field: "limit"},
		{Name: "limit too large", Params: tasks.Params{AsOf: asOf, Limit: tasks.MaxLimit + 1}, Field: "limit"},
		{Name: "due_from not a date", Params: tasks.Params{AsOf: asOf, DueFrom: "2024-02-30"}, Field: "due_from"},
		{Name: "due_to not a date", Params: tasks.Params{AsOf: asOf, DueTo: "tomorrow"}, Field: "due_to"},
		{Name: "due_to before due_from", Params: tasks.Params{AsOf: asOf, DueFrom: "2024-02-02", DueTo: "2024-02-01"}, Field: "due_to"},
		{Name: "cursor not base64", Params: tasks.Params{AsOf: asOf, Cursor: "!!"}, Field: "cursor"},
		{Name: "cursor without task", Params: tasks.Params{AsOf: asOf, Cursor: "eyJkIjoiMjAyNC0wMS0wMSJ9"}, Field: "cursor"},
	})
}

// The name is persisted (checkpoints, table names): it must never change.
func TestName(t *testing.T) {
	if got := tasks.Projection().Name(); got != "tasks" {
		t.Errorf("name = %q, want %q", got, "tasks")
	}
}
