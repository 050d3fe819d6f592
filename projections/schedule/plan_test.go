package schedule_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/schedule"
)

// The deadlines due, which the scheduler asks every second, planned once for any arguments
// as the sessions on PostgreSQL plan it, are read from the index of the deadlines not fired,
// in the question's order (fire time, kind, subject): not from every deadline (most of them
// fired long ago), and without a sort, not even of the deadlines of one fire time (the
// reminders of every task due on one date fire at the same time: all of them, not a page).
func TestDueGenericPlan(t *testing.T) {
	events, now := dueHistory(t)
	plans := projectiontest.GenericPlans(t, schedule.Projection(nil), events, func(db *projections.DB, set projections.Tables) {
		ctx := context.Background()
		due, err := schedule.Due(ctx, db, set, schedule.Since(now.AddDate(0, 0, -7)), now, 500)
		if err != nil {
			t.Fatal(err)
		}
		if len(due) == 0 {
			t.Fatal("nothing due: the plan would be of an empty page")
		}
		if _, err := schedule.Pending(ctx, db, set, now.AddDate(0, 0, 30), 1000); err != nil {
			t.Fatal(err)
		}
	})
	asked := 0
	for stmt, plan := range plans {
		if !strings.Contains(stmt, "fire_at") {
			continue
		}
		asked++
		if !strings.Contains(plan, "_entries_pending") || regexp.MustCompile(`Seq Scan|Sort|Hash`).MatchString(plan) {
			t.Errorf("planned for any arguments, the deadlines due are not read in the index of those not fired, in its order:\n%s\n%s", stmt, plan)
		}
	}
	if asked == 0 {
		t.Error("the deadlines due were not asked")
	}
}

// On SQLite too the deadlines due are read from the index of those not fired in the
// question's order, with no sort of those of one fire time.
func TestDuePlanSQLite(t *testing.T) {
	db := projectiontest.SQLite(t)
	p := schedule.Projection(nil)
	set := projections.TablesFor(p, "")
	events, now := dueHistory(t)
	projectiontest.MustApply(t, db, p, set, events)
	plan := projectiontest.QueryPlan(t, db, schedule.DueQuery(set), now.AddDate(0, 0, -7).UnixMicro(), "", "", now.UnixMicro(), 500)
	if !strings.Contains(plan, set.Name("entries")+"_pending") || strings.Contains(plan, "TEMP B-TREE") {
		t.Errorf("the deadlines due are not read in the index of those not fired, in its order:\n%s", plan)
	}
}

// dueHistory is 3,000 tasks scheduled five hours apart, each due ten days later, whose
// deadlines that fell due more than three days before now (which it returns) have fired.
func dueHistory(t *testing.T) (events []eventstore.Event, now time.Time) {
	start := time.Date(2024, 1, 1, 9, 0, 0, 0, time.UTC)
	now = start.AddDate(0, 0, 720)
	var b strings.Builder
	for i := range 3000 {
		scheduled := start.Add(time.Duration(i) * 5 * time.Hour)
		due := domain.Date(scheduled.AddDate(0, 0, 10).Format(time.DateOnly))
		fmt.Fprintf(&b, `%s contact-c%d contact.task_scheduled.v1 {"contact_id":"c%d","task_id":"t%d","title":"call","assignee":"rep-%d","due":%q}`+"\n",
			scheduled.Format(time.RFC3339), i, i, i, i%10, due)
		fmt.Fprintf(&b, `%s contact-c%d contact.touchpoint_recorded.v1 {"contact_id":"c%d","touchpoint_id":"tp%d","kind":"call","phase":"lead"}`+"\n",
			scheduled.Format(time.RFC3339), i, i, i)
		for _, kind := range []string{"task_due", "task_overdue"} {
			fire := schedule.ReminderAt(due, time.UTC)
			if kind == "task_overdue" {
				fire = fire.Add(24 * time.Hour)
			}
			if fire.Before(now.AddDate(0, 0, -3)) { // the scheduler fired it
				fmt.Fprintf(&b, `%s contact-c%d contact.reminder_fired.v1 {"contact_id":"c%d","kind":%q,"task_id":"t%d","due":%q,"fire_at":%q}`+"\n",
					fire.Format(time.RFC3339), i, i, kind, i, due, fire.Format(time.RFC3339))
			}
		}
	}
	return projectiontest.MustParseHistory(t, b.String()), now
}
