package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eventcrm/crm/cmd/crm/internal/seed"
	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/postgres"
	"github.com/eventcrm/crm/eventstore/sqlite"
	"github.com/eventcrm/crm/eventstore/wmstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/runtime"
)

// throughputContacts is the size of the seeded history of the throughput benchmark: `crm
// seed --contacts 101000` (the default seed, 1, and dates) writes 1,007,000 events, about 10
// per contact, over 135,443 streams (101,000 contacts, 34,443 deals).
const throughputContacts = 101_000

func throughputSeed() seed.Config {
	return seed.Config{Contacts: throughputContacts, Seed: 1, Workers: 64,
		Start: time.Date(2024, 1, 1, 9, 0, 0, 0, time.UTC), Days: 640}
}

// BenchmarkProjectionThroughput applies the seeded history of 1M events to the three read
// models `crm serve` runs (pipeline board, journey, churn points), on SQLite (the log and the
// read models in two files, as the embedded default) and on PostgreSQL (the log and the read
// models in two schemas of one database, see benchDatabase). It reports events/s: the log's events over the
// time until all three projections have applied all of them. Sub-benchmarks, in one process
// so their ratios hold on a noisy machine:
//
//   - readall: Store.ReadAll over the whole log in pages of the catch-up's size, applying
//     nothing: the ceiling of catch-up.
//   - watermill: three consumer groups read the whole log through the store's Watermill
//     subscriber into bare router handlers that decode each event and apply nothing: the
//     ceiling of the live path.
//   - catchup: the Runner as `crm serve` builds it (newBackground), started on empty read
//     models: what a server does after `crm seed`. It reads the log directly, from far
//     behind as a rebuild builds (in place), then hands over to Watermill.
//   - live: the same Runner with its catch-up reading nothing, so that every event comes
//     through the store's Watermill subscriber and the router handler with the production
//     middleware (poison queue, retry, recoverer), one transaction per live batch (the
//     delivered event and those after it already in the log) and projection: the path of
//     events written while the server runs, sustained.
//   - backlog: the Runner live from position 0 with the whole log behind it (its start-up
//     catch-up reads nothing): a live projection that fell behind. Once more than
//     CatchingUpLag behind the head, its handler reads the log in batches, as the catch-up.
//
// The first run seeds the history (a few minutes) and keeps it: see bench_helpers_test.go.
// Run with -benchtime 1x: one pass over 1M events is the measurement.
func BenchmarkProjectionThroughput(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		store := seededSQLite(b)
		benchThroughput(b, store, func(b *testing.B) *projections.DB {
			db, err := projections.OpenSQLite(context.Background(), filepath.Join(b.TempDir(), "readmodels.db"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { db.SQL.Close() })
			return db
		})
	})
	b.Run("postgres", func(b *testing.B) {
		store := seededPostgres(b)
		benchThroughput(b, store, func(b *testing.B) *projections.DB {
			db, err := projections.OpenPostgres(context.Background(), benchPostgresURL(b), tempSchema(b, "crm_bench_rm_"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { db.SQL.Close() })
			return db
		})
	})
}

// seededSQLite opens the cached SQLite log of throughputSeed, seeding it on the first run.
func seededSQLite(b *testing.B) eventstore.Store {
	b.Helper()
	ctx := context.Background()
	dir := cachedDir(b, fmt.Sprintf("seed-sqlite-%d", throughputContacts), func(dir string) error {
		store, err := sqlite.Open(ctx, filepath.Join(dir, "crm.db"))
		if err != nil {
			return err
		}
		defer store.Close()
		stats, err := seed.Run(ctx, commands.NewHandler(store), throughputSeed())
		b.Logf("seeded %d events in %s", stats.Events, stats.Elapsed.Round(time.Second))
		return err
	})
	store, err := sqlite.Open(ctx, filepath.Join(dir, "crm.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	return store
}

// seededPostgresSchema holds the cached PostgreSQL log of throughputSeed.
var seededPostgresSchema = fmt.Sprintf("crm_bench_seed_%d", throughputContacts)

// seededMarker is the checkpoint that says the cached PostgreSQL log is complete.
const seededMarker = "crm-bench:seeded"

// seededPostgres opens the cached PostgreSQL log of throughputSeed, seeding it on the
// first run.
func seededPostgres(b *testing.B) eventstore.Store {
	b.Helper()
	ctx := context.Background()
	open := func() *postgres.Store {
		store, err := postgres.Open(ctx, benchPostgresURL(b), postgres.WithSchema(seededPostgresSchema))
		if err != nil {
			b.Fatalf("open postgres store (set CRM_TEST_POSTGRES_URL): %v", err)
		}
		return store
	}
	store := open()
	done, err := store.LoadCheckpoint(ctx, seededMarker)
	if err != nil {
		b.Fatal(err)
	}
	if done == 0 {
		store.Close()
		if err := dropSchemas(ctx, b, seededPostgresSchema); err != nil {
			b.Fatal(err)
		}
		store = open()
		b.Logf("seeding PostgreSQL schema %s (once: later runs reuse it)", seededPostgresSchema)
		stats, err := seed.Run(ctx, commands.NewHandler(store), throughputSeed())
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("seeded %d events in %s", stats.Events, stats.Elapsed.Round(time.Second))
		head, err := logHead(ctx, store)
		if err == nil {
			err = store.SaveCheckpoint(ctx, seededMarker, head)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	b.Cleanup(func() { store.Close() })
	return store
}

func benchThroughput(b *testing.B, store eventstore.Store, newDB func(b *testing.B) *projections.DB) {
	ctx := context.Background()
	head, err := logHead(ctx, store)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("log of %d events", head)
	var readAllRate, watermillRate float64 // events/s of the baselines, for the ratios
	report := func(b *testing.B, elapsed time.Duration) float64 {
		rate := float64(head) * float64(b.N) / elapsed.Seconds()
		b.ReportMetric(rate, "events/s")
		b.ReportMetric(elapsed.Seconds()/float64(b.N), "s/pass")
		b.ReportMetric(0, "ns/op")
		return rate
	}
	ratios := func(b *testing.B, rate float64) {
		if readAllRate > 0 {
			b.ReportMetric(rate/readAllRate, "x-readall")
		}
		if watermillRate > 0 {
			b.ReportMetric(rate/watermillRate, "x-watermill")
		}
	}

	b.Run("readall", func(b *testing.B) {
		start := time.Now()
		for range b.N {
			n := 0
			for after := int64(0); ; {
				events, err := store.ReadAll(ctx, after, runtime.DefaultCatchUpBatch)
				if err != nil {
					b.Fatal(err)
				}
				if len(events) == 0 {
					break
				}
				n += len(events)
				after = events[len(events)-1].Position
			}
			if int64(n) != head {
				b.Fatalf("read %d events, want %d", n, head)
			}
		}
		readAllRate = report(b, time.Since(start))
	})

	b.Run("watermill", func(b *testing.B) {
		var elapsed time.Duration
		for range b.N {
			elapsed += watermillPass(b, store, head)
		}
		watermillRate = report(b, elapsed)
		ratios(b, watermillRate)
	})

	for _, mode := range []struct {
		name string
		// catchUpReads is the store the runner's catch-up reads; nil for newBackground's runner.
		catchUpReads func(eventstore.Store) eventstore.Store
	}{
		{"catchup", nil},
		{"live", func(s eventstore.Store) eventstore.Store { return noCatchUp{s} }},
		{"backlog", func(s eventstore.Store) eventstore.Store { return noStartCatchUp{s} }},
	} {
		b.Run(mode.name, func(b *testing.B) {
			var elapsed time.Duration
			for range b.N {
				elapsed += runnerPass(b, store, newDB(b), head, mode.catchUpReads)
			}
			ratios(b, report(b, elapsed))
		})
	}
}

// watermillPass delivers the log to three consumer groups through the store's Watermill
// subscriber into router handlers that only decode the event, and returns the time until
// each handler has seen the last one.
func watermillPass(b *testing.B, store eventstore.Store, head int64) time.Duration {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cps := store.(eventstore.Checkpoints)
	groups := []string{"crm-bench:watermill:1", "crm-bench:watermill:2", "crm-bench:watermill:3"}
	if err := resetGroups(ctx, cps, groups...); err != nil {
		b.Fatal(err)
	}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 30 * time.Second}, watermill.NopLogger{})
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, g := range groups {
		sub, err := wmstore.NewSubscriber(store, wmstore.SubscriberConfig{ConsumerGroup: g, Checkpoints: cps}, watermill.NopLogger{})
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan struct{})
		wg.Go(func() { <-done })
		router.AddConsumerHandler(g, wmstore.AllTopic, sub, func(msg *message.Message) error {
			e, err := wmstore.EventFromMessage(msg)
			if err != nil {
				return err
			}
			if e.Position == head {
				close(done)
			}
			return nil
		})
	}
	start := time.Now()
	go func() { _ = router.Run(ctx) }()
	wg.Wait()
	elapsed := time.Since(start)
	_ = router.Close()
	return elapsed
}

// runnerPass runs the projections of `crm serve` on empty read models in db until they have
// applied the log up to head, and returns the time that took. With catchUpReads, the runner's
// catch-up reads the store it returns (see noCatchUp, noStartCatchUp).
func runnerPass(b *testing.B, store eventstore.Store, db *projections.DB, head int64,
	catchUpReads func(eventstore.Store) eventstore.Store) time.Duration {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cps := store.(eventstore.Checkpoints)
	if err := resetGroups(ctx, cps, projectionGroups()...); err != nil {
		b.Fatal(err)
	}
	var runner *runtime.Runner
	if catchUpReads != nil {
		// As newBackground builds it, but for the store the catch-up reads.
		subscriber := func(group string) (message.Subscriber, error) {
			return wmstore.NewSubscriber(store, wmstore.SubscriberConfig{ConsumerGroup: group, Checkpoints: cps}, watermill.NopLogger{})
		}
		var err error
		runner, err = runtime.NewRunner(runtime.RunnerConfig{DB: db, Store: catchUpReads(store),
			NewSubscriber: subscriber, Decode: wmstore.EventFromMessage, AdvanceGroup: advanceGroup(cps),
			CatchUpBatch: runtime.DefaultCatchUpBatch}, utcReadModels()...)
		if err != nil {
			b.Fatal(err)
		}
	} else {
		bg, err := newBackground(ctx, store, db, commands.NewHandler(store), utcReadModels(), snapshotPolicy{}, 0, watermill.NopLogger{})
		if err != nil {
			b.Fatal(err)
		}
		runner = bg.runner // the deal-won process is not run: it writes, and is no projection
	}
	if err := runner.Init(ctx); err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	start := time.Now()
	wg.Go(func() { _ = runner.Run(ctx) })
	var mu sync.Mutex
	var waits sync.WaitGroup
	for _, name := range runner.Names() {
		waits.Go(func() {
			f, err := runner.WaitFor(ctx, name, head, 24*time.Hour)
			mu.Lock()
			defer mu.Unlock()
			if err != nil || f.Stale {
				b.Errorf("projection %s at %d of %d: %v", name, f.Position, head, err)
				return
			}
			b.ReportMetric(time.Since(start).Seconds(), name+"-s")
		})
	}
	waits.Wait()
	elapsed := time.Since(start)
	cancel()
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	return elapsed
}

// noCatchUp is the log as the runner's catch-up sees it in the live benchmark: empty. The
// catch-up is the only reader of pages of DefaultCatchUpBatch events, and, from far behind,
// of DefaultRebuildBatch; the runner's other reads (the head, the lag, a live batch's events)
// and the Watermill subscribers see the real log.
type noCatchUp struct{ eventstore.Store }

func (s noCatchUp) ReadAll(ctx context.Context, after int64, limit int) ([]eventstore.Event, error) {
	if catchUpRead(limit) {
		return nil, nil
	}
	return s.Store.ReadAll(ctx, after, limit)
}

// catchUpRead tells the reads of the runner's catch-up by their size.
func catchUpRead(limit int) bool {
	return limit == runtime.DefaultCatchUpBatch || limit == projections.DefaultRebuildBatch
}

// noStartCatchUp is the log as the catch-up sees it in the backlog benchmark: empty from the
// start only. The runner goes live at position 0 with the whole log waiting in Watermill, as
// a live projection that fell behind; its handler, finding itself far behind the head, reads
// the rest of the log in batches.
type noStartCatchUp struct{ eventstore.Store }

func (s noStartCatchUp) ReadAll(ctx context.Context, after int64, limit int) ([]eventstore.Event, error) {
	if catchUpRead(limit) && after == 0 {
		return nil, nil
	}
	return s.Store.ReadAll(ctx, after, limit)
}
