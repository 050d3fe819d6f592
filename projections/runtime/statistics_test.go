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

// A set built in place on PostgreSQL is served while it grows from empty: its statistics are
// gathered as it grows, not only once autovacuum comes by (never, where it is off), and at
// the end of the build, so that its questions are planned for the rows it holds. Twelve
// streams of 50 events in builds of 50 events: the streams table gains a row per batch, and
// when the build ends the database knows it holds twelve.
func TestFarBehindBuildGathersStatistics(t *testing.T) {
	i := slices.IndexFunc(projectiontest.Backends(), func(b projectiontest.Backend) bool { return b.Name == "postgres" })
	store, db := projectiontest.Backends()[i].Open(t)
	p := newStreamVersions()
	for i := range 12 {
		projectiontest.AppendTo(t, store, fmt.Sprintf("s-%d", i), slices.Repeat([]string{"test.a.v1"}, 50)...)
	}
	cfg := projectiontest.RunnerConfig(store, db)
	cfg.BuildBehind, cfg.BuildBatch = 100, 50
	r := projectiontest.NewRunner(t, cfg, p)
	projectiontest.Start(t, r)
	projectiontest.WaitCheckpoint(t, db, p, projectiontest.LastPosition(t, store))
	waitLive(t, r)

	table := projections.TablesFor(p, "").Name("streams")
	var rows int64
	if err := db.SQL.QueryRow(`SELECT count(*) FROM ` + table).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	// The statistics of a transaction's work reach pg_stat_* when the session reports them.
	var reltuples float64
	var analyses int64
	projectiontest.WaitUntil(t, 30*time.Second, "the statistics of the streams table", func() bool {
		err := db.SQL.QueryRowContext(context.Background(),
			`SELECT c.reltuples, pg_stat_get_analyze_count(c.oid) FROM pg_class c WHERE c.oid = $1::regclass`,
			table).Scan(&reltuples, &analyses)
		if err != nil {
			t.Fatal(err)
		}
		return reltuples == float64(rows) && analyses >= 3
	})
	if rows != 12 {
		t.Fatalf("%d streams, want 12", rows)
	}
}
