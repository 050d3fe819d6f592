package leadscore_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/leadscore"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// The hot list about now counts the contacts in the index and reads only its page; it answers
// exactly what reading every contact found answers, for every threshold, owner and page size,
// on both databases.
func TestCountedHotListEqualsFound(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	events := leadEvents(3000, now)
	p := leadscore.Projection()
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		ctx := context.Background()
		tables := projections.TablesFor(p, "")
		projectiontest.MustApply(t, db, p, tables, events)
		for _, min := range []*float64{nil, ptr(0), ptr(1), ptr(5), ptr(20), ptr(35.5), ptr(80), ptr(1e6)} {
			for _, owner := range []string{"", "rep-3"} {
				for _, limit := range []int{1, 7, 100} {
					params := leadscore.LeadParams{AsOf: now, MinScore: min, Owner: owner, Limit: limit}
					name := fmt.Sprintf("min %v owner %q limit %d", deref(min), owner, limit)
					got, err := leadscore.QueryLeads(ctx, db, tables, params)
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					want, err := leadscore.QueryLeadsFound(ctx, db, tables, params)
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					if !reflect.DeepEqual(got, want) {
						t.Errorf("%s: counted total %d, %d leads; found total %d, %d leads", name, got.Total, len(got.Leads), want.Total, len(want.Leads))
					}
					if min != nil && *min == 20 && owner == "" && want.Total < 100 {
						t.Fatalf("only %d contacts score 20: the test would not page", want.Total)
					}
				}
			}
		}
	})
}

func ptr(f float64) *float64 { return &f }

func deref(f *float64) any {
	if f == nil {
		return "threshold"
	}
	return *f
}
