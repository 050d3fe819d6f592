package tasks_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/tasks"
)

// The overdue tasks now are read from an index of the open tasks by due date, in its order
// (not past every task done or cancelled before them), and their counts per assignee from the
// open tasks kept per due date (not task by task), on both databases, each planned as the
// question is.
func TestOverduePlan(t *testing.T) {
	var b strings.Builder
	for i := range 60 {
		fmt.Fprintf(&b, `2024-01-01T09:00:00Z contact-c%d contact.task_scheduled.v1 {"contact_id":"c%d","task_id":"t%d","title":"call","assignee":"rep-%d","due":"2024-01-%02d"}`+"\n",
			i, i, i, i%3, 1+i%28)
		if i%4 != 0 {
			fmt.Fprintf(&b, `2024-01-02T09:00:00Z contact-c%d contact.task_completed.v1 {"contact_id":"c%d","task_id":"t%d"}`+"\n", i, i, i)
		}
	}
	events := projectiontest.MustParseHistory(t, b.String())
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		p := tasks.Projection()
		set := projections.TablesFor(p, "")
		projectiontest.MustApply(t, db, p, set, events)
		list, listArgs, counts, countsArgs, perCutoff, err := tasks.NowStatements(set,
			tasks.Params{AsOf: time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC), Status: tasks.StatusOverdue, Limit: 50})
		if err != nil {
			t.Fatal(err)
		}
		setting := ""
		if perCutoff {
			setting = db.Dialect.Features().CustomPlans
		}
		plan := projectiontest.QueryPlanWith(t, db, setting, list, listArgs...)
		if index := set.Name("states") + "_open_by_due"; !strings.Contains(plan, index) {
			t.Errorf("the overdue tasks are not read from %s:\n%s", index, plan)
		}
		if projectiontest.PlanSorts(plan) {
			t.Errorf("the overdue tasks are sorted:\n%s", plan)
		}
		plan = projectiontest.QueryPlan(t, db, counts, countsArgs...)
		// SQLite names the tables of a plan by their alias, their indexes by name.
		kept := strings.Contains(plan, set.Name("due_counts")) || strings.Contains(plan, "SEARCH d USING PRIMARY KEY")
		if !kept || strings.Contains(plan, set.Name("states")) {
			t.Errorf("the overdue counts are not read from the open tasks per due date:\n%s", plan)
		}
	})
}

// Each statement of a question is prepared once on a connection and run again with the plan
// made for any arguments, but the overdue list, planned per cutoff.
func TestPreparedOncePlannedOnce(t *testing.T) {
	var b strings.Builder
	for i := range 30 {
		fmt.Fprintf(&b, `2024-01-01T09:00:00Z contact-c%d contact.task_scheduled.v1 {"contact_id":"c%d","task_id":"t%d","title":"call","assignee":"rep-%d","due":"2024-01-%02d"}`+"\n",
			i, i, i, i%3, 1+i%28)
	}
	const asked = 4
	overdue := tasks.Params{AsOf: time.Date(2024, 1, 15, 0, 0, 0, 0, time.UTC), Status: tasks.StatusOverdue}
	var list string
	prepared := projectiontest.AskedOnOneConnection(t, tasks.Projection(), projectiontest.MustParseHistory(t, b.String()),
		func(db *projections.DB, set projections.Tables) {
			for i := range asked {
				for _, p := range []tasks.Params{overdue, {AsOf: overdue.AsOf, Status: tasks.StatusOpen, Assignee: fmt.Sprintf("rep-%d", i%3)}} {
					if _, err := tasks.Query(context.Background(), db, set, p); err != nil {
						t.Fatal(err)
					}
				}
			}
			stmt, _, _, _, _, err := tasks.NowStatements(set, overdue)
			if err != nil {
				t.Fatal(err)
			}
			list = db.Dialect.Rebind(stmt)
		})
	seen := false
	for stmt, got := range prepared {
		want := projectiontest.Prepared{Generic: got.Generic + got.Custom}
		if stmt == list {
			seen, want = true, projectiontest.Prepared{Custom: asked}
		}
		if got != want || got.Generic+got.Custom < asked {
			t.Errorf("planned %+v, want %+v of %d runs: %s", got, want, asked, stmt)
		}
	}
	if !seen {
		t.Errorf("the overdue list was not prepared: %s", list)
	}
}

// The counts per assignee, planned once for any arguments as the sessions on PostgreSQL plan
// them, about now read the kept counts and, per assignee, the open tasks kept per due date
// from the business date on (by the key of those rows, not every date of the assignee nor
// every task), and about a past time one assignee's are read in the index of the assignee's
// states by time: no statement of the counts reads the states or the dates whole.
func TestCountsGenericPlans(t *testing.T) {
	start := time.Date(2024, 1, 1, 9, 0, 0, 0, time.UTC)
	var b strings.Builder
	for i := range 3000 {
		at := start.Add(time.Duration(i) * 5 * time.Hour)
		fmt.Fprintf(&b, `%s contact-c%d contact.task_scheduled.v1 {"contact_id":"c%d","task_id":"t%d","title":"call","assignee":"rep-%d","due":%q}`+"\n",
			at.Format(time.RFC3339), i, i, i, i%10, at.AddDate(0, 0, 1+i%20).Format(time.DateOnly))
		switch i % 4 {
		case 1, 2:
			fmt.Fprintf(&b, `%s contact-c%d contact.task_completed.v1 {"contact_id":"c%d","task_id":"t%d"}`+"\n",
				at.Add(48*time.Hour).Format(time.RFC3339), i, i, i)
		case 3:
			fmt.Fprintf(&b, `%s contact-c%d contact.task_cancelled.v1 {"contact_id":"c%d","task_id":"t%d","reason":"duplicate"}`+"\n",
				at.Add(72*time.Hour).Format(time.RFC3339), i, i, i)
		}
	}
	now := start.Add(3000*5*time.Hour).AddDate(0, 0, 30)
	past := start.AddDate(0, 0, 300)
	plans := projectiontest.GenericPlans(t, tasks.Projection(), projectiontest.MustParseHistory(t, b.String()),
		func(db *projections.DB, set projections.Tables) {
			for _, p := range []tasks.Params{{AsOf: now}, {AsOf: now, Assignee: "rep-3"}, {AsOf: past, Assignee: "rep-3"}} {
				a, err := tasks.Query(context.Background(), db, set, p)
				if err != nil {
					t.Fatal(err)
				}
				if len(a.Counts) == 0 {
					t.Fatalf("%+v: no counts", p)
				}
			}
		})
	counts := regexp.MustCompile(`_counts\b|GROUP BY`)
	whole := regexp.MustCompile(`Seq Scan on \S+_(states|due_counts)\b|Hash`)
	asked := 0
	for stmt, plan := range plans {
		if !counts.MatchString(stmt) {
			continue
		}
		asked++
		if whole.MatchString(plan) {
			t.Errorf("planned for any arguments, the counts read the states or the dates whole:\n%s\n%s", stmt, plan)
		}
	}
	if asked != 3 {
		t.Errorf("%d statements of the counts asked, want 3 (now, one assignee's now and then)", asked)
	}
}
