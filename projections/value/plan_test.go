package value_test

import (
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
			if strings.Contains(plan, "TEMP B-TREE") || strings.Contains(plan, "Sort") || strings.Contains(plan, "Filter") {
				t.Errorf("after %q: the page reads contacts that are not candidates, or sorts them:\n%s", after, plan)
			}
		}
	})
}
