package runtime_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// A set built in place on PostgreSQL is served while it grows from empty: the statistics of
// each set are gathered as it grows, not only once autovacuum comes by (never, where it is
// off), and at the end of the build, so that its questions are planned for the rows it holds.
// Twelve streams of 50 events in builds of 50 events, two projections built together (their
// sets commit from goroutines of their own): each streams table gains a row per batch, is
// analysed after its commits 1, 2, 4 and 8 of the build, and when the build ends the database knows it
// holds twelve rows.
func TestFarBehindBuildGathersStatistics(t *testing.T) {
	i := slices.IndexFunc(projectiontest.Backends(), func(b projectiontest.Backend) bool { return b.Name == "postgres" })
	store, db := projectiontest.Backends()[i].Open(t)
	ps := []projections.Projection{newStreamVersions(), &projectiontest.Counter{}}
	for i := range 12 {
		projectiontest.AppendTo(t, store, fmt.Sprintf("s-%d", i), slices.Repeat([]string{"test.a.v1"}, 50)...)
	}
	cfg := projectiontest.RunnerConfig(store, db)
	cfg.BuildBehind, cfg.BuildBatch = 100, 50
	r := projectiontest.NewRunner(t, cfg, ps...)
	projectiontest.Start(t, r)
	for _, p := range ps {
		projectiontest.WaitCheckpoint(t, db, p, projectiontest.LastPosition(t, store))
	}
	waitLive(t, r)

	for _, p := range ps {
		table := projections.TablesFor(p, "").Name("streams")
		var rows int64
		if err := db.SQL.QueryRow(`SELECT count(*) FROM ` + table).Scan(&rows); err != nil {
			t.Fatal(err)
		}
		if rows != 12 {
			t.Fatalf("%s: %d streams, want 12", table, rows)
		}
		// The statistics of a session's work reach pg_stat_* when the session reports them.
		var reltuples float64
		var analyses int64
		projectiontest.WaitUntil(t, 30*time.Second, "the statistics of "+table+": 12 rows, analysed 5 times or more (after its commits 1, 2, 4 and 8 of 12, and at the end)", func() bool {
			err := db.SQL.QueryRowContext(context.Background(),
				`SELECT c.reltuples, pg_stat_get_analyze_count(c.oid) FROM pg_class c WHERE c.oid = $1::regclass`,
				table).Scan(&reltuples, &analyses)
			if err != nil {
				t.Fatal(err)
			}
			return reltuples == float64(rows) && analyses >= 5
		})
	}
}
