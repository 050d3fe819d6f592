package analytics_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/analytics"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// benchContacts is the number of contacts of BenchmarkKPIs (CRM_BENCH_ANALYTICS_CONTACTS,
// default 10,000: about 12 events each).
func benchContacts(b *testing.B) int {
	return projectiontest.EnvCount(b, "CRM_BENCH_ANALYTICS_CONTACTS", 1, 10_000)
}

var benchStart = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

var (
	benchChannels = []string{"web_form", "seminar", "exhibition", "direct_mail", "social_ad", "referral"}
	benchSegments = []string{"smb", "mid_market", "enterprise"}
	benchReps     = []string{"rep-aoki", "rep-endo", "rep-fujita", "rep-goto", "rep-hara", "rep-ikeda", "rep-kondo", "rep-mori", "rep-noguchi", "rep-ota"}
	benchKinds    = []string{"call", "email", "meeting", "webinar", "visit"}
	benchPhases   = []string{"lead", "approach", "discovery", "proposal"}
)

// salesHistory is the history of BenchmarkKPIs.
type salesHistory struct {
	rng    *rand.Rand
	events []eventstore.Event
	latest time.Time
}

func (h *salesHistory) add(stream, typ string, at time.Time, data string) {
	pos := int64(len(h.events) + 1)
	h.events = append(h.events, eventstore.Event{ID: fmt.Sprintf("e%d", pos), Stream: stream, Position: pos, Type: typ,
		OccurredAt: at, RecordedAt: at, Data: []byte(data)})
	if at.After(h.latest) {
		h.latest = at
	}
}

func (h *salesHistory) later(at time.Time, days int) time.Time {
	return at.Add(time.Duration(1+h.rng.IntN(days*24)) * time.Hour)
}

// salesHistory writes the sales of n contacts over two years (2024 and 2025): each is created
// (a channel, an owner, a segment), touched, moves through the phases, some open a deal won or
// lost (a few reopened and won later), get tasks done on time, late, cancelled or left open,
// answer a survey, and one in a hundred is merged into another.
func newSalesHistory(t testing.TB, n int) *salesHistory {
	h := &salesHistory{rng: rand.New(rand.NewPCG(11, 11))}
	for i := range n {
		id := fmt.Sprintf("c%07d", i)
		stream := "contact-" + id
		owner := benchReps[h.rng.IntN(len(benchReps))]
		at := benchStart.Add(time.Duration(h.rng.IntN(700*24)) * time.Hour)
		h.add(stream, "contact.created.v1", at, fmt.Sprintf(`{"contact_id":%q,"name":"Contact %d","channel":%q,"owner":%q,"segment":%q}`,
			id, i, benchChannels[h.rng.IntN(len(benchChannels))], owner, benchSegments[h.rng.IntN(len(benchSegments))]))
		for range 1 + h.rng.IntN(3) {
			at = h.later(at, 20)
			h.add(stream, "contact.touchpoint_recorded.v1", at, fmt.Sprintf(`{"contact_id":%q,"touchpoint_id":"t%d","kind":%q,"phase":"lead"}`,
				id, len(h.events), benchKinds[h.rng.IntN(len(benchKinds))]))
		}
		for range h.rng.IntN(3) {
			task := fmt.Sprintf("k%d", len(h.events))
			due := h.later(at, 30)
			h.add(stream, "contact.task_scheduled.v1", at, fmt.Sprintf(`{"contact_id":%q,"task_id":%q,"title":"Follow up","due":%q,"assignee":%q}`,
				id, task, due.Format(time.DateOnly), owner))
			switch r := h.rng.IntN(10); {
			case r < 7:
				h.add(stream, "contact.task_completed.v1", h.later(at, 40), fmt.Sprintf(`{"contact_id":%q,"task_id":%q}`, id, task))
			case r < 8:
				h.add(stream, "contact.task_cancelled.v1", h.later(at, 20), fmt.Sprintf(`{"contact_id":%q,"task_id":%q,"reason":"no longer needed"}`, id, task))
			}
		}
		phase := 0
		for phase < len(benchPhases)-1 && h.rng.IntN(10) < 6 {
			at = h.later(at, 15)
			h.add(stream, "contact.phase_changed.v1", at, fmt.Sprintf(`{"contact_id":%q,"from":%q,"to":%q,"rule":"forward"}`,
				id, benchPhases[phase], benchPhases[phase+1]))
			phase++
		}
		if phase >= 1 && h.rng.IntN(2) == 0 {
			h.deal(id, owner, at, phase)
		}
		if h.rng.IntN(10) < 3 {
			h.add(stream, "contact.survey_recorded.v1", h.later(at, 30), fmt.Sprintf(`{"contact_id":%q,"survey_id":"s%d","nps":%d}`,
				id, len(h.events), h.rng.IntN(11)))
		}
		if i > 0 && h.rng.IntN(100) == 0 {
			into := fmt.Sprintf("c%07d", h.rng.IntN(i))
			at = h.later(at, 10)
			h.add(stream, "contact.merged_into.v1", at, fmt.Sprintf(`{"contact_id":%q,"into":%q}`, id, into))
		}
	}
	slices.SortStableFunc(h.events, func(a, b eventstore.Event) int { return a.OccurredAt.Compare(b.OccurredAt) })
	for i := range h.events {
		h.events[i].Position = int64(i + 1)
	}
	h.events = projectiontest.Upcast(t, h.events)
	return h
}

// deal opens a deal of contact id and closes it: won (and the contact with it), lost, or lost,
// reopened and won; some stay open.
func (h *salesHistory) deal(id, owner string, at time.Time, phase int) {
	deal := fmt.Sprintf("d%d", len(h.events))
	stream := "deal-" + deal
	currency := []string{"JPY", "JPY", "USD", "EUR"}[h.rng.IntN(4)]
	amount := 1000 + h.rng.IntN(500_000)
	h.add(stream, "deal.opened.v1", at, fmt.Sprintf(`{"deal_id":%q,"contact_id":%q,"title":"Licences","amount":{"amount":%d,"currency":%q},"owner":%q,"expected_close":%q,"stage":"qualification"}`,
		deal, id, amount, currency, owner, h.later(at, 90).Format(time.DateOnly)))
	won := func(at time.Time, from string) {
		h.add(stream, "deal.won.v1", at, fmt.Sprintf(`{"deal_id":%q,"contact_id":%q,"from_stage":%q,"amount":{"amount":%d,"currency":%q},"closed_at":%q}`,
			deal, id, from, amount, currency, at.Format(time.DateOnly)))
		h.add("contact-"+id, "contact.phase_changed.v1", at, fmt.Sprintf(`{"contact_id":%q,"from":%q,"to":"won","rule":"forward"}`, id, benchPhases[phase]))
	}
	switch r := h.rng.IntN(10); {
	case r < 2:
		return
	case r < 6:
		at = h.later(at, 60)
		h.add(stream, "deal.stage_changed.v1", at, fmt.Sprintf(`{"deal_id":%q,"from":"qualification","to":"proposal"}`, deal))
		won(h.later(at, 60), "proposal")
	default:
		at = h.later(at, 60)
		h.add(stream, "deal.lost.v1", at, fmt.Sprintf(`{"deal_id":%q,"contact_id":%q,"from_stage":"qualification","reason":"price","amount":{"amount":%d,"currency":%q}}`,
			deal, id, amount, currency))
		if r == 9 {
			at = h.later(at, 30)
			h.add(stream, "deal.reopened.v1", at, fmt.Sprintf(`{"deal_id":%q,"from":"lost","to":"qualification"}`, deal))
			won(h.later(at, 30), "qualification")
		}
	}
}

// kpiQuestion is one question of BenchmarkKPIs.
type kpiQuestion struct {
	name     string
	kpis     *analytics.KPIParams
	nps      *analytics.NPSParams
	forecast *analytics.ForecastParams
}

// BenchmarkKPIs asks each sales analytics question from 20 concurrent clients over the read
// model of benchContacts contacts, first with no writes, then while 50 touchpoints a second
// are applied live: it reports the latency's p50 and p99 over the iterations (each iteration is
// one question from every client at once).
func BenchmarkKPIs(b *testing.B) {
	const clients = 20
	h := newSalesHistory(b, benchContacts(b))
	now := h.latest.Add(24 * time.Hour).Add(365 * 24 * time.Hour) // after every write of the run
	past := time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)
	questions := []kpiQuestion{
		{name: "baseline: SELECT 1"},
		{name: "KPIs, 12 months", kpis: &analytics.KPIParams{Period: "month", From: "2025-01-01", To: "2025-12-31"}},
		{name: "KPIs, 3 months as of a past time", kpis: &analytics.KPIParams{Period: "month", From: "2025-01-01", To: "2025-03-31", AsOf: past}},
		{name: "KPIs, 13 weeks owner=rep-mori", kpis: &analytics.KPIParams{Period: "week", From: "2025-10-01", To: "2025-12-31", Owner: "rep-mori"}},
		{name: "KPIs, 8 quarters channel=web_form", kpis: &analytics.KPIParams{Period: "quarter", From: "2024-01-01", To: "2025-12-31", Channel: "web_form"}},
		{name: "NPS, 12 months", nps: &analytics.NPSParams{Period: "month", From: "2025-01-01", To: "2025-12-31"}},
		{name: "forecast", forecast: &analytics.ForecastParams{From: "2025-01", To: "2026-06"}},
	}
	p := analytics.Projection()
	for _, d := range []projections.Dialect{projections.SQLite, projections.Postgres} {
		b.Run(d.String(), func(b *testing.B) {
			db, tables := projectiontest.Loaded(b, d, p, h.events, 10_000)
			b.ReportMetric(float64(len(h.events)), "events")
			next := int64(len(h.events))
			projectiontest.ForWrites(b, func(b *testing.B, writes bool) {
				for _, q := range questions {
					b.Run(q.name, func(b *testing.B) {
						stop := func() {}
						if writes {
							stop = writeTouchpoints(b, db, p, tables, &next, h.latest)
						}
						defer stop()
						projectiontest.Rounds(b, clients, func(ctx context.Context) error {
							return benchAsk(ctx, db, tables, q, now)
						})
					})
				}
			})
		})
	}
}

// writeTouchpoints applies a new touchpoint live every 20 ms (50 a second) until stopped.
func writeTouchpoints(b *testing.B, db *projections.DB, p projections.Projection, tables projections.Tables, next *int64, latest time.Time) (stop func()) {
	rng := rand.New(rand.NewPCG(uint64(*next), 1))
	return projectiontest.WriteLive(b, db, p, tables, 20*time.Millisecond, func() eventstore.Event {
		*next++
		id := fmt.Sprintf("c%07d", rng.IntN(1000))
		at := latest.Add(time.Duration(*next) * time.Second)
		return eventstore.Event{ID: fmt.Sprintf("w%d", *next), Stream: "contact-" + id, Position: *next,
			Type: "contact.touchpoint_recorded.v1", OccurredAt: at, RecordedAt: at,
			Data: fmt.Appendf(nil, `{"contact_id":%q,"touchpoint_id":"w%d","kind":"call","phase":"lead"}`, id, *next)}
	})
}

// benchAsk asks q (as of now unless it says otherwise), or, for the baseline, reads one
// constant in a read transaction: what any answer costs at the least under the same load.
func benchAsk(ctx context.Context, db *projections.DB, tables projections.Tables, q kpiQuestion, now time.Time) error {
	var err error
	switch {
	case q.kpis != nil:
		p := *q.kpis
		if p.AsOf.IsZero() {
			p.AsOf = now
		}
		_, err = analytics.QueryKPIs(ctx, db, tables, p)
	case q.nps != nil:
		p := *q.nps
		p.AsOf = now
		_, err = analytics.QueryNPS(ctx, db, tables, p)
	case q.forecast != nil:
		p := *q.forecast
		p.AsOf = now
		_, err = analytics.QueryForecast(ctx, db, tables, p)
	default:
		var one int
		err = db.ReadOnly(ctx, func(tx *sql.Tx) error { return tx.QueryRowContext(ctx, "SELECT 1").Scan(&one) })
	}
	return err
}
