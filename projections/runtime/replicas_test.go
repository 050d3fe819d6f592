package runtime_test

import (
	"testing"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// Two servers on one database (replicas) both run the projection: every event is still
// applied once, because an apply transaction holds its table set's checkpoint until it ends.
func TestTwoRunnersOnOneDatabaseApplyEachEventOnce(t *testing.T) {
	projectiontest.ForEachBackend(t, func(t *testing.T, store eventstore.Store, db *projections.DB) {
		p := &projectiontest.Counter{CountOnly: true}
		for i := range 60 {
			projectiontest.AppendTo(t, store, []string{"s-a", "s-b", "s-c"}[i%3], "test.a.v1", "test.b.v1")
		}
		for range 2 {
			cfg := projectiontest.RunnerConfig(store, db)
			cfg.CatchUpBatch = 3
			cfg.AdvanceGroup = nil
			projectiontest.Start(t, projectiontest.NewRunner(t, cfg, p))
		}
		for i := range 60 {
			projectiontest.AppendTo(t, store, []string{"s-a", "s-b", "s-c"}[i%3], "test.c.v1")
		}
		projectiontest.WaitCheckpoint(t, db, p, projectiontest.LastPosition(t, store))
		tables := projections.TablesFor(p, "")
		if n, total := projectiontest.Count(t, db, `SELECT sum(n) FROM `+tables.Name("counts")), int64(len(projectiontest.AllEvents(t, store))); n != total {
			t.Fatalf("counted %d events, the log has %d", n, total)
		}
		projectiontest.AssertSameAsRebuild(t, db, store, p)
	})
}
