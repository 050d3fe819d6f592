package journey_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/eventcrm/crm/domain"
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
	events := projectiontest.ReadHistory(t, "testdata/cohort/events.txt")
	more := projectiontest.MustParseHistory(t, generate(rand.New(rand.NewPCG(3, 11)), 40, false))
	next := events[len(events)-1].Position
	for i := range more {
		next++
		more[i].Position = next
	}
	events = append(events, more...)
	first, last := events[0].OccurredAt, events[0].OccurredAt
	for _, e := range events {
		if e.OccurredAt.Before(first) {
			first = e.OccurredAt
		}
		if e.OccurredAt.After(last) {
			last = e.OccurredAt
		}
	}
	asOfs := []time.Time{{}}
	for i := range 5 {
		asOfs = append(asOfs, first.Add(time.Duration(i)*last.Sub(first)/4))
	}
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		tables := projections.TablesFor(journey.Projection(), "")
		projectiontest.MustApply(t, db, journey.Projection(), tables, events)
		checked := 0
		for _, asOf := range asOfs {
			for _, params := range []journey.Params{{}, {Owner: "rep-a"}, {Cohort: "2024-01"}, {Channel: "web_form", Segment: "smb"}} {
				params.AsOf, params.ByStage = asOf, true
				checked += checkExplainedMap(t, db, tables, params)
			}
		}
		if checked < 300 {
			t.Fatalf("only %d figures checked: the history explains too little", checked)
		}
	})
}

// checkExplainedMap explains every figure of the map of params; it returns how many were not
// zero.
func checkExplainedMap(t *testing.T, db *projections.DB, tables projections.Tables, params journey.Params) int {
	t.Helper()
	answer, err := journey.Query(context.Background(), db, tables, params)
	if err != nil {
		t.Fatal(err)
	}
	nonZero := 0
	check := func(path string, want int) []explain.Entry {
		parts := explainAll(t, db, tables, params, path)
		if got := len(parts); got != want {
			t.Errorf("as of %v, %+v: %s = %d, its parts count %d", params.AsOf, params, path, want, got)
		}
		nonZero += min(want, 1)
		return parts
	}
	for name, m := range map[string]*journey.Map{"by_phase": &answer.ByPhase, "by_stage": answer.ByStage} {
		for _, s := range m.Steps {
			check(fmt.Sprintf("%s.steps.%s.entered", name, s.Name), s.Entered)
			check(fmt.Sprintf("%s.steps.%s.advanced", name, s.Name), s.Advanced)
			for _, figure := range []string{"closed_visits", "median_days", "p75_days"} {
				parts := check(fmt.Sprintf("%s.steps.%s.%s", name, s.Name, figure), s.ClosedVisits)
				var days []float64
				for _, p := range parts {
					if p.Days == nil {
						t.Fatalf("%s.steps.%s: part %+v has no length", name, s.Name, p)
					}
					days = append(days, *p.Days)
				}
				// The parts' days are rounded each: their median is the figure's within a hundredth.
				slices.Sort(days)
				if n := len(days); n > 0 {
					med := days[n/2]
					if n%2 == 0 {
						med = (days[n/2-1] + days[n/2]) / 2
					}
					p75 := days[max((75*n+99)/100, 1)-1]
					if math.Abs(med-*s.MedianDays) > 0.0100001 || math.Abs(p75-*s.P75Days) > 0.0100001 {
						t.Errorf("as of %v, %+v: %s.steps.%s median %v p75 %v, its parts %v %v", params.AsOf, params, name, s.Name,
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
	return nonZero
}

// explainAll reads every page of the parts of the figure at path, three at a time: each
// counts one contact.
func explainAll(t *testing.T, db *projections.DB, tables projections.Tables, params journey.Params, path string) []explain.Entry {
	t.Helper()
	params.Explain, params.Limit = path, 3
	return projectiontest.CountingOne(t, path, projectiontest.ExplainAll(t, path, func(cursor string) (explain.Answer, error) {
		params.Cursor = cursor
		return journey.Explain(context.Background(), db, tables, params)
	}))
}

func TestExplainRejectsBadPaths(t *testing.T) {
	tests := []struct {
		name   string
		params journey.Params
		field  string
	}{
		{"no figure", journey.Params{Explain: "by_phase.steps.lead"}, "explain"},
		{"unknown map", journey.Params{Explain: "by_month.steps.lead.entered"}, "explain"},
		{"a stage by phase", journey.Params{Explain: "by_phase.steps.awareness.entered"}, "explain"},
		{"a conversion", journey.Params{Explain: "by_phase.steps.lead.conversion"}, "explain"},
		{"an exit's stays", journey.Params{Explain: "by_phase.steps.lost.closed_visits"}, "explain"},
		{"a transition from nowhere", journey.Params{Explain: "by_phase.transitions.lead"}, "explain"},
		{"a mix of nothing", journey.Params{Explain: "by_phase.touchpoint_mix.lead"}, "explain"},
		{"bad cohort", journey.Params{Cohort: "2024", Explain: "by_phase.steps.lead.entered"}, "cohort"},
		{"limit too large", journey.Params{Explain: "by_phase.steps.lead.entered", Limit: explain.MaxLimit + 1}, "limit"},
		{"cursor not one", journey.Params{Explain: "by_phase.steps.lead.entered", Cursor: "!!"}, "cursor"},
	}
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		tables := projections.TablesFor(journey.Projection(), "")
		projectiontest.MustApply(t, db, journey.Projection(), tables, nil)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := journey.Explain(context.Background(), db, tables, tt.params)
				var de *domain.Error
				if !errors.As(err, &de) || de.Code != domain.CodeInvalid || de.Field != tt.field {
					t.Fatalf("error = %v, want an invalid %s", err, tt.field)
				}
			})
		}
	})
}
