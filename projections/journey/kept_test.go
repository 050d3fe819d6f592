package journey_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/eventcrm/crm/projections/journey"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// keptQuestions are the questions the kept map answers: every contact, or one filter alone,
// by phase and by stage.
var keptQuestions = []journey.Params{
	{ByStage: true},
	{Cohort: "2024-01", ByStage: true},
	{Channel: "web_form", ByStage: true},
	{Owner: "rep-a", ByStage: true},
	{Owner: "rep-b", ByStage: true},
	{Segment: "smb", ByStage: true},
	{Segment: "enterprise", ByStage: true},
}

// keptEqualsVisits asks every kept question about now, without as_of and at the latest
// event, and compares the answer with the one read from every contact's visits.
var keptEqualsVisits = projectiontest.Kept[journey.Params, journey.Answer, journey.Answer]{
	Questions: keptQuestions,
	Now:       true,
	Later:     []time.Duration{0, time.Hour},
	Kept:      journey.Query, From: "visits", Detail: journey.QueryVisits,
}

// TestKeptMapEqualsVisits checks the map the fold keeps against the visits after every
// prefix of the golden history (backward moves, churn, win-backs, owner and segment changes).
func TestKeptMapEqualsVisits(t *testing.T) {
	events := projectiontest.ReadHistory(t, "testdata/cohort/events.txt")
	projectiontest.ForEachPrefix(t, journey.Projection(), events, len(events), keptEqualsVisits.Check)
}

// TestKeptMapEqualsVisitsOverManyStays does the same over a generated history of contacts
// moving through the phases with lengths of stay drawn to the microsecond, many in the same
// hundredth of a day, some back-dated, with owners and segments changing: the medians of even
// counts then fall between hundredths as well as inside one.
func TestKeptMapEqualsVisitsOverManyStays(t *testing.T) {
	events := projectiontest.MustParseHistory(t, generatedHistory(rand.New(rand.NewPCG(19, 5)), 60))
	projectiontest.ForEachPrefixRun(t, journey.Projection(), events, 6, keptEqualsVisits.Check)
}

// generatedHistory writes the history of n contacts, one after the other.
func generatedHistory(rng *rand.Rand, n int) string { return generate(rng, n, true) }

// generate writes the history of n contacts, one after the other, a few of their phase
// changes back-dated behind the one before when backDated, some merged into an earlier
// contact after their last event (see projectiontest.Written.MergeSome).
func generate(rng *rand.Rand, n int, backDated bool) string {
	w := projectiontest.NewWritten(rng, time.Date(2024, 1, 1, 9, 0, 0, 0, time.UTC))
	forward := []string{"lead", "approach", "discovery", "proposal", "won", "follow_up", "loyal"}
	for i := range n {
		id := fmt.Sprintf("g%d", i)
		w.At = w.At.Add(time.Duration(rng.IntN(48)) * time.Hour)
		w.Line("contact-"+id, "contact.created.v1", fmt.Sprintf(`{"contact_id":%q,"name":"G","channel":%q,"owner":%q,"segment":%q}`,
			id, w.Pick("web_form", "seminar"), w.Pick("rep-a", "rep-b"), w.Pick("smb", "enterprise")))
		created := w.At
		phase, when := "lead", w.At
		for range 2 + rng.IntN(6) {
			// a length of stay: whole days (shared hundredths), or to the microsecond
			d := time.Duration(1+rng.IntN(5)) * 24 * time.Hour
			if rng.IntN(2) == 0 {
				d = time.Duration(rng.Int64N(int64(6*24*time.Hour/time.Microsecond))) * time.Microsecond
			}
			if rng.IntN(20) == 0 && backDated {
				d = -time.Hour // back-dated
			}
			when = when.Add(d)
			w.At = when
			to := nextPhase(rng, forward, phase)
			switch rng.IntN(8) {
			case 0:
				w.Line("contact-"+id, "contact.owner_changed.v1", fmt.Sprintf(`{"contact_id":%q,"from":"x","to":%q}`, id, w.Pick("rep-a", "rep-b", "rep-c")))
			case 1:
				w.Line("contact-"+id, "contact.details_changed.v1", fmt.Sprintf(`{"contact_id":%q,"segment":%q}`, id, w.Pick("smb", "enterprise", "mid_market")))
			case 2:
				w.Line("contact-"+id, "contact.touchpoint_recorded.v1", fmt.Sprintf(`{"contact_id":%q,"touchpoint_id":"t%d","kind":%q,"phase":%q}`,
					id, rng.IntN(1_000_000), w.Pick("call", "email"), phase))
			}
			w.Line("contact-"+id, "contact.phase_changed.v1", fmt.Sprintf(`{"contact_id":%q,"from":%q,"to":%q,"rule":"forward"}`, id, phase, to))
			phase = to
		}
		w.MergeSome("g", i, created)
	}
	return w.String()
}

// nextPhase moves on, back, out or (from an exit) back in.
func nextPhase(rng *rand.Rand, forward []string, phase string) string {
	i := -1
	for j, p := range forward {
		if p == phase {
			i = j
		}
	}
	switch {
	case i < 0:
		return forward[rng.IntN(2)] // a win-back
	case rng.IntN(6) == 0 && i < 4:
		return "lost"
	case rng.IntN(6) == 0 && i >= 4:
		return "churned"
	case rng.IntN(5) == 0 && i > 0:
		return forward[rng.IntN(i)]
	case i+1 < len(forward):
		return forward[i+1+rng.IntN(min(2, len(forward)-i-1))]
	}
	return "churned"
}
