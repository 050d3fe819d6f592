package churn_test

import (
	"slices"
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

// TestOverdueTasksAtTheChurn: the tasks overdue at a churn are those open then and due before
// its business date, with the due date they had then: a task cancelled or done before the
// churn is not overdue at it, one rescheduled before it counts with its new due date, and one
// rescheduled or cancelled after it counts as it stood then.
func TestOverdueTasksAtTheChurn(t *testing.T) {
	events := projectiontest.MustParseHistory(t, `
2024-01-02T09:00:00Z contact-k1 contact.created.v1 {"contact_id":"k1","name":"Aiko Sato","channel":"web_form","owner":"rep-a"}
2024-01-10T09:00:00Z contact-k1 contact.phase_changed.v1 {"contact_id":"k1","from":"lead","to":"won","rule":"skip_forward","reason":"signed"}
# a: due Feb 1, cancelled Feb 5: not overdue at the churn of Mar 1.
2024-01-11T09:00:00Z contact-k1 contact.task_scheduled.v1 {"contact_id":"k1","task_id":"a","title":"Call","due":"2024-02-01","assignee":"rep-a"}
2024-02-05T09:00:00Z contact-k1 contact.task_cancelled.v1 {"contact_id":"k1","task_id":"a","reason":"not needed"}
# b: due Feb 1, moved on Jan 30 to Mar 15: not yet due at the churn.
2024-01-11T09:01:00Z contact-k1 contact.task_scheduled.v1 {"contact_id":"k1","task_id":"b","title":"Visit","due":"2024-02-01","assignee":"rep-a"}
2024-01-30T09:00:00Z contact-k1 contact.task_rescheduled.v1 {"contact_id":"k1","task_id":"b","from":"2024-02-01","to":"2024-03-15"}
# c: due Mar 20, moved on Feb 10 to Feb 20: overdue at the churn.
2024-01-11T09:02:00Z contact-k1 contact.task_scheduled.v1 {"contact_id":"k1","task_id":"c","title":"Demo","due":"2024-03-20","assignee":"rep-a"}
2024-02-10T09:00:00Z contact-k1 contact.task_rescheduled.v1 {"contact_id":"k1","task_id":"c","from":"2024-03-20","to":"2024-02-20"}
# d: due Feb 1, moved after the churn (Mar 5) to Apr 1: overdue at the churn, as it stood then.
2024-01-11T09:03:00Z contact-k1 contact.task_scheduled.v1 {"contact_id":"k1","task_id":"d","title":"Mail","due":"2024-02-01","assignee":"rep-a"}
# e: due Feb 1, cancelled after the churn (Mar 6): overdue at the churn.
2024-01-11T09:04:00Z contact-k1 contact.task_scheduled.v1 {"contact_id":"k1","task_id":"e","title":"Quote","due":"2024-02-01","assignee":"rep-a"}
# f: due Feb 1, done Feb 2 (late): not overdue at the churn.
2024-01-11T09:05:00Z contact-k1 contact.task_scheduled.v1 {"contact_id":"k1","task_id":"f","title":"Check","due":"2024-02-01","assignee":"rep-a"}
2024-02-02T09:00:00Z contact-k1 contact.task_completed.v1 {"contact_id":"k1","task_id":"f"}
2024-03-01T10:00:00Z contact-k1 contact.phase_changed.v1 {"contact_id":"k1","from":"won","to":"churned","rule":"churned","reason":"budget"}
2024-03-05T09:00:00Z contact-k1 contact.task_rescheduled.v1 {"contact_id":"k1","task_id":"d","from":"2024-02-01","to":"2024-04-01"}
2024-03-06T09:00:00Z contact-k1 contact.task_cancelled.v1 {"contact_id":"k1","task_id":"e","reason":"churned"}
`)
	// Overdue at the churn: c (due Feb 20), d and e (due Feb 1): 3.
	p := churn.Projection()
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		tables := projections.TablesFor(p, "")
		projectiontest.MustApply(t, db, p, tables, events)
		for _, asOf := range []time.Time{time.Date(2024, 3, 2, 0, 0, 0, 0, time.UTC), time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)} {
			answer, err := churn.Query(t.Context(), db, tables, churn.Params{AsOf: asOf})
			if err != nil {
				t.Fatal(err)
			}
			if len(answer.ChurnedCustomers) != 1 || answer.ChurnedCustomers[0].OverdueTasks != 3 {
				t.Fatalf("as of %s: churned customers %+v, want k1 with 3 overdue tasks (c, d, e)", asOf, answer.ChurnedCustomers)
			}
			explained, err := churn.Explain(t.Context(), db, tables, churn.Params{AsOf: asOf, Explain: "churned_customers.k1.overdue_tasks"})
			if err != nil {
				t.Fatal(err)
			}
			var tasks []string
			for _, part := range explained.Parts {
				tasks = append(tasks, part.Entity)
			}
			if !slices.Equal(tasks, []string{"c", "d", "e"}) {
				t.Errorf("as of %s: overdue tasks explained %v, want c, d, e", asOf, tasks)
			}
		}
	})
}
