package projections_test

import (
	"context"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/board"
	"github.com/eventcrm/crm/projections/churn"
	"github.com/eventcrm/crm/projections/journey"
	"github.com/eventcrm/crm/projections/timetravel"
)

// benchTravelEnv names a seeded SQLite store (crm seed) for BenchmarkTimeTravel; the store
// file is opened as is, so point it at a copy. The PostgreSQL log is the rebuild benchmark's
// (benchPostgresEnv).
const benchTravelEnv = "CRM_BENCH_TIMETRAVEL_STORE"

// BenchmarkTimeTravel reports, over a seeded log on each backend given: the time to take
// every snapshot from nothing (once per database, as crm serve does on its first start), then
// the latency of the board, the journey map and the churn points at random past positions (a
// temporary set built from the nearest snapshot, the query as the HTTP API asks it, no kept
// answer), beside the same queries on a set at the head (the present-time baseline), in the
// same run.
func BenchmarkTimeTravel(b *testing.B) {
	var logs []benchLog
	if path := os.Getenv(benchTravelEnv); path != "" {
		// CRM_BENCH_TIMETRAVEL_DIR keeps the read models and snapshots, to look at them.
		logs = append(logs, sqliteBenchLog(path, os.Getenv("CRM_BENCH_TIMETRAVEL_DIR")))
	}
	if schema := os.Getenv(benchPostgresEnv); schema != "" {
		logs = append(logs, postgresBenchLog(schema))
	}
	if len(logs) == 0 {
		b.Skipf("no seeded log: set %s to a copy of a crm seed store and/or %s", benchTravelEnv, benchPostgresEnv)
	}
	for _, log := range logs {
		b.Run(log.name, func(b *testing.B) {
			store, db := log.open(b)
			benchTimeTravel(b, store, db)
		})
	}
}

func benchTimeTravel(b *testing.B, store eventstore.Store, db *projections.DB) {
	ctx := context.Background()
	var (
		every int64 // the default
		err   error
	)
	if e := os.Getenv("CRM_BENCH_TIMETRAVEL_EVERY"); e != "" {
		if every, err = strconv.ParseInt(e, 10, 64); err != nil {
			b.Fatalf("CRM_BENCH_TIMETRAVEL_EVERY: %v", err)
		}
	}
	space := 1.0 // as crm serve by default (CRM_SNAPSHOT_SPACE)
	if e := os.Getenv("CRM_BENCH_TIMETRAVEL_SPACE"); e != "" {
		if space, err = strconv.ParseFloat(e, 64); err != nil {
			b.Fatalf("CRM_BENCH_TIMETRAVEL_SPACE: %v", err)
		}
	}
	tt, err := timetravel.NewTimeTravel(timetravel.TimeTravelConfig{DB: db, Store: store, Every: every, Space: space, Cache: 1}, readModels()...)
	if err != nil {
		b.Fatal(err)
	}
	if err := tt.Init(ctx); err != nil {
		b.Fatal(err)
	}
	begin := time.Now()
	taken, err := tt.Snapshot(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%d snapshots in %v", taken, time.Since(begin).Round(time.Millisecond))
	used, err := tt.Space(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%d snapshots kept (space %g): %d MB, the log %d MB (%.2fx)", used.Snapshots, space,
		used.SnapshotBytes>>20, used.LogBytes>>20, float64(used.SnapshotBytes)/float64(max(1, used.LogBytes)))
	head, err := tt.PositionAt(ctx, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("log of %d events", head)
	queries := []struct {
		name string
		run  func(db *projections.DB, t projections.Tables, asOf time.Time) error
	}{
		// As the HTTP API answers: from the present when it covers as_of, else by Query.
		{board.Name, func(db *projections.DB, t projections.Tables, asOf time.Time) error {
			_, err := board.Query(ctx, db, t, board.Params{AsOf: asOf})
			return err
		}},
		{"journey_map", func(db *projections.DB, t projections.Tables, asOf time.Time) error {
			_, err := journey.Query(ctx, db, t, journey.Params{})
			return err
		}},
		{churn.Name, func(db *projections.DB, t projections.Tables, asOf time.Time) error {
			_, err := churn.Query(ctx, db, t, churn.Params{AsOf: asOf})
			return err
		}},
	}
	projection := map[string]string{board.Name: board.Name, "journey_map": journey.Name, churn.Name: churn.Name}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, q := range queries {
		b.Run(q.name+"/present", func(b *testing.B) {
			ts, release, err := tt.At(ctx, projection[q.name], head)
			if err != nil {
				b.Fatal(err)
			}
			defer release()
			for b.Loop() {
				if err := q.run(ts.DB, ts.Tables, ts.RecordedAt); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(q.name+"/past", func(b *testing.B) {
			var lat, built []time.Duration
			for b.Loop() {
				n := 1 + rng.Int64N(head-1)
				start := time.Now()
				ts, release, err := tt.At(ctx, projection[q.name], n)
				if err != nil {
					b.Fatal(err)
				}
				built = append(built, time.Since(start))
				if err := q.run(ts.DB, ts.Tables, ts.RecordedAt); err != nil {
					b.Fatal(err)
				}
				release()
				lat = append(lat, time.Since(start))
			}
			slices.Sort(lat)
			slices.Sort(built)
			b.ReportMetric(float64(lat[len(lat)/2].Milliseconds()), "p50-ms")
			b.ReportMetric(float64(lat[len(lat)-1].Milliseconds()), "max-ms")
			// The set at the position (a snapshot copied, the events after it applied), before
			// the query.
			b.ReportMetric(float64(built[len(built)/2].Milliseconds()), "set-p50-ms")
		})
	}
}
