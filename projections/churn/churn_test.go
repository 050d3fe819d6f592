package churn_test

import (
	"testing"
	"time"

	"github.com/eventcrm/crm/projections/churn"
	"github.com/eventcrm/crm/projections/projectiontest"
)

func TestGolden(t *testing.T) {
	projectiontest.RunGolden(t, "testdata", churn.Projection(), projectiontest.AnswerWith(churn.Query))
}

func TestApplyModes(t *testing.T) {
	projectiontest.RunApplyModes(t, "testdata", churn.Projection())
}

func TestQueryRejectsBadParams(t *testing.T) {
	asOf := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	projectiontest.Refuses(t, churn.Projection(), churn.Query, []projectiontest.Refusal[churn.Params]{
		{Name: "no as_of", Params: churn.Params{Cohort: "2024-01"}, Field: "as_of"},
		{Name: "bad cohort", Params: churn.Params{AsOf: asOf, Cohort: "January"}, Field: "cohort"},
		{Name: "unknown channel", Params: churn.Params{AsOf: asOf, Channel: "fax"}, Field: "channel"},
		{Name: "negative dormant days", Params: churn.Params{AsOf: asOf, DormantDays: -1}, Field: "dormant_days"},
		{Name: "negative limit", Params: churn.Params{AsOf: asOf, Limit: -1}, Field: "limit"},
		{Name: "limit over the maximum", Params: churn.Params{AsOf: asOf, Limit: churn.MaxLimit + 1}, Field: "limit"},
		{Name: "cursor not base64", Params: churn.Params{AsOf: asOf, Cursor: "!!"}, Field: "cursor"},
		{Name: "cursor of another list", Params: churn.Params{AsOf: asOf, Cursor: "eyJzIjoicHJvcG9zYWwifQ"}, Field: "cursor"},
	})
}

// The name is persisted (checkpoints, table names): it must never change.
func TestName(t *testing.T) {
	if got := (churn.Projection()).Name(); got != "churn_points" {
		t.Errorf("name = %q, want %q", got, "churn_points")
	}
}
