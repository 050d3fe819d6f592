package board_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/board"
	"github.com/eventcrm/crm/projections/explain"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// TestExplainAddsUp: every figure of the board (each stage's count and totals per currency,
// each stage's closed stays and their median), of every owner and of each, about now and as
// of times in between, is what its parts add up to, read two at a time. The history is the
// pipeline's golden one (backward moves, losses, reopenings, wins) followed by generated deals,
// some back-dated.
func TestExplainAddsUp(t *testing.T) {
	events := projectiontest.FollowedBy(t, projectiontest.ReadHistory(t, "testdata/pipeline/events.txt"),
		generatedDeals(rand.New(rand.NewPCG(7, 3)), 40))
	asOfs := projectiontest.Throughout(events, 6)
	asOfs = append(asOfs, asOfs[5].Add(24*time.Hour))
	explained := projectiontest.Explained[board.Params, board.Answer]{Projection: board.Projection(), Query: board.Query,
		Explain: board.Explain, Limit: 2}
	explained.AddsUp(t, events, 100, asOfs, []board.Params{{}, {Owner: "rep-a"}, {Owner: "rep-b"}, {Stage: "proposal", Owner: "rep-a"}},
		checkExplainedBoard)
}

// checkExplainedBoard explains every figure of the board answered; it returns how many
// figures were not zero.
func checkExplainedBoard(f *projectiontest.Figures, _ *projections.DB, _ projections.Tables, _ board.Params, answer board.Answer) int {
	f.T.Helper()
	nonZero := 0
	for _, col := range answer.Stages {
		f.Sum(fmt.Sprintf("stages.%s.count", col.Stage), col.Count)
		nonZero += min(col.Count, 1)
		for _, tot := range col.Totals {
			for _, suffix := range []string{"", ".amount", ".weighted_amount"} {
				path := fmt.Sprintf("stages.%s.totals.%s%s", col.Stage, tot.Currency, suffix)
				amount := f.Amount(path, tot.Currency, tot.Amount)
				if w := (amount*int64(col.Probability) + 50) / 100; w != tot.WeightedAmount {
					f.T.Errorf("%s: weighted %d, %d%% of its parts %d", path, tot.WeightedAmount, col.Probability, w)
				}
			}
		}
	}
	for _, v := range answer.Velocity {
		for _, figure := range []string{"closed_intervals", "median_days"} {
			path := fmt.Sprintf("velocity.%s.%s", v.Stage, figure)
			days := f.Days(path, f.Sum(path, v.ClosedIntervals))
			// The parts' days are rounded each: their median is the figure's within a hundredth.
			if m := projectiontest.Median(days); !projectiontest.WithinAHundredth(v.MedianDays, m) {
				f.T.Errorf("%s: %s = %v, the median of its parts %v", f.At, path, v.MedianDays, m)
			}
		}
		nonZero += min(v.ClosedIntervals, 1)
	}
	return nonZero
}

func TestExplainRejectsBadPaths(t *testing.T) {
	asOf := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	projectiontest.Refuses(t, board.Projection(), board.Explain, []projectiontest.Refusal[board.Params]{
		{Name: "no as_of", Params: board.Params{Explain: "stages.proposal.count"}, Field: "as_of"},
		{Name: "no figure", Params: board.Params{AsOf: asOf, Explain: "stages.proposal"}, Field: "explain"},
		{Name: "closed stage", Params: board.Params{AsOf: asOf, Explain: "stages.won.count"}, Field: "explain"},
		{Name: "unknown figure", Params: board.Params{AsOf: asOf, Explain: "stages.proposal.cards"}, Field: "explain"},
		{Name: "probability", Params: board.Params{AsOf: asOf, Explain: "stages.proposal.probability"}, Field: "explain"},
		{Name: "another stage than asked", Params: board.Params{AsOf: asOf, Stage: "qualification", Explain: "stages.proposal.count"}, Field: "explain"},
		{Name: "velocity of a total", Params: board.Params{AsOf: asOf, Explain: "velocity.proposal.totals.EUR"}, Field: "explain"},
		{Name: "limit too large", Params: board.Params{AsOf: asOf, Explain: "stages.proposal.count", Limit: explain.MaxLimit + 1}, Field: "limit"},
		{Name: "cursor not one", Params: board.Params{AsOf: asOf, Explain: "stages.proposal.count", Cursor: "!!"}, Field: "cursor"},
	})
}
