package churn_test

import (
	"slices"
	"testing"
	"time"

	"github.com/eventcrm/crm/projections/churn"
	"github.com/eventcrm/crm/projections/projectiontest"
)

func TestReadModel(t *testing.T) {
	asOf := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	projectiontest.ReadModel[churn.Params, churn.Answer]{Projection: churn.Projection(), Name: "churn_points", Query: churn.Query,
		Refusals: slices.Concat(projectiontest.PageRefusals(churn.MaxLimit, churn.Params{Cohort: "2024-01"}), []projectiontest.Refusal[churn.Params]{
			{Name: "bad cohort", Params: churn.Params{AsOf: asOf, Cohort: "January"}, Field: "cohort"},
			{Name: "unknown channel", Params: churn.Params{AsOf: asOf, Channel: "fax"}, Field: "channel"},
			{Name: "negative dormant days", Params: churn.Params{AsOf: asOf, DormantDays: -1}, Field: "dormant_days"},
			{Name: "cursor of another list", Params: churn.Params{AsOf: asOf, Cursor: "eyJzIjoicHJvcG9zYWwifQ"}, Field: "cursor"},
		})}.Test(t)
}
