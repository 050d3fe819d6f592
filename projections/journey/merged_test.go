package journey_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/projections/journey"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// The history of duplicates merged (testdata/merged, see its README): one merged while in a
// phase, one after its churn, a chain of two, one back-dated before its own phase changes and
// touchpoint.
const mergedHistory = "testdata/merged/events.txt"

// TestKeptMapEqualsVisitsWithMerges: after every prefix of the history of merges, the map
// the fold keeps, which takes a duplicate's share away when its merge arrives, is the map read
// from the visits of the contacts not merged.
func TestKeptMapEqualsVisitsWithMerges(t *testing.T) {
	events := projectiontest.ReadHistory(t, mergedHistory)
	projectiontest.ForEachPrefixRun(t, journey.Projection(), events, 12, keptEqualsVisits.Check)
}

// TestAsOfEqualsReplay: the map as of a time, of every contact, of a channel, of a cohort and
// of both, by phase and by stage, is the map
// about now of the events that occurred by then, replayed: a duplicate counts until the
// instant of its merge and not from it on, also when the merge is back-dated behind its own
// events. Around each merge, throughout the history, and over generated contacts merged now
// and then.
func TestAsOfEqualsReplay(t *testing.T) {
	// Owner and segment are the current ones, which a replay does not know yet: the filters
	// asked are those a contact keeps.
	questions := []journey.Params{{ByStage: true}, {Channel: "seminar", ByStage: true}, {Cohort: "2024-01", ByStage: true},
		{Cohort: "2024-01", Channel: "web_form", ByStage: true}}
	replayed := projectiontest.Replayed[journey.Params, journey.Answer]{Projection: journey.Projection(),
		Questions: questions, Query: journey.Query}
	t.Run("merged", func(t *testing.T) { replayed.CheckMerges(t, projectiontest.ReadHistory(t, mergedHistory)) })
	t.Run("generated", func(t *testing.T) {
		replayed.CheckMerges(t, projectiontest.MustParseHistory(t, generate(rand.New(rand.NewPCG(7, 13)), 24, false)))
	})
}

// TestExplainAddsUpWithMerges: every figure of the map, as of the instants around each merge
// and now, is what its parts add up to: a merged duplicate's parts stand before its merge and
// none from it on.
func TestExplainAddsUpWithMerges(t *testing.T) {
	events := projectiontest.ReadHistory(t, mergedHistory)
	asOfs := append([]time.Time{{}}, projectiontest.AroundEach(events, contact.TypeMergedInto)...)
	explained := projectiontest.Explained[journey.Params, journey.Answer]{Projection: journey.Projection(), Query: journey.Query,
		Explain: journey.Explain, Limit: 2, CountingOne: true,
		AsOf: func(p journey.Params, asOf time.Time) journey.Params { p.AsOf, p.ByStage = asOf, true; return p }}
	explained.AddsUp(t, events, 100, asOfs, []journey.Params{{}, {Channel: "seminar"}, {Owner: "rep-a", Segment: "smb"}},
		checkExplainedMap)
}
