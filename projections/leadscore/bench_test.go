package leadscore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/leadscore"
	"github.com/eventcrm/crm/projections/projectiontest"
)

var benchKinds = []string{"call", "email", "meeting", "visit", "webinar", "email_open", "email_click", "inquiry", "document_download"}

// leadEvents creates n contacts over 20 owners, each with 0 to 6 touchpoints over the 180
// days before now: a few percent of them score 50 or more.
func leadEvents(n int, now time.Time) []eventstore.Event {
	rng := rand.New(rand.NewPCG(42, 7))
	var events []eventstore.Event
	add := func(stream, typ, data string, at time.Time) {
		events = append(events, eventstore.Event{ID: fmt.Sprint("e", len(events)), Stream: stream, Position: int64(len(events) + 1),
			Type: typ, OccurredAt: at, RecordedAt: at, Data: []byte(data)})
	}
	for i := range n {
		id := fmt.Sprintf("c%07d", i)
		// The current event types: events handed to ApplyBatch are not upcast as the store's are.
		add("contact-"+id, contact.TypeCreated, fmt.Sprintf(`{"contact_id":%q,"name":{"family":"n"},"channel":"web_form","owner":"rep-%d"}`, id, i%20),
			now.AddDate(0, 0, -200))
		for j := range rng.IntN(7) {
			at := now.Add(-time.Duration(rng.Int64N(int64(180 * 24 * time.Hour))))
			add("contact-"+id, contact.TypeTouchpointRecorded, fmt.Sprintf(`{"contact_id":%q,"touchpoint_id":"t%d-%d","kind":%q,"phase":"lead"}`,
				id, i, j, benchKinds[rng.IntN(len(benchKinds))]), at)
		}
	}
	return events
}

// BenchmarkHotList asks the hot list (default threshold, the first 100; now, a month ago, of one
// owner, and from min_score 20) from 1 and from 20 clients at once over CRM_BENCH_LEADS_CONTACTS
// contacts (default 100,000), and reports the latency's p50 and p99; the baseline of the same run
// is the smallest read of the same tables (the attribute bands), asked the same way, and the same
// questions answered by reading every contact found (as before the hot list was counted in the
// index).
func BenchmarkHotList(b *testing.B) {
	now := time.Now().UTC()
	events := leadEvents(projectiontest.EnvCount(b, "CRM_BENCH_LEADS_CONTACTS", 1, 100_000), now)
	p := leadscore.Projection()
	for _, d := range []projections.Dialect{projections.SQLite, projections.Postgres} {
		b.Run(d.String(), func(b *testing.B) {
			db, tables := projectiontest.Loaded(b, d, p, events, 20_000)
			ctx := context.Background()
			questions := []struct {
				name string
				ask  func() (int, error)
			}{
				{"baseline: bands", func() (int, error) {
					var n int
					err := db.SQL.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+tables.Name("bands")).Scan(&n)
					return n, err
				}},
				{"hot list", func() (int, error) {
					a, err := leadscore.QueryLeads(ctx, db, tables, leadscore.LeadParams{AsOf: now})
					return a.Total, err
				}},
				// A past as_of: contacts touched since then are scored from their touchpoints.
				{"hot list a month ago", func() (int, error) {
					a, err := leadscore.QueryLeads(ctx, db, tables, leadscore.LeadParams{AsOf: now.AddDate(0, 0, -30)})
					return a.Total, err
				}},
				{"hot list of one owner", func() (int, error) {
					a, err := leadscore.QueryLeads(ctx, db, tables, leadscore.LeadParams{AsOf: now, Owner: "rep-7"})
					return a.Total, err
				}},
				{"min_score 20", func() (int, error) {
					m := 20.0
					a, err := leadscore.QueryLeads(ctx, db, tables, leadscore.LeadParams{AsOf: now, MinScore: &m})
					return a.Total, err
				}},
				// What the answers cost before they were counted in the index: every contact
				// found read and scored.
				{"hot list, every found read", func() (int, error) {
					a, err := leadscore.QueryLeadsFound(ctx, db, tables, leadscore.LeadParams{AsOf: now})
					return a.Total, err
				}},
				{"min_score 20, every found read", func() (int, error) {
					m := 20.0
					a, err := leadscore.QueryLeadsFound(ctx, db, tables, leadscore.LeadParams{AsOf: now, MinScore: &m})
					return a.Total, err
				}},
			}
			for _, q := range questions { // warm the caches: the first reads load the pages
				n, err := q.ask()
				if err != nil {
					b.Fatal(err)
				}
				if n == 0 {
					b.Fatalf("%s: answered nothing; the benchmark would time an empty read model", q.name)
				}
			}
			for _, q := range questions {
				for _, clients := range []int{1, 20} {
					b.Run(fmt.Sprintf("%s/clients=%d", q.name, clients), func(b *testing.B) {
						lat, total := askConcurrently(b, clients, q.ask)
						b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
						b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
						b.ReportMetric(float64(total), "total")
					})
				}
			}
		})
	}
}

// askConcurrently asks b.N questions from clients goroutines at once and answers their
// latencies, sorted, and the last total answered.
func askConcurrently(b *testing.B, clients int, ask func() (int, error)) ([]time.Duration, int) {
	var (
		mu    sync.Mutex
		lat   []time.Duration
		total int
		wg    sync.WaitGroup
		next  atomic.Int64
	)
	// Every client asks once before the timing: the pool opens the connections a steady
	// server keeps open (a new one reads the schema), and the timing starts on them.
	var warm sync.WaitGroup
	for range clients {
		warm.Go(func() {
			if _, err := ask(); err != nil {
				b.Error(err)
			}
		})
	}
	warm.Wait()
	b.ResetTimer()
	for range clients {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				start := time.Now()
				n, err := ask()
				if err != nil {
					b.Error(err)
					return
				}
				mu.Lock()
				lat, total = append(lat, time.Since(start)), n
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.Sort(lat)
	return lat, total
}
