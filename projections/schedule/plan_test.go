package schedule_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/schedule"
)

// The deadlines due, which the scheduler asks every second, planned once for any arguments
// as the sessions on PostgreSQL plan it, are read from the index of the deadlines not fired,
// in the order of their fire times: not from every deadline (most of them fired long ago),
// and without a sort of every deadline of the range (only the deadlines of one fire time are
// ordered, up to the page).
func TestDueGenericPlan(t *testing.T) {
	start := time.Date(2024, 1, 1, 9, 0, 0, 0, time.UTC)
	now := start.AddDate(0, 0, 720)
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
	events := projectiontest.MustParseHistory(t, b.String())
	plans := projectiontest.GenericPlans(t, schedule.Projection(nil), events, func(db *projections.DB, set projections.Tables) {
		ctx := context.Background()
		due, err := schedule.Due(ctx, db, set, now.AddDate(0, 0, -7), now, 500)
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
		if !strings.Contains(plan, "_entries_pending") || regexp.MustCompile(`Seq Scan|(?m)^\s*(->\s*)?Sort\s+\(|Hash`).MatchString(plan) {
			t.Errorf("planned for any arguments, the deadlines due are not read in the index of those not fired, in its order:\n%s\n%s", stmt, plan)
		}
	}
	if asked == 0 {
		t.Error("the deadlines due were not asked")
	}
}
