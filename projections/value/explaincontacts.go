package value

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/explain"
)

// Figures of the parts of the dormant contacts and of the upsell candidates: the facts a
// contact stands on at the time asked about.
const (
	figLastActivity = "last_activity"
	figUsage        = "usage"
	figSurvey       = "survey"
	figPhase        = "phase"
)

// ExplainDormant answers the parts of the figure of the dormant contacts at path, for the
// question params (days, phase, owner and as_of as the answer takes them; Limit and Cursor
// page the parts: explain.DefaultLimit when 0, at most explain.MaxLimit). The paths: count
// (every dormant contact), owners.<owner>.count, and contacts.<contact>.last_activity,
// .last_activity_at and .days_idle (that contact's one part). A part is a dormant contact with the event
// of its last activity (its latest touchpoint at or before as_of, its own or a merged
// duplicate's, else its creation): the bucket is the activity's kind, the owner the contact's
// at as_of, and each counts 1.
//
// Whether a contact is dormant depends on the time asked about, so the parts are found when
// asked (as the answer finds the contacts), not kept by the fold: about now from each
// contact's last activity, about a past time from its facts.
func ExplainDormant(ctx context.Context, db *projections.DB, t projections.Tables, params DormantParams, path string) (explain.Answer, error) {
	_, cutoff, err := params.check()
	if err != nil {
		return explain.Answer{}, err
	}
	if err := checkPage(params.Limit, params.Cursor); err != nil {
		return explain.Answer{}, err
	}
	keep, contactID := params, ""
	contactFigure := func(p string) (string, bool) {
		rest, ok := strings.CutPrefix(p, "contacts.")
		i := strings.LastIndexByte(rest, '.')
		if !ok || i <= 0 {
			return "", false
		}
		switch rest[i+1:] {
		case "last_activity", "last_activity_at", "days_idle":
			return rest[:i], true
		}
		return "", false
	}
	switch owner, ok := strings.CutPrefix(path, "owners."); {
	case path == "count":
	case strings.HasPrefix(path, "contacts."):
		if contactID, ok = contactFigure(path); !ok {
			return explain.Answer{}, domain.Invalid("explain", "%q is not the path of a figure of a dormant contact (contacts.<contact>.last_activity, .last_activity_at, .days_idle)", path)
		}
	case ok && strings.HasSuffix(owner, ".count"):
		owner = strings.TrimSuffix(owner, ".count")
		if params.Owner != "" && params.Owner != owner {
			// Only the owner asked about is in the answer.
			return explain.Answer{}, domain.Invalid("explain", "%q: the answer is of owner %q only", path, params.Owner)
		}
		keep.Owner = owner
	default:
		return explain.Answer{}, domain.Invalid("explain", "%q is not the path of a figure of the dormant contacts (count, owners.<owner>.count)", path)
	}
	var parts []explain.Part
	err = ask(ctx, db, t, time.UTC, params.AsOf, func(q *query) error {
		var states []contactState
		if q.now {
			where, args := keep.dormantWhere(cutoff)
			states, err = q.keptStates(ctx, where, args...)
		} else {
			states, err = q.statesThen(ctx)
		}
		if err != nil {
			return err
		}
		for i := range states {
			s := &states[i]
			if !keep.dormant(s, cutoff) || contactID != "" && s.id != contactID {
				continue
			}
			parts = append(parts, explain.Part{Entity: s.id, Figure: figLastActivity, Position: s.idleBy.pos, EventID: s.idleBy.eventID,
				Bucket: s.idleKind, At: s.idleAt, Owner: s.owner, Segment: s.phase, Count: 1})
		}
		if contactID != "" && len(parts) == 0 {
			return domain.Invalid("explain", "%q: %s is not a dormant contact of the answer", path, contactID)
		}
		return nil
	})
	if err != nil {
		return explain.Answer{}, err
	}
	return pageOf(path, params.AsOf, parts, params.Limit, params.Cursor)
}

// ExplainUpsell answers the parts of a figure of an upsell candidate at path, as of asOf, a
// page of limit at a time from cursor. The paths: candidates.<contact>.usage_percent and
// .usage_reported_at (the latest usage report, its own or a merged duplicate's, at or before
// as_of), .nps and .surveyed_at (the latest survey) and .phase (the event that put the contact in its phase: a phase change, or its
// creation). A part counts 1 and carries the value its fact set (value: the percent, the
// score) or, for the phase, the phase as its bucket. A contact that is not a candidate as of
// asOf, or a figure it has not (nps without a survey), is an invalid path.
func ExplainUpsell(ctx context.Context, db *projections.DB, t projections.Tables, asOf time.Time, path string, limit int, cursor string) (explain.Answer, error) {
	if err := asOfRequired(asOf); err != nil {
		return explain.Answer{}, err
	}
	if err := checkPage(limit, cursor); err != nil {
		return explain.Answer{}, err
	}
	rest, ok := strings.CutPrefix(path, "candidates.")
	i := strings.LastIndexByte(rest, '.')
	if !ok || i <= 0 {
		return explain.Answer{}, domain.Invalid("explain", "%q is not the path of a figure of the upsell candidates (candidates.<contact>.usage_percent, .nps, .phase)", path)
	}
	id, figure := rest[:i], rest[i+1:]
	switch figure {
	case "usage_reported_at":
		figure = "usage_percent"
	case "surveyed_at":
		figure = "nps"
	}
	if figure != "usage_percent" && figure != "nps" && figure != "phase" {
		return explain.Answer{}, domain.Invalid("explain", "%q is not the path of a figure of the upsell candidates (candidates.<contact>.usage_percent, .nps, .phase)", path)
	}
	var parts []explain.Part
	err := ask(ctx, db, t, time.UTC, asOf, func(q *query) error {
		var (
			states []contactState
			err    error
		)
		if q.now {
			states, err = q.keptStates(ctx, `merged = 0 AND contact_id = ?`, id)
		} else {
			states, err = q.statesThen(ctx)
		}
		if err != nil {
			return err
		}
		for i := range states {
			s := &states[i]
			if s.id != id {
				continue
			}
			if _, ok := upsell(s); !ok {
				break
			}
			switch {
			case figure == "usage_percent":
				parts = append(parts, explain.Part{Entity: s.id, Figure: figUsage, Position: s.usageBy.pos, EventID: s.usageBy.eventID,
					Bucket: fmt.Sprint(s.usage), At: s.usageAt, Owner: s.owner, Count: 1, Measure: s.usage})
			case figure == "nps" && s.nps >= 0:
				parts = append(parts, explain.Part{Entity: s.id, Figure: figSurvey, Position: s.npsBy.pos, EventID: s.npsBy.eventID,
					Bucket: fmt.Sprint(s.nps), At: s.npsAt, Owner: s.owner, Count: 1, Measure: s.nps})
			case figure == "phase":
				parts = append(parts, explain.Part{Entity: s.id, Figure: figPhase, Position: s.phaseBy.pos, EventID: s.phaseBy.eventID,
					Bucket: s.phase, At: s.phaseAt, Owner: s.owner, Count: 1, Measure: -1})
			}
			return nil
		}
		return domain.Invalid("explain", "%q: %s is not an upsell candidate as of %s", path, id, asOf.UTC().Format(time.RFC3339))
	})
	if err != nil {
		return explain.Answer{}, err
	}
	if len(parts) == 0 {
		return explain.Answer{}, domain.Invalid("explain", "%q: %s has no survey as of %s", path, id, asOf.UTC().Format(time.RFC3339))
	}
	return pageOf(path, asOf, parts, limit, cursor)
}

// checkPage checks the page of parts asked for before anything is read.
func checkPage(limit int, cursor string) error {
	_, err := explain.PageOf(nil, limit, cursor, nil)
	return err
}

// pageOf is the answer of a page of parts found at question time (each a fact whose value, if
// any, is its measure; -1 none), in order of position, entity and figure.
func pageOf(path string, asOf time.Time, parts []explain.Part, limit int, cursor string) (explain.Answer, error) {
	sortParts(parts)
	page, err := explain.PageOf(parts, limit, cursor, nil)
	if err != nil {
		return explain.Answer{}, err
	}
	values := map[[3]string]int64{}
	for _, p := range parts {
		if p.Figure == figUsage || p.Figure == figSurvey {
			values[[3]string{fmt.Sprint(p.Position), p.Entity, p.Figure}] = p.Measure
		}
	}
	for i := range page.Parts {
		e := &page.Parts[i]
		if v, ok := values[[3]string{fmt.Sprint(e.Position), e.Entity, e.Figure}]; ok {
			e.Value = &v
		}
	}
	return explain.Answer{Explain: path, AsOf: asOf.UTC(), Page: page}, nil
}
