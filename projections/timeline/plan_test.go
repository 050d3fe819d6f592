package timeline_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/timeline"
)

// A page of a contact's timeline on PostgreSQL, one statement planned once for any contact,
// reads the newest entries of the contact and of each contact merged into it from the
// index of the entries by contact and time, in its order: no other contact's entry is read.
func TestPagePlan(t *testing.T) {
	var b strings.Builder
	for i := range 40 {
		fmt.Fprintf(&b, `2024-01-01T09:00:00Z contact-c%d contact.created.v1 {"contact_id":"c%d","name":"N %d","channel":"other","owner":"rep-a"}`+"\n", i, i, i)
		for k := range 5 {
			fmt.Fprintf(&b, `2024-01-%02dT09:00:00Z contact-c%d contact.touchpoint_recorded.v1 {"contact_id":"c%d","touchpoint_id":"t%d-%d","kind":"call","phase":"lead"}`+"\n",
				2+k, i, i, i, k)
		}
	}
	db := projectiontest.Postgres(t)
	p := timeline.Projection()
	set := projections.TablesFor(p, "")
	projectiontest.MustApply(t, db, p, set, projectiontest.MustParseHistory(t, b.String()))
	stmt, args, err := timeline.PageStatement(context.Background(), db, set,
		timeline.Params{ContactID: "c7", Now: time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	plan := projectiontest.QueryPlan(t, db, stmt, args...)
	if index := set.Name("entries") + "_contact"; !strings.Contains(plan, index) {
		t.Errorf("the page does not read %s:\n%s", index, plan)
	}
	if !strings.Contains(plan, "Index Scan Backward using "+set.Name("entries")+"_contact") || strings.Contains(plan, "Seq Scan") {
		t.Errorf("the page does not read each contact's newest entries in the index's order:\n%s", plan)
	}
}
