package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventcrm/crm/cmd/crm/internal/config"
	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/commands/processes"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/sqlite"
	"github.com/eventcrm/crm/eventstore/wmstore"
	"github.com/eventcrm/crm/projections/journey"
)

// The history of BenchmarkReadModelQueries: queryContacts contacts with queryDealsPerContact
// deals each, 100,000 deals.
const (
	queryContacts        = 25_000
	queryDealsPerContact = 4
)

// queryReps are the deals' owners.
var queryReps = []string{"rep-aoki", "rep-endo", "rep-fujita", "rep-goto", "rep-hara", "rep-ikeda", "rep-kondo", "rep-mori", "rep-noguchi", "rep-ota"}

// BenchmarkReadModelQueries measures the latency of the read-model queries over HTTP, on
// `crm serve`'s stack (startBenchServer) on the embedded default, through the loopback
// listener, with 1 and with 100 concurrent clients, each sending its next request when the
// previous one is answered. The history has 100,000 deals (25,000 contacts with 4 deals each,
// moved through the stages over 20 months, about a third still open) and the phase changes,
// touchpoints and deal-won process commands around them; it is built once and kept (see
// bench_helpers_test.go). It reports p50-ms, p99-ms and requests/s per query:
//
//   - status: GET /v1/projections, no query of the read models: the HTTP stack's baseline.
//   - board: GET /v1/pipeline/board (as of now, every owner, 50 cards per stage); board-owner
//     the same for one owner (they rotate). Goal (issue 4): p99 under 20 ms at 100 clients.
//   - journey: GET /v1/journeys/{contactId} (contacts rotate).
//   - journey-map: GET /v1/analytics/journey-map over every contact; journey-map-cohort for
//     one month of leads (months rotate).
//   - churn-points: GET /v1/analytics/churn-points (as of now, every contact);
//     churn-points-cohort for one month of leads.
//
// Three servers, one after the other, answer the same questions:
//
//   - kept: as `crm serve` runs, with the answer cache (CRM_ANSWER_CACHE): the journey map is
//     read once per state of the tables, every later request in that state reusing the
//     reading; the board and churn points now read the counts their folds keep at each
//     request (days in stage and dormancy move with now). Nothing is written meanwhile.
//   - kept-writes: the same while contacts are created at queryWriteRate per second, so the
//     tables change under the readers and kept answers expire all the time: a request joins
//     the reading of its question in progress, or starts one.
//   - read-each: without the cache (CRM_ANSWER_CACHE=0): every request reads the tables: the
//     cost of one reading.
//
// Without kept answers, 100 clients ask only the questions read in milliseconds (status,
// board, journey): every request would read a journey map or churn points on its own.
//
// A sub-benchmark sends max(b.N, 20) requests with 1 client and max(b.N, 3 per client) with
// 100, after two to warm up. A request the server drops (its write timeout, 60 s as in `crm
// serve`, ran out while it waited) counts as failed, with the time it took.
func BenchmarkReadModelQueries(b *testing.B) {
	dir := queryDataset(b)
	modes := []struct {
		name        string
		answerCache string
		writes      bool
		manyClients func(query string) bool
	}{
		{"kept", "", false, func(string) bool { return true }},
		{"kept-writes", "", true, func(string) bool { return true }},
		{"read-each", "0", false, fastReading},
	}
	for _, mode := range modes {
		b.Run(mode.name, func(b *testing.B) {
			s, stop := newBenchServer(b, config.Config{AnswerCache: mode.answerCache,
				DataDir: copyFiles(b, dir, "crm.db", "crm.db-wal", "readmodels.db", "readmodels.db-wal")})
			defer stop()
			queries := queryPaths(b, s)
			if mode.writes {
				stopWrites := writeContacts(b, s, queryWriteRate)
				defer stopWrites()
			}
			for _, q := range queries {
				for _, clients := range []int{1, 100} {
					if clients > 1 && !mode.manyClients(q.name) {
						continue
					}
					b.Run(fmt.Sprintf("%s/clients=%d", q.name, clients), func(b *testing.B) {
						benchQuery(b, s, clients, q.path)
					})
				}
			}
		})
	}
}

// fastReading reports whether reading the tables for a question takes milliseconds, not
// seconds: only those are asked by 100 clients when answers are not kept.
func fastReading(query string) bool {
	return query == "status" || query == "board" || query == "board-owner" || query == "journey"
}

// queryWriteRate is the rate of contact creations of the kept-writes mode, per second.
const queryWriteRate = 50

type queryPath struct {
	name string
	path func(i int) string
}

// queryPaths waits for the server's read models to be caught up and returns the questions.
func queryPaths(b *testing.B, s *benchServer) []queryPath {
	ctx := context.Background()
	head, err := logHead(ctx, s.store)
	if err != nil {
		b.Fatal(err)
	}
	if err := waitCaughtUp(ctx, s.runner, head); err != nil {
		b.Fatal(err)
	}
	t, err := s.runner.Tables(journey.Name)
	if err != nil {
		b.Fatal(err)
	}
	var contactIDs []string
	rows, err := s.runner.DB().SQL.QueryContext(ctx, `SELECT contact_id FROM `+t.Name("contacts")+` ORDER BY contact_id LIMIT 1000`)
	if err != nil {
		b.Fatal(err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			b.Fatal(err)
		}
		contactIDs = append(contactIDs, id)
	}
	if err := rows.Close(); err != nil {
		b.Fatal(err)
	}
	var cohorts []string
	for m := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC); m.Year() < 2025 || m.Month() <= 6; m = m.AddDate(0, 1, 0) {
		cohorts = append(cohorts, m.Format(journey.CohortLayout))
	}
	return []queryPath{
		{"status", func(int) string { return "/v1/projections" }},
		{"board", func(int) string { return "/v1/pipeline/board" }},
		{"board-owner", func(i int) string { return "/v1/pipeline/board?owner=" + queryReps[i%len(queryReps)] }},
		{"journey", func(i int) string { return "/v1/journeys/" + contactIDs[i%len(contactIDs)] }},
		{"journey-map", func(int) string { return "/v1/analytics/journey-map" }},
		{"journey-map-cohort", func(i int) string { return "/v1/analytics/journey-map?cohort=" + cohorts[i%len(cohorts)] }},
		{"churn-points", func(int) string { return "/v1/analytics/churn-points" }},
		{"churn-points-cohort", func(i int) string { return "/v1/analytics/churn-points?cohort=" + cohorts[i%len(cohorts)] }},
	}
}

// writeContacts creates contacts over HTTP at rate per second until stop is called; stop
// reports how many were written and fails the benchmark on an error.
func writeContacts(b *testing.B, s *benchServer, rate int) (stop func()) {
	done := make(chan struct{})
	result := make(chan error, 1)
	written := 0
	go func() {
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for {
			select {
			case <-done:
				result <- nil
				return
			case <-tick.C:
				body := fmt.Sprintf(`{"name":"Reader %d","channel":"web_form","owner":"%s"}`, written, queryReps[written%len(queryReps)])
				if _, err := s.do("POST", "/v1/contacts", strings.NewReader(body)); err != nil {
					result <- err
					return
				}
				written++
			}
		}
	}()
	return func() {
		close(done)
		if err := <-result; err != nil {
			b.Fatalf("writing contacts: %v", err)
		}
		b.Logf("%d contacts written while reading", written)
	}
}

func benchQuery(b *testing.B, s *benchServer, clients int, path func(i int) string) {
	n := max(b.N, 20)
	if clients > 1 {
		n = max(b.N, 3*clients)
	}
	var (
		next      atomic.Int64
		failed    atomic.Int64
		firstErr  atomic.Value
		mu        sync.Mutex
		latencies = make([]time.Duration, 0, n)
		wg        sync.WaitGroup
	)
	for c := range min(clients, 2) { // the first answers of a connection read cold pages
		if _, err := s.do("GET", path(c), nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	start := time.Now()
	for range clients {
		wg.Go(func() {
			var local []time.Duration
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					break
				}
				t0 := time.Now()
				if err := s.read(path(int(i))); err != nil {
					// The server gave up on it (its write timeout is 60 s, as `crm serve`'s): it
					// counts with the time it took, as a failure.
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			latencies = append(latencies, local...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if f := failed.Load(); f > 0 {
		b.Logf("%d of %d requests failed, the first: %v", f, n, firstErr.Load())
		if f == int64(n) {
			b.FailNow()
		}
	}
	slices.Sort(latencies)
	b.ReportMetric(percentile(latencies, 0.50), "p50-ms")
	b.ReportMetric(percentile(latencies, 0.99), "p99-ms")
	b.ReportMetric(float64(n-int(failed.Load()))/elapsed.Seconds(), "requests/s")
	b.ReportMetric(float64(failed.Load()), "failed")
	b.ReportMetric(0, "ns/op")
}

// queryDataset returns the cached data directory of BenchmarkReadModelQueries (the log and
// the read models), building it on the first run: the history through the command handler,
// then `crm serve`'s background work until the projections and the deal-won process have
// caught up with the log.
func queryDataset(b *testing.B) string {
	return cachedDir(b, fmt.Sprintf("queries-sqlite-%dx%d", queryContacts, queryDealsPerContact), func(dir string) error {
		ctx := context.Background()
		store, err := sqlite.Open(ctx, filepath.Join(dir, "crm.db"))
		if err != nil {
			return err
		}
		start := time.Now()
		err = generateDeals(ctx, commands.NewHandler(store), queryContacts, queryDealsPerContact)
		store.Close()
		if err != nil {
			return err
		}
		b.Logf("generated the history in %s", time.Since(start).Round(time.Second))

		start = time.Now()
		s, stop := newBenchServer(b, config.Config{DataDir: dir})
		defer stop()
		cps := s.store.(eventstore.Checkpoints)
		for {
			head, err := logHead(ctx, s.store)
			if err != nil {
				return err
			}
			if err := waitCaughtUp(ctx, s.runner, head); err != nil {
				return err
			}
			processed, err := cps.LoadCheckpoint(ctx, wmstore.CheckpointName(processes.DealWonGroup, wmstore.AllTopic))
			if err != nil {
				return err
			}
			if processed >= head {
				time.Sleep(2 * time.Second) // the process's last commands are in the log by now
				if again, err := logHead(ctx, s.store); err != nil || again == head {
					b.Logf("read models of %d events built in %s", head, time.Since(start).Round(time.Second))
					return err
				}
			}
			time.Sleep(time.Second)
		}
	})
}

// generateDeals writes the history of BenchmarkReadModelQueries through the command
// handler: per contact, a creation with channel, owner and segment, touchpoints and phase
// changes, and deals opened, moved through the stages, and some won or lost, at business
// times from 2024-01 on. The same arguments write the same history.
func generateDeals(ctx context.Context, h *commands.Handler, contacts, dealsPerContact int) error {
	channels := []string{"web_form", "seminar", "exhibition", "direct_mail", "social_ad", "referral"}
	segments := []string{"smb", "mid_market", "enterprise"}
	kinds := []string{"email_open", "call", "email", "meeting", "visit", "inquiry"}
	stages := []string{"needs_analysis", "proposal", "negotiation"}
	reasons := []string{"price", "competitor", "timing", "no_budget", "no_decision", "product_fit", "other"}
	epoch := time.Date(2024, 1, 1, 9, 0, 0, 0, time.UTC)

	one := func(i int) error {
		rng := rand.New(rand.NewPCG(7, uint64(i)))
		now := epoch.Add(time.Duration(rng.IntN(540*24)) * time.Hour)
		wait := func(days float64) { now = now.Add(time.Duration(rng.ExpFloat64() * days * float64(24*time.Hour))) }
		owner := queryReps[rng.IntN(len(queryReps))]
		m := func() commands.Meta { return commands.Meta{Actor: owner, OccurredAt: now} }
		res, err := h.CreateContact(ctx, m(), commands.CreateContact{Name: fmt.Sprintf("Contact %d", i),
			Channel: channels[rng.IntN(len(channels))], Owner: owner, Segment: segments[rng.IntN(len(segments))]})
		if err != nil {
			return fmt.Errorf("create contact: %w", err)
		}
		contactID := res.ID
		for range 1 + rng.IntN(3) {
			wait(4)
			if _, err := h.RecordTouchpoint(ctx, m(), commands.RecordTouchpoint{ContactID: contactID, Kind: kinds[rng.IntN(len(kinds))]}); err != nil {
				return fmt.Errorf("touchpoint: %w", err)
			}
		}
		for _, p := range []string{"approach", "discovery", "proposal"} {
			if rng.Float64() > 0.7 {
				break
			}
			wait(6)
			if _, err := h.ChangePhase(ctx, m(), commands.ChangePhase{ContactID: contactID, Phase: p}); err != nil {
				return fmt.Errorf("phase %s: %w", p, err)
			}
		}
		contactAt := now
		for d := range dealsPerContact {
			now = contactAt.Add(time.Duration(d*20+rng.IntN(20)) * 24 * time.Hour)
			currency, amount := "JPY", int64(100_000+rng.IntN(4_900_000))
			if rng.Float64() < 0.15 {
				currency = "USD"
			}
			res, err := h.OpenDeal(ctx, m(), commands.OpenDeal{ContactID: contactID, Title: fmt.Sprintf("Deal %d/%d", i, d),
				Amount: amount, Currency: currency, ExpectedClose: now.AddDate(0, 3, 0).Format(time.DateOnly)})
			if err != nil {
				return fmt.Errorf("open deal: %w", err)
			}
			dealID := res.ID
			for _, st := range stages {
				if rng.Float64() > 0.6 {
					break
				}
				wait(10)
				if _, err := h.ChangeDealStage(ctx, m(), commands.ChangeDealStage{DealID: dealID, Stage: st}); err != nil {
					return fmt.Errorf("deal stage %s: %w", st, err)
				}
			}
			wait(15)
			switch r := rng.Float64(); {
			case r < 0.35:
				if _, err := h.WinDeal(ctx, m(), commands.WinDeal{DealID: dealID}); err != nil {
					return fmt.Errorf("win deal: %w", err)
				}
			case r < 0.65:
				if _, err := h.LoseDeal(ctx, m(), commands.LoseDeal{DealID: dealID, Reason: reasons[rng.IntN(len(reasons))]}); err != nil {
					return fmt.Errorf("lose deal: %w", err)
				}
			}
		}
		return nil
	}

	const workers = 64
	var (
		next     atomic.Int64
		firstErr atomic.Value
		wg       sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= contacts || firstErr.Load() != nil {
					return
				}
				if err := one(i); err != nil {
					firstErr.Store(fmt.Errorf("contact %d: %w", i, err))
					return
				}
			}
		})
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return err
	}
	return nil
}
