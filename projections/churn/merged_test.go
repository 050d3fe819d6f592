package churn_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/projections/churn"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// The history of duplicates merged (testdata/merged, see its README): one merged while in a
// phase, one after its churn, a chain of two, one back-dated before its own phase changes and
// touchpoint.
const mergedHistory = "testdata/merged/events.txt"

// mergedQuestions are asked of the history of merges: every contact, a cohort, a channel,
// across dormancy thresholds.
var mergedQuestions = []churn.Params{{}, {Cohort: "2024-01", DormantDays: 10}, {Channel: "seminar", DormantDays: 3}, {Limit: 1}}

// TestKeptCountsEqualVisitsWithMerges: after every prefix of the history of merges, the counts
// the fold keeps, which take a duplicate away when its merge arrives, are those read from the
// visits of the contacts not merged, dormancy too.
func TestKeptCountsEqualVisitsWithMerges(t *testing.T) {
	kept := projectiontest.Kept[churn.Params, churn.Answer, churn.Answer]{
		Questions: mergedQuestions,
		Least:     time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
		Later:     []time.Duration{0, time.Microsecond, 5 * 24 * time.Hour, 91 * 24 * time.Hour},
		Kept:      churn.Query, From: "visits", Detail: churn.QueryVisits,
	}
	projectiontest.ForEachPrefixRun(t, churn.Projection(), projectiontest.ReadHistory(t, mergedHistory), 12, kept.Check)
}

// TestAsOfEqualsReplay: the churn points as of a time (drop-offs, dormancy, lost deals and the
// churned customers) are those about now of the events that occurred by then, replayed: a
// duplicate counts until the instant of its merge and not from it on, also when the merge is
// back-dated behind its own events. Around each merge, throughout the history, and over
// generated contacts merged now and then.
func TestAsOfEqualsReplay(t *testing.T) {
	replayed := projectiontest.Replayed[churn.Params, churn.Answer]{Projection: churn.Projection(),
		Questions: mergedQuestions, Query: churn.Query}
	t.Run("merged", func(t *testing.T) { replayed.CheckMerges(t, projectiontest.ReadHistory(t, mergedHistory)) })
	t.Run("generated", func(t *testing.T) {
		replayed.CheckMerges(t, projectiontest.MustParseHistory(t, generatedChurns(rand.New(rand.NewPCG(9, 4)), 24)))
	})
}

// TestExplainAddsUpWithMerges: every figure of the churn points, and every fact of each
// churned customer listed, as of the instants around each merge, is what its parts add up
// to: a merged duplicate's parts and churns stand before its merge and none from it on.
func TestExplainAddsUpWithMerges(t *testing.T) {
	events := projectiontest.ReadHistory(t, mergedHistory)
	explained := projectiontest.Explained[churn.Params, churn.Answer]{Projection: churn.Projection(), Query: churn.Query,
		Explain: churn.Explain, Limit: 2, CountingOne: true}
	explained.AddsUp(t, events, 60, projectiontest.AroundEach(events, contact.TypeMergedInto),
		[]churn.Params{{DormantDays: 10}, {Channel: "seminar", DormantDays: 3}}, checkExplainedChurn)
}
