package projections_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/postgres"
	"github.com/eventcrm/crm/eventstore/sqlite"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/board"
	"github.com/eventcrm/crm/projections/churn"
	"github.com/eventcrm/crm/projections/journey"
	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/rebuild"
)

// Seeded logs of the rebuild benchmark (`make bench-rebuild` writes them with `crm seed`):
// a SQLite store file, and a PostgreSQL store schema in the database of
// CRM_TEST_POSTGRES_URL.
const (
	benchSQLiteEnv   = "CRM_BENCH_SQLITE_STORE"
	benchPostgresEnv = "CRM_BENCH_POSTGRES_SCHEMA"
	benchSizesEnv    = "CRM_BENCH_SIZES" // comma-separated event counts, default 250000,500000,1000000
	benchBatchEnv    = "CRM_BENCH_BATCH" // events per batch, default projections.DefaultRebuildBatch
	// benchOnlyEnv keeps, of the read models a benchmark rebuilds, those named (comma-separated
	// projection names): to measure one alone.
	benchOnlyEnv = "CRM_BENCH_ONLY"
)

type benchLog struct {
	name string
	open func(b *testing.B) (eventstore.Store, *projections.DB)
	// app is the application_name of the read-model database's PostgreSQL sessions, by
	// which the benchmark finds their server processes and measures their CPU ("" SQLite).
	app string
}

func benchLogs(b *testing.B) []benchLog {
	var logs []benchLog
	if path := os.Getenv(benchSQLiteEnv); path != "" {
		logs = append(logs, sqliteBenchLog(path, ""))
	}
	if schema := os.Getenv(benchPostgresEnv); schema != "" {
		logs = append(logs, postgresBenchLog(schema))
	}
	if len(logs) == 0 {
		b.Skipf("no seeded log: set %s and/or %s (make bench-rebuild does)", benchSQLiteEnv, benchPostgresEnv)
	}
	return logs
}

// sqliteBenchLog is the seeded SQLite store at path, read as crm reads it (events of older
// versions upcast: a log seeded by an earlier crm holds contact.created.v1), with read models
// in a file of dir (a temporary directory when empty).
func sqliteBenchLog(path, dir string) benchLog {
	return benchLog{"sqlite", func(b *testing.B) (eventstore.Store, *projections.DB) {
		store, err := sqlite.Open(context.Background(), path)
		if err != nil {
			b.Fatalf("open %s: %v", path, err)
		}
		b.Cleanup(func() { store.Close() })
		in := dir
		if in == "" {
			in = b.TempDir()
		}
		db, err := projections.OpenSQLite(context.Background(), filepath.Join(in, "readmodels.db"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { db.SQL.Close() })
		return projectiontest.Upcasting(b, store), db
	}, ""}
}

// postgresBenchLog is the seeded PostgreSQL store in schema, read as crm reads it, with read
// models in a fresh schema of their own, whose sessions are named app (see projectiontest.PgCPU).
func postgresBenchLog(schema string) benchLog {
	app := fmt.Sprintf("crm_rebuild_bench_%d", os.Getpid())
	return benchLog{"postgres", func(b *testing.B) (eventstore.Store, *projections.DB) {
		ctx := context.Background()
		store, err := postgres.Open(ctx, projectiontest.PostgresURL(), postgres.WithSchema(schema))
		if err != nil {
			b.Fatalf("open postgres store %s: %v", schema, err)
		}
		b.Cleanup(func() { store.Close() })
		readSchema := projectiontest.FreshSchema(b, "readmodel_bench_")
		db, err := projections.OpenPostgres(ctx, projectiontest.AppURL(projectiontest.PostgresURL(), app), readSchema)
		if err != nil {
			b.Fatalf("open postgres read models: %v", err)
		}
		b.Cleanup(func() { db.SQL.Close() })
		return projectiontest.Upcasting(b, store), db
	}, app}
}

func benchSizes(b *testing.B) []int64 {
	spec := os.Getenv(benchSizesEnv)
	if spec == "" {
		return []int64{250_000, 500_000, 1_000_000}
	}
	var sizes []int64
	for _, f := range strings.Split(spec, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
		if err != nil {
			b.Fatalf("%s: %v", benchSizesEnv, err)
		}
		sizes = append(sizes, n)
	}
	return sizes
}

// BenchmarkRebuild rebuilds the three read models together from the first N events of a
// seeded log into a fresh read-model database, and reads the same events with plain ReadAll
// calls (the raw baseline) in the same run. Memory: the Go heap's peak (sampled) and the
// process's peak RSS (reset before each rebuild). cpu_us/event is this process's CPU time
// per event: a figure that holds on a busy machine; on PostgreSQL, pg_cpu_us/event is that
// of the server processes of the build's sessions (see projectiontest.PgCPU).
func BenchmarkRebuild(b *testing.B) {
	benchRebuild(b, func() []projections.Projection {
		return []projections.Projection{board.Projection(), journey.Projection(), churn.Projection()}
	})
}

// BenchmarkRebuildAll is BenchmarkRebuild with every read model, as `crm rebuild --all`
// builds them: the timeline, the tasks and the directory too.
func BenchmarkRebuildAll(b *testing.B) {
	benchRebuild(b, readModels)
}

// BenchmarkRebuildFirstPass measures what the batch path of a rebuild does before any I/O:
// the first pass of each batch (its events decoded and folded over no stored rows, to find
// the rows to load) of the three read models of BenchmarkRebuild, over the first N events of
// the seeded logs. cpu_us/event is this process's CPU time in those passes alone: the log is
// read between them, outside the measure. The rest of a rebuild's CPU is the writer's (loads,
// the second fold, the writes).
func BenchmarkRebuildFirstPass(b *testing.B) {
	for _, log := range benchLogs(b) {
		for _, n := range benchSizes(b) {
			b.Run(fmt.Sprintf("%s/%dk", log.name, n/1000), func(b *testing.B) {
				store, _ := log.open(b)
				var models []projections.BatchProjection
				for _, p := range benchModels([]projections.Projection{board.Projection(), journey.Projection(), churn.Projection()}) {
					models = append(models, p.(projections.BatchProjection))
				}
				var (
					cpu, elapsed time.Duration
					events       int64
				)
				for range b.N {
					for after := int64(0); after < n; {
						batch, err := store.ReadAll(context.Background(), after, projections.DefaultRebuildBatch)
						if err != nil {
							b.Fatal(err)
						}
						if len(batch) == 0 {
							break
						}
						after = batch[len(batch)-1].Position
						batch = slices.DeleteFunc(batch, func(e eventstore.Event) bool { return e.Position > n })
						cpu0, start := projectiontest.CPUTime(), time.Now()
						shared := projections.NewBatch(batch)
						for _, m := range models {
							if _, err := m.PrepareBatch(shared); err != nil {
								b.Fatal(err)
							}
						}
						cpu += projectiontest.CPUTime() - cpu0
						elapsed += time.Since(start)
						events += int64(len(batch))
					}
				}
				b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(events), "cpu_us/event")
				b.ReportMetric(float64(events)/elapsed.Seconds(), "events/s")
			})
		}
	}
}

// benchRebuild measures rebuilds of the read models of models (only those of benchOnlyEnv
// when it is set).
func benchRebuild(b *testing.B, models func() []projections.Projection) {
	for _, log := range benchLogs(b) {
		for _, n := range benchSizes(b) {
			b.Run(fmt.Sprintf("%s/%dk", log.name, n/1000), func(b *testing.B) {
				for range b.N {
					store, db := log.open(b)
					ctx := context.Background()
					raw, rawElapsed := readRaw(b, store, n)

					runtime.GC()
					resetPeakRSS()
					stop := samplePeakHeap()
					cfg := rebuild.RebuildConfig{DB: db, Store: store, StopAt: n}
					if v := os.Getenv(benchBatchEnv); v != "" {
						cfg.Batch, _ = strconv.Atoi(v)
					}
					var server *projectiontest.PgCPU
					if log.app != "" {
						server = projectiontest.SamplePgCPU(db, log.app)
					}
					cpu0 := projectiontest.CPUTime()
					start := time.Now()
					res, err := rebuild.Rebuild(ctx, cfg, benchModels(models())...)
					elapsed := time.Since(start)
					cpu := projectiontest.CPUTime() - cpu0
					peakHeap := stop()
					var serverCPU time.Duration
					if server != nil {
						serverCPU = server.Stop()
					}
					if err != nil {
						b.Fatal(err)
					}
					events := res[0].Events
					rate := float64(events) / elapsed.Seconds()
					rawRate := float64(raw) / rawElapsed.Seconds()
					b.ReportMetric(rate, "events/s")
					b.ReportMetric(rawRate, "raw_events/s")
					b.ReportMetric(rate/rawRate, "of_raw")
					b.ReportMetric(float64(cpu.Microseconds())/float64(events), "cpu_us/event")
					if server != nil {
						b.ReportMetric(float64(serverCPU.Microseconds())/float64(events), "pg_cpu_us/event")
					}
					b.ReportMetric(float64(peakHeap)/(1<<20), "peak_heap_MB")
					b.ReportMetric(float64(peakRSS())/(1<<20), "peak_rss_MB")
					b.Logf("%s: %d events rebuilt in %v (%.0f events/s); raw read %.0f events/s", log.name, events, elapsed.Round(time.Millisecond), rate, rawRate)
				}
			})
		}
	}
}

// benchModels keeps of ps those benchOnlyEnv names, all when it is not set.
func benchModels(ps []projections.Projection) []projections.Projection {
	only := os.Getenv(benchOnlyEnv)
	if only == "" {
		return ps
	}
	names := strings.Split(only, ",")
	return slices.DeleteFunc(ps, func(p projections.Projection) bool { return !slices.Contains(names, p.Name()) })
}

// readRaw reads the first n events of the log as a rebuild does (batches of the default
// size), without applying them.
func readRaw(b *testing.B, store eventstore.Store, n int64) (int64, time.Duration) {
	b.Helper()
	start := time.Now()
	var after, count int64
	for after < n {
		events, err := store.ReadAll(context.Background(), after, projections.DefaultRebuildBatch)
		if err != nil {
			b.Fatal(err)
		}
		if len(events) == 0 {
			break
		}
		for _, e := range events {
			if e.Position > n {
				break
			}
			count++
		}
		after = events[len(events)-1].Position
	}
	return count, time.Since(start)
}

// samplePeakHeap samples the live heap every 5 ms until the returned stop, which returns
// the highest value seen.
func samplePeakHeap() (stop func() uint64) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var (
		peak uint64
		wg   sync.WaitGroup
	)
	done := make(chan struct{})
	wg.Go(func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(sample)
			peak = max(peak, sample[0].Value.Uint64())
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	})
	return func() uint64 {
		close(done)
		wg.Wait()
		return peak
	}
}

// resetPeakRSS resets the kernel's high-water mark of the process's resident set (Linux).
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSS is the process's peak resident set since the last reset, in bytes (0 when unknown).
func peakRSS() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
