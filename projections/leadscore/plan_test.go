package leadscore_test

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/leadscore"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// The hot list planned once for any arguments, as the sessions on PostgreSQL plan it, reads
// the scores and the steps only in the index of the band, in the page's order: no statement
// reads either table whole or sorts the contacts found, whatever the threshold (a few percent
// of the contacts above it, or all of them), the owner, the page size or the time asked about,
// with one band of attribute points and with two (min_score 30: a band read whole).
func TestHotListGenericPlans(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	events := withReferrals(t, leadEvents(3000, now))
	var params []leadscore.LeadParams
	for _, asOf := range []time.Time{now, now.AddDate(0, 0, -30)} {
		for _, min := range []*float64{nil, ptr(0), ptr(20), ptr(30), ptr(35.5)} {
			for _, owner := range []string{"", "rep-3"} {
				for _, limit := range []int{0, 1000} {
					params = append(params, leadscore.LeadParams{AsOf: asOf, MinScore: min, Owner: owner, Limit: limit})
				}
			}
		}
	}
	plans := projectiontest.GenericPlans(t, leadscore.Projection(), events, func(db *projections.DB, set projections.Tables) {
		for _, p := range params {
			if _, err := leadscore.QueryLeads(context.Background(), db, set, p); err != nil {
				t.Fatal(err)
			}
		}
	})
	contacts := regexp.MustCompile(`_(scores|steps)\b`)
	whole := regexp.MustCompile(`Seq Scan on \S+_(scores|steps)\b|Sort|Hash`)
	asked := 0
	for stmt, plan := range plans {
		if !contacts.MatchString(stmt) {
			continue // the settings and the bands: a row each
		}
		asked++
		if whole.MatchString(plan) {
			t.Errorf("planned for any arguments, reads the contacts whole or sorts them:\n%s\n%s", stmt, plan)
		}
	}
	if asked < 8 {
		t.Errorf("%d statements of the scores and steps prepared; the hot list asks more", asked)
	}
}
