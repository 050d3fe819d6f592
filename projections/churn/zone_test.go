package churn_test

import (
	"testing"
	"time"

	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/churn"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// TestOverdueWhereMidnightSkipped: in America/Havana 31 March 2012 ended at 05:00Z, when 00:00
// became 01:00. A task due that day is not yet overdue at 23:30 (04:30Z), and is at 01:30 on
// 1 April (05:30Z).
func TestOverdueWhereMidnightSkipped(t *testing.T) {
	havana, err := time.LoadLocation("America/Havana")
	if err != nil {
		t.Fatal(err)
	}
	events := projectiontest.MustParseHistory(t, `
2012-03-01T15:00:00Z contact-k1 contact.created.v1 {"contact_id":"k1","name":"Aiko Sato","channel":"web_form","owner":"rep-a"}
2012-03-01T15:00:00Z contact-k2 contact.created.v1 {"contact_id":"k2","name":"Ben Ito","channel":"web_form","owner":"rep-a"}
2012-03-10T15:00:00Z contact-k1 contact.phase_changed.v1 {"contact_id":"k1","from":"lead","to":"won","rule":"skip_forward","reason":"signed"}
2012-03-10T15:00:00Z contact-k2 contact.phase_changed.v1 {"contact_id":"k2","from":"lead","to":"won","rule":"skip_forward","reason":"signed"}
2012-03-20T15:00:00Z contact-k1 contact.task_scheduled.v1 {"contact_id":"k1","task_id":"a","title":"Call","due":"2012-03-31","assignee":"rep-a"}
2012-03-20T15:00:00Z contact-k2 contact.task_scheduled.v1 {"contact_id":"k2","task_id":"b","title":"Call","due":"2012-03-31","assignee":"rep-a"}
2012-04-01T04:30:00Z contact-k1 contact.phase_changed.v1 {"contact_id":"k1","from":"won","to":"churned","rule":"churned","reason":"budget"}
2012-04-01T05:30:00Z contact-k2 contact.phase_changed.v1 {"contact_id":"k2","from":"won","to":"churned","rule":"churned","reason":"budget"}
`)
	want := map[string]int{"k1": 0, "k2": 1}
	p := churn.ProjectionIn(havana)
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		tables := projections.TablesFor(p, "")
		projectiontest.MustApply(t, db, p, tables, events)
		answer, err := churn.Query(t.Context(), db, tables, churn.Params{AsOf: time.Date(2012, 5, 1, 0, 0, 0, 0, time.UTC)})
		if err != nil {
			t.Fatal(err)
		}
		if len(answer.ChurnedCustomers) != len(want) {
			t.Fatalf("churned customers %+v, want k1 and k2", answer.ChurnedCustomers)
		}
		for _, c := range answer.ChurnedCustomers {
			if c.OverdueTasks != want[c.ContactID] {
				t.Errorf("%s churned at %s: overdue tasks %d, want %d", c.ContactID, c.ChurnedAt.In(havana), c.OverdueTasks, want[c.ContactID])
			}
		}
	})
}
