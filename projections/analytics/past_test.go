package analytics_test

import (
	"slices"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/analytics"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// pastQuestions are asked as of each past time: every kind of period but the year, with no
// filter and with each one.
func pastQuestions() []analytics.KPIParams {
	qs := []analytics.KPIParams{
		{Period: "month", From: "2025-02-01", To: "2025-05-31"},
		{Period: "week", From: "2025-03-01", To: "2025-05-10", Owner: "rep-a"},
		{Period: "day", From: "2025-03-25", To: "2025-04-25", Channel: "web_form"},
		{Period: "quarter", From: "2025-01-01", To: "2025-06-30", Segment: "enterprise"},
		{Period: "month", From: "2025-03-01", To: "2025-04-30", Owner: "rep-b"},
	}
	return qs
}

// asOfs are the times a past question is asked at: each event's business time, just before
// and just after it, and each business date's first instant in zone and just before it.
func asOfs(events []eventstore.Event, zone *time.Location) []time.Time {
	var ts []time.Time
	for _, e := range events {
		at := e.OccurredAt
		y, m, d := at.In(zone).Date()
		midnight := time.Date(y, m, d, 0, 0, 0, 0, zone)
		ts = append(ts, at, at.Add(-time.Microsecond), at.Add(time.Microsecond), midnight, midnight.Add(-time.Microsecond))
	}
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	return slices.CompactFunc(ts, func(a, b time.Time) bool { return a.Equal(b) })
}

// checkPastEqualsParts asks questions as of each time of asOfs: from the deltas (the latest
// fact comes later) and from the parts standing then, which must agree.
func checkPastEqualsParts(t *testing.T, db *projections.DB, tables projections.Tables, times []time.Time, questions []analytics.KPIParams, zone *time.Location) {
	t.Helper()
	for _, asOf := range times {
		for _, p := range questions {
			p.AsOf, p.Zone = asOf, zone
			projectiontest.SameAnswer(t, db, tables, p, analytics.QueryKPIs, "parts", analytics.QueryKPIsFromParts)
		}
	}
}

// TestPastEqualsParts: as of every time of the golden history (each event's, the instants
// around it, each business date's first instant), a question with at most one filter answers
// from the deltas exactly as the parts standing then do, in UTC and in Tokyo: back-dated
// leads, deals reopened, tasks done late and cancelled, a merge, a lead captured on 31 March
// in UTC that is 1 April in Tokyo.
func TestPastEqualsParts(t *testing.T) {
	events := projectiontest.ReadHistory(t, "testdata/utc/sales/events.txt")
	for _, zone := range []*time.Location{time.UTC, projectiontest.Tokyo(t)} {
		t.Run(zone.String(), func(t *testing.T) {
			p := analytics.ProjectionIn(zone)
			projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
				tables := projections.TablesFor(p, "")
				projectiontest.MustApply(t, db, p, tables, events)
				checkPastEqualsParts(t, db, tables, asOfs(events, zone), pastQuestions(), zone)
			})
		})
	}
}

// TestPastEqualsPartsGenerated: the same over a generated history of 300 contacts in which
// one touchpoint, survey or task completion in ten, and every merge, is recorded last
// (back-dated), as of a sample of its times, in Tokyo.
func TestPastEqualsPartsGenerated(t *testing.T) {
	h := newSalesHistory(t, 300)
	var kept, late []eventstore.Event
	for i, e := range h.Events {
		switch e.Type {
		case "contact.touchpoint_recorded.v1", "contact.survey_recorded.v1", "contact.task_completed.v1":
			if i%10 == 0 {
				late = append(late, e)
				continue
			}
		case "contact.merged_into.v1":
			// Recorded last, a merge takes away facts of the duplicate that occurred after
			// it: they never stood.
			late = append(late, e)
			continue
		}
		kept = append(kept, e)
	}
	events := append(kept, late...)
	for i := range events {
		events[i].Position = int64(i + 1)
	}
	zone := projectiontest.Tokyo(t)
	times := asOfs(events, zone)
	var sample []time.Time
	for i := 0; i < len(times); i += max(1, len(times)/150) {
		sample = append(sample, times[i])
	}
	questions := []analytics.KPIParams{
		{Period: "month", From: "2024-10-01", To: "2025-09-30"},
		{Period: "week", From: "2025-01-01", To: "2025-03-31", Owner: "rep-mori"},
		{Period: "quarter", From: "2024-01-01", To: "2025-12-31", Channel: "web_form"},
		{Period: "day", From: "2025-03-01", To: "2025-04-15", Segment: "smb"},
	}
	p := analytics.ProjectionIn(zone)
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		tables := projections.TablesFor(p, "")
		projectiontest.MustApply(t, db, p, tables, events)
		checkPastEqualsParts(t, db, tables, sample, questions, zone)
	})
}

// TestPastEqualsPartsRevokedBeforeMade: a merge recorded last with a business time before the
// duplicate's later facts takes them away before they occurred: they never stood, as of any
// time.
func TestPastEqualsPartsRevokedBeforeMade(t *testing.T) {
	events := projectiontest.MustParseHistory(t, `
2025-03-03T09:00:00Z contact-c1 contact.created.v1 {"contact_id":"c1","name":"Aiko","channel":"web_form","owner":"rep-a","segment":"smb"}
2025-03-04T09:00:00Z contact-c2 contact.created.v1 {"contact_id":"c2","name":"Aiko S.","channel":"web_form","owner":"rep-a","segment":"smb"}
2025-03-10T09:00:00Z contact-c2 contact.phase_changed.v1 {"contact_id":"c2","from":"lead","to":"approach","rule":"forward"}
2025-03-12T09:00:00Z contact-c2 contact.phase_changed.v1 {"contact_id":"c2","from":"approach","to":"won","rule":"forward"}
2025-03-20T09:00:00Z contact-c3 contact.created.v1 {"contact_id":"c3","name":"Ben","channel":"referral","owner":"rep-b"}
2025-03-06T09:00:00Z contact-c2 contact.merged_into.v1 {"contact_id":"c2","into":"c1"}
`)
	checkPastOfHistory(t, events)
}

// TestPastEqualsPartsLengthsRevokedLater: a win reopened and a won duplicate merged after the
// month of their lengths has ended: as of a time in between, the cycle and the lead-to-won
// still count in that month's medians, though the kept lengths no longer hold them.
func TestPastEqualsPartsLengthsRevokedLater(t *testing.T) {
	events := projectiontest.MustParseHistory(t, `
2025-03-03T09:00:00Z contact-c1 contact.created.v1 {"contact_id":"c1","name":"Aiko","channel":"web_form","owner":"rep-a","segment":"enterprise"}
2025-03-04T09:00:00Z contact-c2 contact.created.v1 {"contact_id":"c2","name":"Aiko S.","channel":"web_form","owner":"rep-a","segment":"enterprise"}
2025-03-05T09:00:00Z deal-d1 deal.opened.v1 {"deal_id":"d1","contact_id":"c1","title":"Licences","amount":{"amount":1000,"currency":"JPY"},"owner":"rep-a","expected_close":"2025-04-15","stage":"qualification"}
2025-03-06T09:00:00Z deal-d2 deal.opened.v1 {"deal_id":"d2","contact_id":"c2","title":"Platform","amount":{"amount":2000,"currency":"JPY"},"owner":"rep-a","expected_close":"2025-04-15","stage":"qualification"}
2025-03-10T09:00:00Z deal-d1 deal.won.v1 {"deal_id":"d1","contact_id":"c1","from_stage":"qualification","amount":{"amount":1000,"currency":"JPY"},"closed_at":"2025-03-10"}
2025-03-10T09:00:00Z contact-c1 contact.phase_changed.v1 {"contact_id":"c1","from":"lead","to":"won","rule":"forward"}
2025-03-20T15:00:00Z deal-d2 deal.won.v1 {"deal_id":"d2","contact_id":"c2","from_stage":"qualification","amount":{"amount":2000,"currency":"JPY"},"closed_at":"2025-03-20"}
2025-03-20T15:00:00Z contact-c2 contact.phase_changed.v1 {"contact_id":"c2","from":"lead","to":"won","rule":"forward"}
2025-04-05T09:00:00Z deal-d1 deal.reopened.v1 {"deal_id":"d1","from":"won","to":"qualification"}
2025-04-08T09:00:00Z contact-c2 contact.merged_into.v1 {"contact_id":"c2","into":"c1"}
`)
	checkPastOfHistory(t, events)
}

// checkPastOfHistory asks the past questions of the read model of events, in UTC, as of each
// time of asOfs, on each dialect.
func checkPastOfHistory(t *testing.T, events []eventstore.Event) {
	t.Helper()
	p := analytics.ProjectionIn(time.UTC)
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		tables := projections.TablesFor(p, "")
		projectiontest.MustApply(t, db, p, tables, events)
		checkPastEqualsParts(t, db, tables, asOfs(events, time.UTC), pastQuestions(), time.UTC)
	})
}
