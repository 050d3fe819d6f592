package churn_test

import (
	"context"
	"errors"
	"flag"
	"testing"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/churn"
	"github.com/eventcrm/crm/projections/projectiontest"
)

var update = flag.Bool("update", false, "rewrite the golden answers in testdata (then check them by hand)")

func TestGolden(t *testing.T) {
	projectiontest.RunGolden(t, "testdata", churn.Projection(), projectiontest.AnswerWith(churn.Query), *update)
}

func TestApplyModes(t *testing.T) {
	projectiontest.RunApplyModes(t, "testdata", churn.Projection())
}

func TestQueryRejectsBadParams(t *testing.T) {
	asOf := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		params churn.Params
		field  string
	}{
		{"no as_of", churn.Params{Cohort: "2024-01"}, "as_of"},
		{"bad cohort", churn.Params{AsOf: asOf, Cohort: "January"}, "cohort"},
		{"unknown channel", churn.Params{AsOf: asOf, Channel: "fax"}, "channel"},
		{"negative dormant days", churn.Params{AsOf: asOf, DormantDays: -1}, "dormant_days"},
		{"negative limit", churn.Params{AsOf: asOf, Limit: -1}, "limit"},
		{"limit over the maximum", churn.Params{AsOf: asOf, Limit: churn.MaxLimit + 1}, "limit"},
		{"cursor not base64", churn.Params{AsOf: asOf, Cursor: "!!"}, "cursor"},
		{"cursor of another list", churn.Params{AsOf: asOf, Cursor: "eyJzIjoicHJvcG9zYWwifQ"}, "cursor"},
	}
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		tables := projections.TablesFor(churn.Projection(), "")
		projectiontest.MustApply(t, db, churn.Projection(), tables, nil)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := churn.Query(context.Background(), db, tables, tt.params)
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
	if got := (churn.Projection()).Name(); got != "churn_points" {
		t.Errorf("name = %q, want %q", got, "churn_points")
	}
}
