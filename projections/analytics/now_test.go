package analytics_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/analytics"
	"github.com/eventcrm/crm/projections/horizon"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// nowHistory is the generated history of 300 contacts, then at the horizon, 23:00 UTC on a
// day after every other event (08:00 the next day in Tokyo): a lead with a task due on the
// next UTC date (open and not yet due on the horizon's UTC date, overdue on the next) and a
// deal of it expected to close on each date around the horizon; and a change of the stage
// probabilities a little later. It returns the history and the horizon.
func nowHistory(t *testing.T) (*salesHistory, time.Time) {
	h := newSalesHistory(t, 300)
	y, m, d := h.Latest.UTC().Date()
	at := time.Date(y, m, d+2, 23, 0, 0, 0, time.UTC)
	h.Add("contact-late", "contact.created.v1", at.Add(-time.Hour),
		`{"contact_id":"late","name":"Late Lead","channel":"web_form","owner":"rep-mori","segment":"smb"}`)
	h.Add("contact-late", "contact.task_scheduled.v1", at, fmt.Sprintf(
		`{"contact_id":"late","task_id":"k-late","title":"Call back","due":%q,"assignee":"rep-mori"}`, at.AddDate(0, 0, 1).Format(time.DateOnly)))
	for i, days := range []int{-1, 0, 1, 2, 3, 40} {
		h.Add(fmt.Sprintf("deal-late%d", i), "deal.opened.v1", at.Add(-time.Minute), fmt.Sprintf(
			`{"deal_id":"late%d","contact_id":"late","title":"Licences","amount":{"amount":%d,"currency":"JPY"},"owner":"rep-mori","expected_close":%q,"stage":"proposal"}`,
			i, 1000*(i+1), at.AddDate(0, 0, days).Format(time.DateOnly)))
	}
	h.Add("settings", "settings.stage_probabilities_changed.v1", at.Add(probabilitiesLater), `{"probabilities":{"qualification":15,"proposal":55}}`)
	h.InTimeOrder(t)
	return h, at
}

// probabilitiesLater is how long after the horizon of nowHistory the stage probabilities
// change: the horizon of its forecast.
const probabilitiesLater = 10 * time.Minute

// TestKPIsAboutNowHoldForTheirDate: the KPIs read about now for a business date, kept for as
// long as the tables do not change, are for every as_of of that date at or after the horizon
// what QueryKPIs answers then (tasks judged against that date, To defaulting to it); as of a
// time before the horizon or on another date they are not given. In UTC and in Tokyo, where
// the horizon (23:00 UTC) is 08:00 of the next date: 01:00 UTC the day after is the same
// date in Tokyo and another in UTC, 15:00 UTC the day after is the same UTC date and
// another in Tokyo.
func TestKPIsAboutNowHoldForTheirDate(t *testing.T) {
	h, at := nowHistory(t)
	questions := []analytics.KPIParams{
		{},
		{Period: "week", Owner: "rep-mori"},
		{Period: "month", From: "2025-01-01", Channel: "web_form"},
		{Period: "quarter", From: "2024-01-01", Segment: "smb"},
		{Period: "day", From: "2025-06-01", To: "2025-06-30"},
	}
	forEachZone(t, h, func(t *testing.T, db *projections.DB, tables projections.Tables, zone *time.Location) {
		for _, q := range questions {
			q.Zone = zone
			checkPresents(t, fmt.Sprintf("%+v", q), at, zone, func(asOf time.Time) (horizon.Present[analytics.KPIAnswer], error) {
				q.AsOf = asOf
				return analytics.QueryKPIsNow(context.Background(), db, tables, q)
			}, func(asOf time.Time) (any, error) {
				q.AsOf = asOf
				return analytics.QueryKPIs(context.Background(), db, tables, q)
			})
		}
	})
}

// TestForecastAboutNowHoldsForItsDate: the forecast read about now for a business date is for
// every as_of of that date at or after the latest change of the stage probabilities (after
// the horizon of the KPIs) what QueryForecast answers then (deals expected to close before the
// date overdue, from defaulting to its month); as of a time before that change or on another
// date it is not given; in UTC and in Tokyo.
func TestForecastAboutNowHoldsForItsDate(t *testing.T) {
	h, at := nowHistory(t)
	questions := []analytics.ForecastParams{{}, {Owner: "rep-mori"}, {From: "2024-01", To: "2030-12"}, {Owner: "rep-aoki", From: "2025-06"}}
	forEachZone(t, h, func(t *testing.T, db *projections.DB, tables projections.Tables, zone *time.Location) {
		for _, q := range questions {
			q.Zone = zone
			checkPresents(t, fmt.Sprintf("%+v", q), at.Add(probabilitiesLater), zone, func(asOf time.Time) (horizon.Present[analytics.ForecastAnswer], error) {
				q.AsOf = asOf
				return analytics.QueryForecastNow(context.Background(), db, tables, q)
			}, func(asOf time.Time) (any, error) {
				q.AsOf = asOf
				return analytics.QueryForecast(context.Background(), db, tables, q)
			})
		}
	})
}

// forEachZone applies the events of h to the read model of UTC and of Tokyo, on each dialect,
// and runs test on it.
func forEachZone(t *testing.T, h *salesHistory, test func(t *testing.T, db *projections.DB, tables projections.Tables, zone *time.Location)) {
	for _, zone := range []*time.Location{time.UTC, projectiontest.Tokyo(t)} {
		t.Run(zone.String(), func(t *testing.T) {
			p := analytics.ProjectionIn(zone)
			projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
				tables := projections.TablesFor(p, "")
				projectiontest.MustApply(t, db, p, tables, h.Events)
				test(t, db, tables, zone)
			})
		})
	}
}

// checkPresents reads the presents of a question (now) for the business date of a time just
// after the horizon, of one two days later, and of one two days before (over at the horizon:
// no as_of of it is about now), and asks each as of times around the horizon and the time it
// was read for: it must be given exactly for those of its date at or after the horizon, and
// then be what reading the question as of that time answers (read).
func checkPresents[A any](t *testing.T, question string, at time.Time, zone *time.Location,
	now func(asOf time.Time) (horizon.Present[A], error), read func(asOf time.Time) (any, error)) {
	t.Helper()
	later := []time.Duration{0, time.Microsecond, 30 * time.Minute, time.Hour - time.Microsecond, time.Hour,
		2 * time.Hour, 16*time.Hour - time.Microsecond, 16 * time.Hour, 50 * time.Hour}
	for _, readAt := range []time.Time{at.Add(time.Minute), at.AddDate(0, 0, 2), at.AddDate(0, 0, -2)} {
		date := domain.DateIn(readAt, zone)
		present, err := now(readAt)
		if err != nil {
			t.Fatal(err)
		}
		asOfs := []time.Time{at.Add(-time.Microsecond), readAt}
		for _, d := range later {
			asOfs = append(asOfs, at.Add(d), readAt.Add(d))
		}
		given := 0
		for _, asOf := range asOfs {
			got, ok := present.At(asOf)
			if want := !asOf.Before(at) && domain.DateIn(asOf, zone) == date; ok != want {
				t.Fatalf("%s read on %s: given as of %s (on %s): %t, want %t", question, date, asOf, domain.DateIn(asOf, zone), ok, want)
			}
			if !ok {
				continue
			}
			given++
			want, err := read(asOf)
			if err != nil {
				t.Fatal(err)
			}
			if g, w := projectiontest.JSON(t, got), projectiontest.JSON(t, want); g != w {
				t.Fatalf("%s as of %s:\nkept %.3000s\nread %.3000s", question, asOf, g, w)
			}
		}
		if given == 0 && !readAt.Before(at) {
			t.Fatalf("%s read on %s: never given", question, date)
		}
	}
}
