package board_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/board"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// A page of a stage's cards on the board now and as of an earlier time, of everyone and of
// one owner, over thousands of deals with their statistics, planned once for any arguments as
// it runs: it reads the index of the stage's intervals (open ones now; the owner's of one
// owner) in the cards' order, and each card's deal and contact by key; nothing is sorted or
// hashed.
func TestStagePagePlan(t *testing.T) {
	g := projectiontest.NewGenerated(3)
	start := time.Date(2024, 1, 1, 9, 0, 0, 0, time.UTC)
	stages := []string{"qualification", "needs_analysis", "proposal", "negotiation"}
	for i := range 3000 {
		at := start.Add(time.Duration(i) * time.Hour)
		g.Add(fmt.Sprintf("contact-c%d", i), "contact.created.v1", at,
			fmt.Sprintf(`{"contact_id":"c%d","name":"N %d","channel":"other","owner":"rep-%d"}`, i, i, i%20))
		g.Add(fmt.Sprintf("deal-d%d", i), "deal.opened.v1", at,
			fmt.Sprintf(`{"deal_id":"d%d","contact_id":"c%d","title":"T %d","amount":{"amount":1000,"currency":"JPY"},"owner":"rep-%d","stage":"qualification"}`,
				i, i, i, i%20))
		for k := 1; k <= i%4; k++ {
			g.Add(fmt.Sprintf("deal-d%d", i), "deal.stage_changed.v1", at.Add(time.Duration(k)*time.Hour),
				fmt.Sprintf(`{"deal_id":"d%d","from":%q,"to":%q}`, i, stages[k-1], stages[k]))
		}
		if i%5 == 0 {
			g.Add(fmt.Sprintf("deal-d%d", i), "deal.lost.v1", at.Add(5*time.Hour),
				fmt.Sprintf(`{"deal_id":"d%d","contact_id":"c%d","from_stage":%q,"reason":"price"}`, i, i, stages[i%4]))
		}
	}
	g.InTimeOrder(t)
	p := board.Projection()
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		set := projections.TablesFor(p, "")
		projectiontest.MustBuild(t, db, p, set, g.Events)
		for _, q := range []struct {
			owner string
			now   bool
			index string
		}{
			{"", true, "intervals_open"}, {"rep-3", true, "intervals_owner_open"},
			{"", false, "intervals_stage"}, {"rep-3", false, "intervals_owner_stage"},
		} {
			stmt, args := board.CardsPage(set, q.owner, "proposal", q.now, g.Latest.Add(-500*time.Hour))
			plan := projectiontest.QueryPlanAsRun(t, db, stmt, args...)
			if index := set.Name(q.index); !strings.Contains(plan, index+" ") {
				t.Errorf("%+v: the page does not read %s:\n%s", q, index, plan)
			}
			for _, bad := range []string{"Sort", "TEMP B-TREE", "Hash", "Seq Scan", "SCAN "} {
				if strings.Contains(plan, bad) {
					t.Errorf("%+v: the page reads more than its cards (%s):\n%s", q, bad, plan)
				}
			}
		}
	})
}
