package value_test

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
type history struct {
	rng    *rand.Rand
	events []eventstore.Event
	latest time.Time
}

func (h *history) add(stream, typ string, at time.Time, data string) {
	pos := int64(len(h.events) + 1)
	h.events = append(h.events, eventstore.Event{ID: fmt.Sprintf("e%d", pos), Stream: stream, Position: pos, Type: typ,
		OccurredAt: at, RecordedAt: at, Data: []byte(data)})
	if at.After(h.latest) {
		h.latest = at
	}
}

func (h *history) purchase(id string, at time.Time, currency string) {
	h.add("contact-"+id, "contact.purchase_recorded.v1", at, fmt.Sprintf(
		`{"contact_id":%q,"purchase_id":"p%d","amount":{"amount":%d,"currency":%q},"product":"CRM Pro"}`,
		id, len(h.events), 1000+h.rng.IntN(500_000), currency))
}

func valueHistory(t testing.TB, n int) *history {
	h := &history{rng: rand.New(rand.NewPCG(7, 7))}
	kinds := []string{"call", "email", "meeting", "webinar", "email_open"}
	for i := range n {
		id := fmt.Sprintf("c%07d", i)
		at := benchStart.Add(time.Duration(h.rng.IntN(500*24)) * time.Hour)
		h.add("contact-"+id, "contact.created.v1", at, fmt.Sprintf(`{"contact_id":%q,"name":"Contact %d","channel":"web_form","owner":"rep-%d"}`, id, i, i%20))
		for range 1 + h.rng.IntN(3) {
			at = at.Add(time.Duration(1+h.rng.IntN(30*24)) * time.Hour)
			h.add("contact-"+id, "contact.touchpoint_recorded.v1", at, fmt.Sprintf(`{"contact_id":%q,"touchpoint_id":"t%d","kind":%q,"phase":"lead"}`,
				id, len(h.events), kinds[h.rng.IntN(len(kinds))]))
		}
		if h.rng.IntN(5) >= 2 {
			continue
		}
		currency := []string{"JPY", "JPY", "JPY", "USD", "EUR"}[h.rng.IntN(5)]
		for range 1 + h.rng.IntN(6) {
			at = at.Add(time.Duration(1+h.rng.IntN(60*24)) * time.Hour)
			h.purchase(id, at, currency)
		}
		h.add("contact-"+id, "contact.usage_reported.v1", at, fmt.Sprintf(`{"contact_id":%q,"percent_of_limit":%d}`, id, 30+h.rng.IntN(80)))
		h.add("contact-"+id, "contact.survey_recorded.v1", at, fmt.Sprintf(`{"contact_id":%q,"survey_id":"s%d","nps":%d}`, id, len(h.events), h.rng.IntN(11)))
	}
	slices.SortStableFunc(h.events, func(a, b eventstore.Event) int { return a.OccurredAt.Compare(b.OccurredAt) })
	for i := range h.events {
		h.events[i].Position = int64(i + 1)
	}
	h.events = projectiontest.Upcast(t, h.events)
	return h
}

// BenchmarkValue asks each customer value question from 20 concurrent clients over the read
// model of benchContacts contacts, first with no writes, then while 50 purchases a second are
// applied live: it reports the latency's p50 and p99 over the iterations (each iteration is
// one question from every client at once).
func BenchmarkValue(b *testing.B) {
	const clients = 20
	n := benchContacts(b)
	h := valueHistory(b, n)
	now := h.latest.Add(24 * time.Hour).Add(365 * 24 * time.Hour) // after every write of the run
	past := h.latest.Add(-90 * 24 * time.Hour)
	questions := []struct {
		name string
		q    question
	}{
		{"baseline: SELECT 1", question{Query: "baseline"}},
		{"customers", question{Query: "customers"}},
		{"customers segment=champions", question{Query: "customers", Segment: "champions"}},
		{"customers sort=orders", question{Query: "customers", Sort: "orders"}},
		{"contact value", question{Query: "value", ContactID: "c0000002"}},
		{"rfm", question{Query: "rfm"}},
		{"repeat-rate", question{Query: "repeat"}},
		{"seasonality", question{Query: "season"}},
		{"upsell-candidates", question{Query: "upsell"}},
		{"dormant", question{Query: "dormant"}},
		{"dormant owner=rep-3", question{Query: "dormant", Owner: "rep-3"}},
		{"customers as of 90 days earlier", question{Query: "customers", AsOf: past}},
	}
	p := value.Projection(time.UTC)
	for _, d := range []projections.Dialect{projections.SQLite, projections.Postgres} {
		b.Run(d.String(), func(b *testing.B) {
			db, tables := projectiontest.Loaded(b, d, p, h.events, 10_000)
			b.ReportMetric(float64(len(h.events)), "events")
			next := int64(len(h.events))
			projectiontest.ForWrites(b, func(b *testing.B, writes bool) {
				for _, qq := range questions {
					b.Run(qq.name, func(b *testing.B) {
						stop := func() {}
						if writes {
							stop = writeSteadily(b, db, p, tables, &next, h.latest)
						}
						defer stop()
						q := qq.q
						if q.AsOf.IsZero() {
							q.AsOf = now
						}
						projectiontest.Rounds(b, clients, func(ctx context.Context) error {
							_, err := benchAsk(ctx, db, tables, q)
							return err
						})
					})
				}
			})
		})
	}
}

// writeSteadily applies a new purchase live every 20 ms (50 a second) until stopped.
func writeSteadily(b *testing.B, db *projections.DB, p projections.Projection, tables projections.Tables, next *int64, latest time.Time) (stop func()) {
	rng := rand.New(rand.NewPCG(uint64(*next), 1))
	return projectiontest.WriteLive(b, db, p, tables, 20*time.Millisecond, func() eventstore.Event {
		*next++
		id := fmt.Sprintf("c%07d", rng.IntN(1000))
		at := latest.Add(time.Duration(*next) * time.Second)
		return eventstore.Event{ID: fmt.Sprintf("w%d", *next), Stream: "contact-" + id, Position: *next,
			Type: "contact.purchase_recorded.v1", OccurredAt: at, RecordedAt: at,
			Data: fmt.Appendf(nil, `{"contact_id":%q,"purchase_id":"w%d","amount":{"amount":1500,"currency":"JPY"},"product":"CRM Pro"}`, id, *next)}
	})
}

// benchAsk asks q, or, for the baseline, reads one constant in a read transaction: what any
// answer costs at the least under the same load.
func benchAsk(ctx context.Context, db *projections.DB, tables projections.Tables, q question) (any, error) {
	if q.Query != "baseline" {
		return ask(ctx, db, tables, time.UTC, q)
	}
	var one int
	err := db.ReadOnly(ctx, func(tx *sql.Tx) error { return tx.QueryRowContext(ctx, "SELECT 1").Scan(&one) })
	return one, err
}

// BenchmarkExplainRFM: the parts of a figure of RFM, found at question time, against the
// answer they explain (about now, and about a past time, which reads the same purchases), one
// client, on the history of BenchmarkValue.
func BenchmarkExplainRFM(b *testing.B) {
	h := valueHistory(b, benchContacts(b))
	now := h.latest.Add(24 * time.Hour)
	past := h.latest.Add(-90 * 24 * time.Hour)
	p := value.Projection(time.UTC)
	for _, d := range []projections.Dialect{projections.SQLite, projections.Postgres} {
		b.Run(d.String(), func(b *testing.B) {
			db, tables := projectiontest.Loaded(b, d, p, h.events, 10_000)
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
