package churn_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/churn"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// TestKeptCountsEqualVisits checks the counts the fold keeps against the visits: after every
// prefix of the history (contacts caught in every phase, lost, churned, won back, deals lost
// and reopened), for every kind of question, the answer about now (as_of at or after the
// latest event) equals the one read from every contact's visits, across the dormancy
// thresholds.
func TestKeptCountsEqualVisits(t *testing.T) {
	events := projectiontest.ReadHistory(t, "testdata/churn_points/events.txt")
	questions := []churn.Params{
		{},
		{Cohort: "2024-01"},
		{Channel: "web_form"},
		{DormantDays: 1},
		{Cohort: "2024-01", DormantDays: 30},
		{Limit: 1},
	}
	kept := projectiontest.Kept[churn.Params, churn.Answer, churn.Answer]{
		Questions: questions,
		Least:     time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), // an empty history: any time
		Later: []time.Duration{0, time.Microsecond, 37 * time.Hour, 29 * 24 * time.Hour, 31 * 24 * time.Hour,
			89 * 24 * time.Hour, 91 * 24 * time.Hour, 400 * 24 * time.Hour},
		Kept: churn.Query, From: "visits", Detail: churn.QueryVisits,
	}
	projectiontest.ForEachPrefixRun(t, churn.Projection(), events, 8, kept.Check)
}

// TestChurnedCustomersPages: the pages of churned customers, followed by their cursors, list
// every churn once, in order, as one large page does.
func TestChurnedCustomersPages(t *testing.T) {
	events := projectiontest.ReadHistory(t, "testdata/churn_points/events.txt")
	asOf := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	ctx := context.Background()
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		tables := projections.TablesFor(churn.Projection(), "")
		projectiontest.MustApply(t, db, churn.Projection(), tables, events)
		whole, err := churn.Query(ctx, db, tables, churn.Params{AsOf: asOf})
		if err != nil {
			t.Fatal(err)
		}
		if len(whole.ChurnedCustomers) < 2 || whole.NextCursor != "" {
			t.Fatalf("the history should have churns on one default page: %d, next %q", len(whole.ChurnedCustomers), whole.NextCursor)
		}
		for _, limit := range []int{1, 2, 3} {
			t.Run(fmt.Sprintf("limit %d", limit), func(t *testing.T) {
				var paged []churn.ChurnedCustomer
				params := churn.Params{AsOf: asOf, Limit: limit}
				for range len(whole.ChurnedCustomers) + 1 {
					page, err := churn.Query(ctx, db, tables, params)
					if err != nil {
						t.Fatal(err)
					}
					if len(page.ChurnedCustomers) > limit {
						t.Fatalf("page of %d, limit %d", len(page.ChurnedCustomers), limit)
					}
					paged = append(paged, page.ChurnedCustomers...)
					if page.NextCursor == "" {
						break
					}
					params.Cursor = page.NextCursor
				}
				if g, w := projectiontest.JSON(t, paged), projectiontest.JSON(t, whole.ChurnedCustomers); g != w {
					t.Fatalf("pages\n%s\nwhole\n%s", g, w)
				}
			})
		}
	})
}
