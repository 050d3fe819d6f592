package board_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
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
	projectiontest.ExplainsAtLeast(t, board.Projection(), events, 100, func(t *testing.T, db *projections.DB, tables projections.Tables) int {
		checked := 0
		for _, asOf := range asOfs {
			for _, params := range []board.Params{{}, {Owner: "rep-a"}, {Owner: "rep-b"}, {Stage: "proposal", Owner: "rep-a"}} {
				params.AsOf = asOf
				checked += checkExplainedBoard(t, db, tables, params)
			}
		}
		return checked
	})
}

// checkExplainedBoard explains every figure of the board of params; it returns how many
// figures were not zero.
func checkExplainedBoard(t *testing.T, db *projections.DB, tables projections.Tables, params board.Params) int {
	t.Helper()
	ctx := context.Background()
	answer, err := board.Query(ctx, db, tables, params)
	if err != nil {
		t.Fatal(err)
	}
	nonZero := 0
	for _, col := range answer.Stages {
		parts := explainAll(t, db, tables, params, fmt.Sprintf("stages.%s.count", col.Stage))
		if got := sumCount(parts); got != int64(col.Count) {
			t.Errorf("as of %s, %+v: %s count %d, its parts count %d", params.AsOf, params.Owner, col.Stage, col.Count, got)
		}
		nonZero += min(col.Count, 1)
		for _, tot := range col.Totals {
			for _, suffix := range []string{"", ".amount", ".weighted_amount"} {
				path := fmt.Sprintf("stages.%s.totals.%s%s", col.Stage, tot.Currency, suffix)
				var amount int64
				for _, p := range explainAll(t, db, tables, params, path) {
					if p.Currency != tot.Currency || p.Amount == nil {
						t.Fatalf("%s: part %+v is not in %s", path, p, tot.Currency)
					}
					amount += *p.Amount
				}
				if amount != tot.Amount {
					t.Errorf("as of %s, %+v: %s = %d, its parts add up to %d", params.AsOf, params.Owner, path, tot.Amount, amount)
				}
				if w := (amount*int64(col.Probability) + 50) / 100; w != tot.WeightedAmount {
					t.Errorf("%s: weighted %d, %d%% of its parts %d", path, tot.WeightedAmount, col.Probability, w)
				}
			}
		}
	}
	for _, v := range answer.Velocity {
		for _, figure := range []string{"closed_intervals", "median_days"} {
			path := fmt.Sprintf("velocity.%s.%s", v.Stage, figure)
			parts := explainAll(t, db, tables, params, path)
			if got := sumCount(parts); got != int64(v.ClosedIntervals) {
				t.Errorf("as of %s, %+v: %s = %d, its parts count %d", params.AsOf, params.Owner, path, v.ClosedIntervals, got)
			}
			var days []float64
			for _, p := range parts {
				if p.Days == nil {
					t.Fatalf("%s: part %+v has no length", path, p)
				}
				days = append(days, *p.Days)
			}
			// The parts' days are rounded each: their median is the figure's within a hundredth.
			if m := median(days); (m == nil) != (v.MedianDays == nil) || m != nil && math.Abs(*m-*v.MedianDays) > 0.0100001 {
				t.Errorf("as of %s, %+v: %s = %v, the median of its parts %v", params.AsOf, params.Owner, path, v.MedianDays, m)
			}
		}
		nonZero += min(v.ClosedIntervals, 1)
	}
	return nonZero
}

// explainAll reads every page of the parts of the figure at path, two at a time.
func explainAll(t *testing.T, db *projections.DB, tables projections.Tables, params board.Params, path string) []explain.Entry {
	t.Helper()
	params.Explain, params.Limit = path, 2
	return projectiontest.ExplainAll(t, path, func(cursor string) (explain.Answer, error) {
		params.Cursor = cursor
		return board.Explain(context.Background(), db, tables, params)
	})
}

func sumCount(parts []explain.Entry) int64 {
	var n int64
	for _, p := range parts {
		n += p.Count
	}
	return n
}

func median(days []float64) *float64 {
	n := len(days)
	if n == 0 {
		return nil
	}
	s := slices.Sorted(slices.Values(days))
	m := s[n/2]
	if n%2 == 0 {
		m = (s[n/2-1] + s[n/2]) / 2
	}
	return &m
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
