package board_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/eventcrm/crm/projections/board"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// keptQuestions are the boards asked about now.
var keptQuestions = []board.Params{
	{},
	{Owner: "rep-a"},
	{Owner: "nobody"},
	{Stage: "qualification"},
	{Stage: "proposal", Limit: 1},
	{Limit: 1},
}

// keptEqualsIntervals asks every question as of the latest event and later, and compares the
// board read from the kept totals and lengths with the one read from the intervals.
var keptEqualsIntervals = projectiontest.Kept[board.Params, board.Answer, board.Answer]{
	Questions: keptQuestions,
	Least:     time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
	Later:     []time.Duration{0, time.Microsecond, 37 * time.Hour, 400 * 24 * time.Hour},
	Kept:      board.Query, From: "intervals", Detail: board.QueryIntervals,
}

// TestKeptBoardEqualsIntervals checks the board now against the intervals after every prefix
// of the pipeline history (deals caught in every stage, after backward moves, losses,
// reopenings and wins).
func TestKeptBoardEqualsIntervals(t *testing.T) {
	events := projectiontest.ReadHistory(t, "testdata/pipeline/events.txt")
	projectiontest.ForEachPrefix(t, board.Projection(), events, len(events), keptEqualsIntervals.Check)
}

// TestKeptBoardEqualsIntervalsOverManyStays does the same over generated deals whose stays
// last whole days (many in one hundredth) or lengths to the microsecond, some back-dated, so
// that the medians of even counts fall inside a hundredth and between two.
func TestKeptBoardEqualsIntervalsOverManyStays(t *testing.T) {
	events := projectiontest.MustParseHistory(t, generatedDeals(rand.New(rand.NewPCG(19, 6)), 60))
	projectiontest.ForEachPrefixRun(t, board.Projection(), events, 6, keptEqualsIntervals.Check)
}

// generatedDeals writes the history of n deals, one after the other.
func generatedDeals(rng *rand.Rand, n int) string {
	stages := []string{"qualification", "needs_analysis", "proposal", "negotiation"}
	w := projectiontest.NewWritten(rng, time.Date(2024, 1, 1, 9, 0, 0, 0, time.UTC))
	for i := range n {
		id := fmt.Sprintf("g%d", i)
		owner := []string{"rep-a", "rep-b"}[rng.IntN(2)]
		w.At = w.At.Add(time.Duration(rng.IntN(48)) * time.Hour)
		w.Line("deal-"+id, "deal.opened.v1", fmt.Sprintf(`{"deal_id":%q,"contact_id":"c%d","title":"G","amount":{"amount":%d,"currency":%q},"owner":%q,"stage":"qualification"}`,
			id, i, 1+rng.IntN(100000), []string{"EUR", "JPY"}[rng.IntN(2)], owner))
		stage, when := 0, w.At
		for range 1 + rng.IntN(5) {
			d := time.Duration(1+rng.IntN(4)) * 24 * time.Hour
			if rng.IntN(2) == 0 {
				d = time.Duration(rng.Int64N(int64(5*24*time.Hour/time.Microsecond))) * time.Microsecond
			}
			if rng.IntN(20) == 0 {
				d = -time.Hour // back-dated
			}
			when = when.Add(d)
			w.At = when
			next := rng.IntN(len(stages))
			if next == stage {
				next = (stage + 1) % len(stages)
			}
			w.Line("deal-"+id, "deal.stage_changed.v1", fmt.Sprintf(`{"deal_id":%q,"from":%q,"to":%q}`, id, stages[stage], stages[next]))
			stage = next
		}
		switch rng.IntN(3) {
		case 0:
			w.At = w.At.Add(time.Hour)
			w.Line("deal-"+id, "deal.lost.v1", fmt.Sprintf(`{"deal_id":%q,"contact_id":"c%d","from_stage":%q,"reason":"price","amount":{"amount":1,"currency":"EUR"}}`,
				id, i, stages[stage]))
		case 1:
			w.At = w.At.Add(time.Hour)
			w.Line("deal-"+id, "deal.won.v1", fmt.Sprintf(`{"deal_id":%q,"contact_id":"c%d","amount":{"amount":5,"currency":"EUR"}}`, id, i))
		}
	}
	return w.String()
}
