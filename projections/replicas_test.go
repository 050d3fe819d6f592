package projections_test

import (
	"testing"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
)

// Two servers on one database (replicas) both run the projection: every event is still
// applied once, because an apply transaction holds its table set's checkpoint until it ends.
func TestTwoRunnersOnOneDatabaseApplyEachEventOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, store eventstore.Store, db *projections.DB) {
		p := &counter{countOnly: true}
		for i := range 60 {
			appendTo(t, store, []string{"s-a", "s-b", "s-c"}[i%3], "test.a.v1", "test.b.v1")
		}
		for range 2 {
			cfg := runnerConfig(store, db)
			cfg.CatchUpBatch = 3
			cfg.AdvanceGroup = nil
			start(t, newRunner(t, cfg, p))
		}
		for i := range 60 {
			appendTo(t, store, []string{"s-a", "s-b", "s-c"}[i%3], "test.c.v1")
		}
		waitCheckpoint(t, db, p, lastPosition(t, store))
		tables := projections.TablesFor(p, "")
		if n, total := count(t, db, `SELECT sum(n) FROM `+tables.Name("counts")), int64(len(allEvents(t, store))); n != total {
			t.Fatalf("counted %d events, the log has %d", n, total)
		}
		assertSameAsRebuild(t, db, store, p)
	})
}
