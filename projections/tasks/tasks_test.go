package tasks_test

import (
	"slices"
	"testing"
	"time"

	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/tasks"
)

func TestReadModel(t *testing.T) {
	asOf := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	projectiontest.ReadModel[tasks.Params, tasks.Answer]{Projection: tasks.Projection(), Name: "tasks", Query: tasks.Query,
		Refusals: slices.Concat(projectiontest.PageRefusals(tasks.MaxLimit, tasks.Params{}), []projectiontest.Refusal[tasks.Params]{
			{Name: "unknown status", Params: tasks.Params{AsOf: asOf, Status: "late"}, Field: "status"},
			{Name: "due_from not a date", Params: tasks.Params{AsOf: asOf, DueFrom: "2024-02-30"}, Field: "due_from"},
			{Name: "due_to not a date", Params: tasks.Params{AsOf: asOf, DueTo: "tomorrow"}, Field: "due_to"},
			{Name: "due_to before due_from", Params: tasks.Params{AsOf: asOf, DueFrom: "2024-02-02", DueTo: "2024-02-01"}, Field: "due_to"},
			{Name: "cursor without task", Params: tasks.Params{AsOf: asOf, Cursor: "eyJkIjoiMjAyNC0wMS0wMSJ9"}, Field: "cursor"},
		})}.Test(t)
}
