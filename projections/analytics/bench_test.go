package analytics_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/analytics"
	"github.com/eventcrm/crm/projections/projectiontest"
)

var benchStart = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

var (
	benchChannels = []string{"web_form", "seminar", "exhibition", "direct_mail", "social_ad", "referral"}
	benchSegments = []string{"smb", "mid_market", "enterprise"}
	benchReps     = []string{"rep-aoki", "rep-endo", "rep-fujita", "rep-goto", "rep-hara", "rep-ikeda", "rep-kondo", "rep-mori", "rep-noguchi", "rep-ota"}
	benchKinds    = []string{"call", "email", "meeting", "webinar", "visit"}
	benchPhases   = []string{"lead", "approach", "discovery", "proposal"}
)

// salesHistory is the history of BenchmarkKPIs.
type salesHistory struct{ projectiontest.Generated }

func (h *salesHistory) later(at time.Time, days int) time.Time {
	return at.Add(time.Duration(1+h.Rng.IntN(days*24)) * time.Hour)
}

// salesHistory writes the sales of n contacts over two years (2024 and 2025): each is created
// (a channel, an owner, a segment), touched, moves through the phases, some open a deal won or
// lost (a few reopened and won later), get tasks done on time, late, cancelled or left open,
// answer a survey, and one in a hundred is merged into another.
func newSalesHistory(t testing.TB, n int) *salesHistory {
	h := &salesHistory{projectiontest.NewGenerated(11)}
	for i := range n {
		id := fmt.Sprintf("c%07d", i)
		stream := "contact-" + id
		owner := benchReps[h.Rng.IntN(len(benchReps))]
		at := benchStart.Add(time.Duration(h.Rng.IntN(700*24)) * time.Hour)
		h.Add(stream, "contact.created.v1", at, fmt.Sprintf(`{"contact_id":%q,"name":"Contact %d","channel":%q,"owner":%q,"segment":%q}`,
			id, i, benchChannels[h.Rng.IntN(len(benchChannels))], owner, benchSegments[h.Rng.IntN(len(benchSegments))]))
		for range 1 + h.Rng.IntN(3) {
			at = h.later(at, 20)
			h.Add(stream, "contact.touchpoint_recorded.v1", at, fmt.Sprintf(`{"contact_id":%q,"touchpoint_id":"t%d","kind":%q,"phase":"lead"}`,
				id, len(h.Events), benchKinds[h.Rng.IntN(len(benchKinds))]))
		}
		for range h.Rng.IntN(3) {
			task := fmt.Sprintf("k%d", len(h.Events))
			due := h.later(at, 30)
			h.Add(stream, "contact.task_scheduled.v1", at, fmt.Sprintf(`{"contact_id":%q,"task_id":%q,"title":"Follow up","due":%q,"assignee":%q}`,
				id, task, due.Format(time.DateOnly), owner))
			switch r := h.Rng.IntN(10); {
			case r < 7:
				h.Add(stream, "contact.task_completed.v1", h.later(at, 40), fmt.Sprintf(`{"contact_id":%q,"task_id":%q}`, id, task))
			case r < 8:
				h.Add(stream, "contact.task_cancelled.v1", h.later(at, 20), fmt.Sprintf(`{"contact_id":%q,"task_id":%q,"reason":"no longer needed"}`, id, task))
			}
		}
		phase := 0
		for phase < len(benchPhases)-1 && h.Rng.IntN(10) < 6 {
			at = h.later(at, 15)
			h.Add(stream, "contact.phase_changed.v1", at, fmt.Sprintf(`{"contact_id":%q,"from":%q,"to":%q,"rule":"forward"}`,
				id, benchPhases[phase], benchPhases[phase+1]))
			phase++
		}
		if phase >= 1 && h.Rng.IntN(2) == 0 {
			h.deal(id, owner, at, phase)
		}
		if h.Rng.IntN(10) < 3 {
			h.Add(stream, "contact.survey_recorded.v1", h.later(at, 30), fmt.Sprintf(`{"contact_id":%q,"survey_id":"s%d","nps":%d}`,
				id, len(h.Events), h.Rng.IntN(11)))
		}
		if i > 0 && h.Rng.IntN(100) == 0 {
			into := fmt.Sprintf("c%07d", h.Rng.IntN(i))
			at = h.later(at, 10)
			h.Add(stream, "contact.merged_into.v1", at, fmt.Sprintf(`{"contact_id":%q,"into":%q}`, id, into))
		}
	}
	h.InTimeOrder(t)
	return h
}

// deal opens a deal of contact id and closes it: won (and the contact with it), lost, or lost,
// reopened and won; some stay open.
func (h *salesHistory) deal(id, owner string, at time.Time, phase int) {
	deal := fmt.Sprintf("d%d", len(h.Events))
	stream := "deal-" + deal
	currency := []string{"JPY", "JPY", "USD", "EUR"}[h.Rng.IntN(4)]
	amount := 1000 + h.Rng.IntN(500_000)
	h.Add(stream, "deal.opened.v1", at, fmt.Sprintf(`{"deal_id":%q,"contact_id":%q,"title":"Licences","amount":{"amount":%d,"currency":%q},"owner":%q,"expected_close":%q,"stage":"qualification"}`,
		deal, id, amount, currency, owner, h.later(at, 90).Format(time.DateOnly)))
	won := func(at time.Time, from string) {
		h.Add(stream, "deal.won.v1", at, fmt.Sprintf(`{"deal_id":%q,"contact_id":%q,"from_stage":%q,"amount":{"amount":%d,"currency":%q},"closed_at":%q}`,
			deal, id, from, amount, currency, at.Format(time.DateOnly)))
		h.Add("contact-"+id, "contact.phase_changed.v1", at, fmt.Sprintf(`{"contact_id":%q,"from":%q,"to":"won","rule":"forward"}`, id, benchPhases[phase]))
	}
	switch r := h.Rng.IntN(10); {
	case r < 2:
		return
	case r < 6:
		at = h.later(at, 60)
		h.Add(stream, "deal.stage_changed.v1", at, fmt.Sprintf(`{"deal_id":%q,"from":"qualification","to":"proposal"}`, deal))
		won(h.later(at, 60), "proposal")
	default:
		at = h.later(at, 60)
		h.Add(stream, "deal.lost.v1", at, fmt.Sprintf(`{"deal_id":%q,"contact_id":%q,"from_stage":"qualification","reason":"price","amount":{"amount":%d,"currency":%q}}`,
			deal, id, amount, currency))
		if r == 9 {
			at = h.later(at, 30)
			h.Add(stream, "deal.reopened.v1", at, fmt.Sprintf(`{"deal_id":%q,"from":"lost","to":"qualification"}`, deal))
			won(h.later(at, 30), "qualification")
		}
	}
}

// BenchmarkKPIs asks each sales analytics question from 20 concurrent clients over the read model
// of CRM_BENCH_ANALYTICS_CONTACTS contacts (default 10,000: about 12 events each), first with no
// writes, then while 50 touchpoints a second are applied live: it reports the latency's p50 and p99
// over the iterations (each iteration is one question from every client at once).
func BenchmarkKPIs(b *testing.B) {
	h := newSalesHistory(b, projectiontest.EnvCount(b, "CRM_BENCH_ANALYTICS_CONTACTS", 1, 10_000))
	now := h.Latest.Add(24 * time.Hour).Add(365 * 24 * time.Hour) // after every write of the run
	past := time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)
	touchpoints := projectiontest.LiveWrites{Type: "contact.touchpoint_recorded.v1", Data: func(id string, n int64) []byte {
		return fmt.Appendf(nil, `{"contact_id":%q,"touchpoint_id":"w%d","kind":"call","phase":"lead"}`, id, n)
	}}
	projectiontest.AskInRounds(b, analytics.Projection(), &h.Generated, 20, touchpoints, []projectiontest.Asked{
		{Name: "baseline: SELECT 1", Ask: projectiontest.Baseline},
		{Name: "KPIs, 12 months", Ask: askKPIs(analytics.KPIParams{Period: "month", From: "2025-01-01", To: "2025-12-31", AsOf: now})},
		{Name: "KPIs, 3 months as of a past time", Ask: askKPIs(analytics.KPIParams{Period: "month", From: "2025-01-01", To: "2025-03-31", AsOf: past})},
		{Name: "KPIs, 13 weeks owner=rep-mori", Ask: askKPIs(analytics.KPIParams{Period: "week", From: "2025-10-01", To: "2025-12-31", Owner: "rep-mori", AsOf: now})},
		{Name: "KPIs, 8 quarters channel=web_form", Ask: askKPIs(analytics.KPIParams{Period: "quarter", From: "2024-01-01", To: "2025-12-31", Channel: "web_form", AsOf: now})},
		{Name: "NPS, 12 months", Ask: func(ctx context.Context, db *projections.DB, tables projections.Tables) error {
			_, err := analytics.QueryNPS(ctx, db, tables, analytics.NPSParams{Period: "month", From: "2025-01-01", To: "2025-12-31", AsOf: now})
			return err
		}},
		{Name: "forecast", Ask: func(ctx context.Context, db *projections.DB, tables projections.Tables) error {
			_, err := analytics.QueryForecast(ctx, db, tables, analytics.ForecastParams{From: "2025-01", To: "2026-06", AsOf: now})
			return err
		}},
	})
}

// askKPIs asks the KPIs of p.
func askKPIs(p analytics.KPIParams) func(ctx context.Context, db *projections.DB, tables projections.Tables) error {
	return func(ctx context.Context, db *projections.DB, tables projections.Tables) error {
		_, err := analytics.QueryKPIs(ctx, db, tables, p)
		return err
	}
}
