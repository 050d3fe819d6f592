package value_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/value"
)

// benchContacts is the number of contacts of BenchmarkValue (CRM_BENCH_VALUE_CONTACTS,
// default 20,000: about 7 events each).
func benchContacts(b *testing.B) int {
	return projectiontest.EnvCount(b, "CRM_BENCH_VALUE_CONTACTS", 1, 20_000)
}

var benchStart = time.Date(2024, 1, 1, 9, 0, 0, 0, time.UTC)

// history writes events of n contacts over two years: created, touchpoints, and for two in
// five of them purchases (1 to 6, JPY, USD or EUR), usage reports and surveys.
type history struct{ projectiontest.Generated }

func (h *history) purchase(id string, at time.Time, currency string) {
	h.Add("contact-"+id, "contact.purchase_recorded.v1", at, fmt.Sprintf(
		`{"contact_id":%q,"purchase_id":"p%d","amount":{"amount":%d,"currency":%q},"product":"CRM Pro"}`,
		id, len(h.Events), 1000+h.Rng.IntN(500_000), currency))
}

func valueHistory(t testing.TB, n int) *history {
	h := &history{projectiontest.NewGenerated(7)}
	kinds := []string{"call", "email", "meeting", "webinar", "email_open"}
	for i := range n {
		id := fmt.Sprintf("c%07d", i)
		at := benchStart.Add(time.Duration(h.Rng.IntN(500*24)) * time.Hour)
		h.Add("contact-"+id, "contact.created.v1", at, fmt.Sprintf(`{"contact_id":%q,"name":"Contact %d","channel":"web_form","owner":"rep-%d"}`, id, i, i%20))
		for range 1 + h.Rng.IntN(3) {
			at = at.Add(time.Duration(1+h.Rng.IntN(30*24)) * time.Hour)
			h.Add("contact-"+id, "contact.touchpoint_recorded.v1", at, fmt.Sprintf(`{"contact_id":%q,"touchpoint_id":"t%d","kind":%q,"phase":"lead"}`,
				id, len(h.Events), kinds[h.Rng.IntN(len(kinds))]))
		}
		if h.Rng.IntN(5) >= 2 {
			continue
		}
		currency := []string{"JPY", "JPY", "JPY", "USD", "EUR"}[h.Rng.IntN(5)]
		for range 1 + h.Rng.IntN(6) {
			at = at.Add(time.Duration(1+h.Rng.IntN(60*24)) * time.Hour)
			h.purchase(id, at, currency)
		}
		h.Add("contact-"+id, "contact.usage_reported.v1", at, fmt.Sprintf(`{"contact_id":%q,"percent_of_limit":%d}`, id, 30+h.Rng.IntN(80)))
		h.Add("contact-"+id, "contact.survey_recorded.v1", at, fmt.Sprintf(`{"contact_id":%q,"survey_id":"s%d","nps":%d}`, id, len(h.Events), h.Rng.IntN(11)))
	}
	h.InTimeOrder(t)
	return h
}

// BenchmarkValue asks each customer value question from 20 concurrent clients over the read
// model of benchContacts contacts, first with no writes, then while 50 purchases a second are
// applied live: it reports the latency's p50 and p99 over the iterations (each iteration is
// one question from every client at once).
func BenchmarkValue(b *testing.B) {
	h := valueHistory(b, benchContacts(b))
	now := h.Latest.Add(24 * time.Hour).Add(365 * 24 * time.Hour) // after every write of the run
	past := h.Latest.Add(-90 * 24 * time.Hour)
	purchases := projectiontest.LiveWrites{Type: "contact.purchase_recorded.v1", Data: func(id string, n int64) []byte {
		return fmt.Appendf(nil, `{"contact_id":%q,"purchase_id":"w%d","amount":{"amount":1500,"currency":"JPY"},"product":"CRM Pro"}`, id, n)
	}}
	askAt := func(q question) func(ctx context.Context, db *projections.DB, tables projections.Tables) error {
		if q.AsOf.IsZero() {
			q.AsOf = now
		}
		return func(ctx context.Context, db *projections.DB, tables projections.Tables) error {
			_, err := ask(ctx, db, tables, time.UTC, q)
			return err
		}
	}
	projectiontest.AskInRounds(b, value.Projection(time.UTC), &h.Generated, 20, purchases, []projectiontest.Asked{
		{Name: "baseline: SELECT 1", Ask: projectiontest.Baseline},
		{Name: "customers", Ask: askAt(question{Query: "customers"})},
		{Name: "customers segment=champions", Ask: askAt(question{Query: "customers", Segment: "champions"})},
		{Name: "customers sort=orders", Ask: askAt(question{Query: "customers", Sort: "orders"})},
		{Name: "contact value", Ask: askAt(question{Query: "value", ContactID: "c0000002"})},
		{Name: "rfm", Ask: askAt(question{Query: "rfm"})},
		{Name: "repeat-rate", Ask: askAt(question{Query: "repeat"})},
		{Name: "seasonality", Ask: askAt(question{Query: "season"})},
		{Name: "upsell-candidates", Ask: askAt(question{Query: "upsell"})},
		{Name: "dormant", Ask: askAt(question{Query: "dormant"})},
		{Name: "dormant owner=rep-3", Ask: askAt(question{Query: "dormant", Owner: "rep-3"})},
		{Name: "dormant owner=rep-3 phase=lead", Ask: askAt(question{Query: "dormant", Owner: "rep-3", Phase: "lead"})},
		{Name: "customers segment=hibernating sort=first_purchase", Ask: askAt(question{Query: "customers", Segment: "hibernating", Sort: "first_purchase"})},
		{Name: "customers as of 90 days earlier", Ask: askAt(question{Query: "customers", AsOf: past})},
	})
}

// BenchmarkExplainRFM: the parts of a figure of RFM, found at question time, against the
// answer they explain (about now, and about a past time, which reads the same purchases), one
// client, on the history of BenchmarkValue.
func BenchmarkExplainRFM(b *testing.B) {
	h := valueHistory(b, benchContacts(b))
	now := h.Latest.Add(24 * time.Hour)
	past := h.Latest.Add(-90 * 24 * time.Hour)
	p := value.Projection(time.UTC)
	for _, d := range []projections.Dialect{projections.SQLite, projections.Postgres} {
		b.Run(d.String(), func(b *testing.B) {
			db, tables := projectiontest.Loaded(b, d, p, h.Events, 10_000)
			ctx := context.Background()
			for _, q := range []struct {
				name string
				ask  func() error
			}{
				{"rfm", func() error { _, err := value.QueryRFM(ctx, db, tables, time.UTC, now); return err }},
				{"rfm as of 90 days earlier", func() error { _, err := value.QueryRFM(ctx, db, tables, time.UTC, past); return err }},
				{"explain grid.5.5.customers", func() error {
					_, err := value.ExplainRFM(ctx, db, tables, now, "grid.5.5.customers", 0, "")
					return err
				}},
				{"explain segments.champions.revenue.JPY", func() error {
					_, err := value.ExplainRFM(ctx, db, tables, now, "segments.champions.revenue.JPY", 0, "")
					return err
				}},
			} {
				b.Run(q.name, func(b *testing.B) {
					for b.Loop() {
						if err := q.ask(); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		})
	}
}
