package journey_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/explain"
	"github.com/eventcrm/crm/projections/journey"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// TestExplainAddsUp: every figure of the journey map (by phase and by stage: each step's
// entered, advanced, closed stays and their median and p75, each transition, each touchpoint
// mix and kind), of every contact, of one filter and of two, now and as of times in between,
// is what its parts add up to, read page by page. The history is the golden cohort's
// followed by generated contacts (owners and segments changing, backward moves, exits and
// win-backs).
func TestExplainAddsUp(t *testing.T) {
	events := projectiontest.FollowedBy(t, projectiontest.ReadHistory(t, "testdata/cohort/events.txt"),
		generate(rand.New(rand.NewPCG(3, 11)), 40, false))
	asOfs := append([]time.Time{{}}, projectiontest.Throughout(events, 5)...)
	explained := projectiontest.Explained[journey.Params, journey.Answer]{Projection: journey.Projection(), Query: journey.Query,
		Explain: journey.Explain, Limit: 3, CountingOne: true,
		AsOf: func(p journey.Params, asOf time.Time) journey.Params { p.AsOf, p.ByStage = asOf, true; return p }}
	explained.AddsUp(t, events, 300, asOfs, []journey.Params{{}, {Owner: "rep-a"}, {Cohort: "2024-01"}, {Channel: "web_form", Segment: "smb"}},
		checkExplainedMap)
}

// checkExplainedMap explains every figure of the map answered.
func checkExplainedMap(f *projectiontest.Figures, _ *projections.DB, _ projections.Tables, _ journey.Params, answer journey.Answer) int {
	f.T.Helper()
	check := f.Count
	for name, m := range map[string]*journey.Map{"by_phase": &answer.ByPhase, "by_stage": answer.ByStage} {
		for _, s := range m.Steps {
			check(fmt.Sprintf("%s.steps.%s.entered", name, s.Name), s.Entered)
			check(fmt.Sprintf("%s.steps.%s.advanced", name, s.Name), s.Advanced)
			for _, figure := range []string{"closed_visits", "median_days", "p75_days"} {
				path := fmt.Sprintf("%s.steps.%s.%s", name, s.Name, figure)
				days := f.Days(path, check(path, s.ClosedVisits))
				// The parts' days are rounded each: their median is the figure's within a hundredth.
				if n := len(days); n > 0 {
					med := *projectiontest.Median(days)
					p75 := days[max((75*n+99)/100, 1)-1]
					if !projectiontest.WithinAHundredth(s.MedianDays, &med) || !projectiontest.WithinAHundredth(s.P75Days, &p75) {
						f.T.Errorf("%s: %s.steps.%s median %v p75 %v, its parts %v %v", f.At, name, s.Name,
							*s.MedianDays, *s.P75Days, med, p75)
					}
				}
			}
		}
		for _, tr := range m.Transitions {
			check(fmt.Sprintf("%s.transitions.%s.%s", name, tr.From, tr.To), tr.Count)
			check(fmt.Sprintf("%s.transitions.%s.%s.count", name, tr.From, tr.To), tr.Count)
		}
		for _, mx := range m.TouchpointMix {
			check(fmt.Sprintf("%s.touchpoint_mix.%s.total", name, mx.Name), mx.Total)
			for _, k := range mx.Kinds {
				check(fmt.Sprintf("%s.touchpoint_mix.%s.kinds.%s", name, mx.Name, k.Kind), k.Count)
			}
		}
	}
	return 0
}

func TestExplainRejectsBadPaths(t *testing.T) {
	projectiontest.Refuses(t, journey.Projection(), journey.Explain, []projectiontest.Refusal[journey.Params]{
		{Name: "no figure", Params: journey.Params{Explain: "by_phase.steps.lead"}, Field: "explain"},
		{Name: "unknown map", Params: journey.Params{Explain: "by_month.steps.lead.entered"}, Field: "explain"},
		{Name: "a stage by phase", Params: journey.Params{Explain: "by_phase.steps.awareness.entered"}, Field: "explain"},
		{Name: "a conversion", Params: journey.Params{Explain: "by_phase.steps.lead.conversion"}, Field: "explain"},
		{Name: "an exit's stays", Params: journey.Params{Explain: "by_phase.steps.lost.closed_visits"}, Field: "explain"},
		{Name: "a transition from nowhere", Params: journey.Params{Explain: "by_phase.transitions.lead"}, Field: "explain"},
		{Name: "a mix of nothing", Params: journey.Params{Explain: "by_phase.touchpoint_mix.lead"}, Field: "explain"},
		{Name: "bad cohort", Params: journey.Params{Cohort: "2024", Explain: "by_phase.steps.lead.entered"}, Field: "cohort"},
		{Name: "limit too large", Params: journey.Params{Explain: "by_phase.steps.lead.entered", Limit: explain.MaxLimit + 1}, Field: "limit"},
		{Name: "cursor not one", Params: journey.Params{Explain: "by_phase.steps.lead.entered", Cursor: "!!"}, Field: "cursor"},
	})
}
