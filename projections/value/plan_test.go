package value_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/value"
)

// A page of the upsell candidates about now reads the index of the candidates, in its order,
// on both databases: no contact that is not a candidate is read, and nothing is sorted.
func TestUpsellPagePlan(t *testing.T) {
	h := valueHistory(t, 200)
	p := value.Projection(time.UTC)
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		set := projections.TablesFor(p, "")
		projectiontest.MustApply(t, db, p, set, h.Events)
		index := set.Name("contacts") + "_candidates"
		for _, after := range []string{"", "c0000100"} {
			stmt, args := value.UpsellPage(set, after, 50)
			plan := projectiontest.QueryPlan(t, db, stmt, args...)
			if !strings.Contains(plan, index) {
				t.Errorf("after %q: the page does not read %s:\n%s", after, index, plan)
			}
			if projectiontest.PlanSorts(plan) || strings.Contains(plan, "Filter") {
				t.Errorf("after %q: the page reads contacts that are not candidates, or sorts them:\n%s", after, plan)
			}
		}
	})
}

// The pages about now over thousands of contacts and customers with their statistics, each
// planned once for any arguments as it runs: the dormant contacts of one owner in one phase
// read the index of that owner's and phase's by last activity (not the owner's contacts of
// every phase), and a page of the customers of a segment in each sort reads the index of
// its sort in order and each customer's name and money by key (not every customer's money
// hashed for a page of them).
func TestPagePlans(t *testing.T) {
	h := valueHistory(t, 3000)
	for i := range 3000 {
		if i%4 != 0 {
			h.Add(fmt.Sprintf("contact-c%07d", i), "contact.phase_changed.v1", h.Latest.Add(time.Hour),
				fmt.Sprintf(`{"contact_id":"c%07d","from":"lead","to":%q,"rule":"manual"}`, i, []string{"approach", "won", "loyal"}[i%4-1]))
		}
	}
	h.InTimeOrder(t)
	p := value.Projection(time.UTC)
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		set := projections.TablesFor(p, "")
		projectiontest.MustBuild(t, db, p, set, h.Events)
		stmt, args, err := value.DormantPage(set, value.DormantParams{AsOf: h.Latest.Add(24 * time.Hour), Owner: "rep-3", Phase: "won"})
		if err != nil {
			t.Fatal(err)
		}
		plan := projectiontest.QueryPlanAsRun(t, db, stmt, args...)
		if index := set.Name("contacts") + "_owner_phase_idle"; !strings.Contains(plan, index) || projectiontest.PlanSorts(plan) || strings.Contains(plan, "Filter") {
			t.Errorf("the dormant contacts of one owner in one phase are not read from %s alone, in its order:\n%s", index, plan)
		}
		indexes := map[string]string{value.SortLastPurchase: "customers_last", value.SortOrders: "customers_orders",
			value.SortFirstPurchase: "customers_first", value.SortCustomer: "customers_pkey"}
		for _, segment := range value.Segments() {
			for sort, index := range indexes {
				stmt, args, err := value.CustomersPage(context.Background(), db, set, value.CustomersParams{Segment: segment, Sort: sort})
				if err != nil {
					t.Fatal(err)
				}
				plan := projectiontest.QueryPlanAsRun(t, db, stmt, args...)
				// SQLite scans a table without rowid in the order of its key.
				if db.Dialect == projections.SQLite && sort == value.SortCustomer {
					index = "SCAN c\n"
				}
				if !strings.Contains(plan, index) || projectiontest.PlanSortsBelowPage(plan) || strings.Contains(plan, "Hash") || strings.Contains(plan, "Seq Scan") {
					t.Errorf("segment %s, sort %s: the page does not read %s in its order and the rest by key:\n%s", segment, sort, index, plan)
				}
			}
		}
	})
}
