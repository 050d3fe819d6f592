package journey

import (
	"context"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/explain"
)

// Explain answers the parts of the figure of the journey map at path params.Explain: the
// contacts of the map's cohort (its filters as in Query, owner and segment as they are now)
// and the events that make the figure up as of params.AsOf (everything known when zero), a
// page at a time (Limit: explain.DefaultLimit when 0, at most explain.MaxLimit; Cursor: a
// page's next_cursor). The paths, <map> being by_phase or by_stage:
//
//	<map>.steps.<step>.entered, .advanced, .closed_visits, .median_days, .p75_days
//	<map>.transitions.<from>.<to> (optionally .count)
//	<map>.touchpoint_mix.<step>.total, <map>.touchpoint_mix.<step>.kinds.<kind>
//
// A conversion is the quotient of two figures: explain those.
func Explain(ctx context.Context, db *projections.DB, t projections.Tables, params Params) (explain.Answer, error) {
	f, err := params.filter()
	if err != nil {
		return explain.Answer{}, err
	}
	figures, lengths, ok := explainedFigures(params.Explain)
	if !ok {
		return explain.Answer{}, domain.Invalid("explain", "%q is not the path of a figure of the journey map (see the documentation)", params.Explain)
	}
	q := explain.Question{Figures: figures, AsOf: time.UnixMicro(min(f.asOf, math.MaxInt64/2)), Limit: params.Limit, Cursor: params.Cursor,
		Among: `SELECT c.contact_id FROM ` + t.Name(tableContacts) + ` c WHERE` + f.where, AmongArgs: f.args}
	return explain.AnswerDB(ctx, db, partsShape().Source(t.Name(tableParts)), q, func(string) bool { return lengths },
		params.Explain, params.AsOf)
}

// explainedFigures are the figures of the parts of the figure at path, and whether their
// parts measure lengths; ok is false when path names no figure.
func explainedFigures(path string) (figures []string, lengths, ok bool) {
	p := strings.Split(path, ".")
	if len(p) < 3 {
		return nil, false, false
	}
	var (
		name string
		g    grouping
	)
	switch p[0] {
	case "by_phase":
		name, g = groupingPhase, byPhase()
	case "by_stage":
		name, g = groupingStage, byStage()
	default:
		return nil, false, false
	}
	// bucket: a step, or an exit (transitions and touchpoints only)
	bucket := func(s string, exits bool) bool {
		return slices.Contains(g.steps, s) || exits && (s == string(contact.Lost) || s == string(contact.Churned))
	}
	switch {
	case p[1] == "steps" && len(p) == 4 && bucket(p[2], false):
		switch p[3] {
		case "entered":
			return []string{name + figEntered + p[2]}, false, true
		case "advanced":
			return []string{name + figAdvanced + p[2]}, false, true
		case "closed_visits", "median_days", "p75_days":
			return []string{name + figStay + p[2]}, true, true
		}
	case p[1] == "transitions" && (len(p) == 4 || len(p) == 5 && p[4] == "count") && bucket(p[2], true) && bucket(p[3], true):
		return []string{name + figMove + p[2] + "/" + p[3]}, false, true
	case p[1] == "touchpoint_mix" && bucket(p[2], true) && (len(p) == 4 && p[3] == "total" || len(p) == 5 && p[3] == "kinds"):
		// the touchpoints recorded in every phase of the step
		for _, phase := range slices.Concat(contact.Phases(), []contact.Phase{contact.Lost, contact.Churned}) {
			if g.bucket(phase) != p[2] {
				continue
			}
			if len(p) == 4 {
				figures = append(figures, figMix+string(phase)+"/")
			} else {
				figures = append(figures, figMix+string(phase)+"/"+p[4])
			}
		}
		return figures, false, true
	}
	return nil, false, false
}
