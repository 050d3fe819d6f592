package churn_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/churn"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// TestPresentAtEqualsQuery checks the present of the churn points against Query: after every
// prefix of the history (contacts caught in every phase, lost, churned, won back, deals lost
// and reopened), for every kind of question, Present.At answers exactly as Query at the
// horizon and at later times, across the dormancy thresholds, and refuses times before the
// horizon.
func TestPresentAtEqualsQuery(t *testing.T) {
	events := projectiontest.ReadHistory(t, "testdata/churn_points/events.txt")
	questions := []churn.Params{
		{},
		{Cohort: "2024-01"},
		{Channel: "web_form"},
		{DormantDays: 1},
		{Cohort: "2024-01", DormantDays: 30},
	}
	later := []time.Duration{0, time.Microsecond, 37 * time.Hour, 29 * 24 * time.Hour, 31 * 24 * time.Hour,
		89 * 24 * time.Hour, 91 * 24 * time.Hour, 400 * 24 * time.Hour}
	ctx := context.Background()
	projectiontest.ForEachPrefix(t, churn.Projection(), events, 8, func(t *testing.T, db *projections.DB, tables projections.Tables, applied []eventstore.Event) {
		k := len(applied)
		var latest int64
		for _, e := range applied {
			latest = max(latest, e.OccurredAt.UnixMicro())
		}
		for _, params := range questions {
			t.Run(fmt.Sprintf("%d events %+v", k, params), func(t *testing.T) {
				present, err := churn.QueryPresent(ctx, db, tables, params)
				if err != nil {
					t.Fatalf("present: %v", err)
				}
				if present.Horizon > latest || (k > 0 && present.Horizon == 0) {
					t.Fatalf("horizon %d outside the history (latest event %d)", present.Horizon, latest)
				}
				horizon := time.UnixMicro(present.Horizon).UTC()
				if k > 0 {
					if _, ok := present.At(horizon.Add(-time.Microsecond)); ok {
						t.Fatalf("At answered before the horizon %s", horizon)
					}
				}
				for _, d := range later {
					asOf := horizon.Add(d)
					got, ok := present.At(asOf)
					if !ok {
						t.Fatalf("At(%s) refused, horizon %s", asOf, horizon)
					}
					params.AsOf = asOf
					want, err := churn.Query(ctx, db, tables, params)
					if err != nil {
						t.Fatalf("query: %v", err)
					}
					if g, w := projectiontest.JSON(t, got), projectiontest.JSON(t, want); g != w {
						t.Fatalf("as of %s:\npresent %s\nquery   %s", asOf, g, w)
					}
				}
			})
		}
	})
}

func TestPresentRejectsBadParams(t *testing.T) {
	db := projectiontest.SQLite(t)
	tables := projections.TablesFor(churn.Projection(), "")
	projectiontest.MustApply(t, db, churn.Projection(), tables, nil)
	for _, params := range []churn.Params{{DormantDays: -1}, {Cohort: "2024-13"}, {Channel: "fax"}} {
		if _, err := churn.QueryPresent(context.Background(), db, tables, params); err == nil {
			t.Errorf("%+v: no error", params)
		}
	}
}
