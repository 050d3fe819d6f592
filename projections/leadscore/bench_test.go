package leadscore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
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
// index). Per question it reports cpu-us/req too (this process's CPU per request: the questions
// and their clients) and, on PostgreSQL, pg-cpu-us/req (the CPU of the read model's sessions per
// request). The PostgreSQL set is analyzed, not vacuumed, as a set built in place is.
func BenchmarkHotList(b *testing.B) {
	now := time.Now().UTC()
	events := leadEvents(projectiontest.EnvCount(b, "CRM_BENCH_LEADS_CONTACTS", 1, 100_000), now)
	p := leadscore.Projection()
	for _, d := range []projections.Dialect{projections.SQLite, projections.Postgres} {
		b.Run(d.String(), func(b *testing.B) {
			var (
				db  *projections.DB
				app string // names the PostgreSQL sessions, for their CPU
			)
			if d == projections.Postgres {
				app = fmt.Sprintf("crm_hotlist_bench_%d", os.Getpid())
				db = projectiontest.PostgresApp(b, app)
			} else {
				db = projectiontest.Open(b, d)
			}
			db, tables := projectiontest.LoadedInto(b, db, p, events, 20_000, projectiontest.Analyzed)
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
			found := 0
			for _, q := range questions { // warm the caches: the first reads load the pages
				n, err := q.ask()
				if err != nil {
					b.Fatal(err)
				}
				found = max(found, n)
			}
			// One question may answer nothing over a small set (of 10,000 contacts, none of
			// one owner is hot): only an empty read model answers nothing to every one.
			if found == 0 {
				b.Fatal("every question answered nothing; the benchmark would time an empty read model")
			}
			for _, q := range questions {
				for _, clients := range []int{1, 20} {
					b.Run(fmt.Sprintf("%s/clients=%d", q.name, clients), func(b *testing.B) {
						lat, total := askConcurrently(b, clients, q.ask, db, app)
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
// latencies, sorted, and the last total answered; it reports the CPU per request of this
// process and of the PostgreSQL sessions named app (none: "").
func askConcurrently(b *testing.B, clients int, ask func() (int, error), db *projections.DB, app string) ([]time.Duration, int) {
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
	var pg *projectiontest.PgCPU
	if app != "" {
		pg = projectiontest.SamplePgCPU(db, app)
	}
	cpu0 := projectiontest.CPUTime()
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
	b.ReportMetric(float64((projectiontest.CPUTime()-cpu0).Microseconds())/float64(b.N), "cpu-us/req")
	if pg != nil {
		b.ReportMetric(float64(pg.Stop().Microseconds())/float64(b.N), "pg-cpu-us/req")
	}
	slices.Sort(lat)
	return lat, total
}
