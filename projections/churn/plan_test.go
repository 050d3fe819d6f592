package churn_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/churn"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// A page of the churned customers over thousands of contacts with their statistics, planned
// once for any arguments as it runs: of every channel or of one, it reads the index of the
// churns in the page's order and each churn's contact by key, nothing sorted or hashed; of a
// month's contacts, it reads them from their index and their churns by key, and
// sorts those alone, rather than walk or hash every churn.
func TestChurnsPagePlan(t *testing.T) {
	g := projectiontest.NewGenerated(3)
	start := time.Date(2024, 1, 1, 9, 0, 0, 0, time.UTC)
	channels := []string{"web_form", "seminar", "exhibition", "referral"}
	for i := range 3000 {
		at := start.Add(time.Duration(i) * 3 * time.Hour)
		id := fmt.Sprintf("c%d", i)
		g.Add("contact-"+id, "contact.created.v1", at,
			fmt.Sprintf(`{"contact_id":%q,"name":"N %d","channel":%q,"owner":"rep-%d"}`, id, i, channels[i%4], i%20))
		path := []string{"lead", "approach", "won"}
		if i%3 == 0 {
			path = append(path, "churned")
		}
		for k := 1; k < len(path); k++ {
			g.Add("contact-"+id, "contact.phase_changed.v1", at.Add(time.Duration(k)*24*time.Hour),
				fmt.Sprintf(`{"contact_id":%q,"from":%q,"to":%q,"rule":"manual"}`, id, path[k-1], path[k]))
		}
	}
	g.InTimeOrder(t)
	p := churn.Projection()
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		set := projections.TablesFor(p, "")
		projectiontest.MustBuild(t, db, p, set, g.Events)
		for _, q := range []struct {
			params churn.Params
			// index is the index the page starts from; sorted tells that the page sorts
			// the churns it reads (those of one month's contacts).
			index  string
			sorted bool
		}{
			{churn.Params{}, "visits_churns ", false},
			{churn.Params{Channel: "seminar"}, "visits_churns ", false},
			{churn.Params{Cohort: "2024-09"}, "contacts_cohort ", true},
			{churn.Params{Cohort: "2024-09", Channel: "seminar"}, "contacts_cohort ", true},
		} {
			q.params.AsOf = g.Latest.Add(time.Hour)
			stmt, args, err := churn.ChurnsPage(db, set, q.params)
			if err != nil {
				t.Fatal(err)
			}
			plan := projectiontest.QueryPlanAsRun(t, db, stmt, args...)
			// The page's own plan, before its subqueries of each churn (SubPlan on
			// PostgreSQL, CORRELATED SCALAR SUBQUERY on SQLite).
			page, _, _ := strings.Cut(plan, "SubPlan")
			page, _, _ = strings.Cut(page, "CORRELATED")
			if index := set.Name(q.index); !strings.Contains(page, index) {
				t.Errorf("%+v: the page does not read %s:\n%s", q.params, index, plan)
			}
			bad := []string{"Hash", "Seq Scan", "SCAN "}
			if !q.sorted {
				bad = append(bad, "Sort", "TEMP B-TREE")
			}
			for _, b := range bad {
				if strings.Contains(page, b) {
					t.Errorf("%+v: the page reads more than its churns (%s):\n%s", q.params, b, plan)
				}
			}
		}
	})
}
