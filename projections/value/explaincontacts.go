package value

import (
	"context"
	"fmt"
	"strconv"
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

// ExplainUpsell answers the parts of a figure of the upsell candidates at path, as of asOf, a
// page of limit at a time from cursor. The paths: count (every candidate, each one part: the
// event of its latest usage report); candidates.<contact>.usage_percent and
// .usage_reported_at (the latest usage report, its own or a merged duplicate's, at or before
// as_of), .nps and .surveyed_at (the latest survey) and .phase (the event that put the contact
// in its phase: a phase change, or its creation); candidates.<contact>.reasons (one part per
// reason, in the order of the reasons, its kind as bucket: usage, nps, loyal) and
// .reasons.<i> (the reason at index i alone). A part counts 1 and carries the value its fact
// set (value: the percent, the score) or, for the phase, the phase as its bucket. A contact
// that is not a candidate as of asOf, or a figure it has not (nps without a survey, a reason
// past its last), is an invalid path.
func ExplainUpsell(ctx context.Context, db *projections.DB, t projections.Tables, asOf time.Time, path string, limit int, cursor string) (explain.Answer, error) {
	if err := asOfRequired(asOf); err != nil {
		return explain.Answer{}, err
	}
	if err := checkPage(limit, cursor); err != nil {
		return explain.Answer{}, err
	}
	var (
		f   upsellFigure
		err error
	)
	if path != "count" {
		if f, err = parseUpsellFigure(path); err != nil {
			return explain.Answer{}, err
		}
	}
	var parts []explain.Part
	err = ask(ctx, db, t, time.UTC, asOf, func(q *query) error {
		var (
			states []contactState
			err    error
		)
		switch where, args := upsellWhere(); {
		case !q.now:
			states, err = q.statesThen(ctx)
		case path == "count":
			states, err = q.keptStates(ctx, where, args...)
		default:
			states, err = q.keptStates(ctx, `merged = 0 AND contact_id = ?`, f.contact)
		}
		if err != nil {
			return err
		}
		for i := range states {
			s := &states[i]
			if _, ok := upsell(s); !ok || path != "count" && s.id != f.contact {
				continue
			}
			if path == "count" {
				parts = append(parts, upsellPart(s, ReasonUsage))
				continue
			}
			parts, err = f.parts(s)
			return err
		}
		if path != "count" {
			return domain.Invalid("explain", "%q: %s is not an upsell candidate as of %s", path, f.contact, asOf.UTC().Format(time.RFC3339))
		}
		return nil
	})
	if err != nil {
		return explain.Answer{}, err
	}
	return pageOf(path, asOf, parts, limit, cursor)
}

// upsellFigure is a figure of one upsell candidate: usage_percent, nps, phase or reasons (with
// reason the index of one reason, -1 for all).
type upsellFigure struct {
	contact, figure string
	reason          int
}

func parseUpsellFigure(path string) (upsellFigure, error) {
	bad := domain.Invalid("explain", "%q is not the path of a figure of the upsell candidates (count, candidates.<contact>.usage_percent, .nps, .phase, .reasons, .reasons.<i>)", path)
	rest, ok := strings.CutPrefix(path, "candidates.")
	if !ok {
		return upsellFigure{}, bad
	}
	f := upsellFigure{reason: -1}
	if head, index, ok := cutLast(rest); ok && strings.HasSuffix(head, ".reasons") {
		n, err := strconv.Atoi(index)
		if err != nil || n < 0 || index != strconv.Itoa(n) {
			return upsellFigure{}, bad
		}
		rest, f.reason = head, n
	}
	f.contact, f.figure, ok = cutLast(rest)
	switch f.figure {
	case "usage_reported_at":
		f.figure = "usage_percent"
	case "surveyed_at":
		f.figure = "nps"
	}
	if !ok || f.reason >= 0 && f.figure != "reasons" ||
		f.figure != "usage_percent" && f.figure != "nps" && f.figure != "phase" && f.figure != "reasons" {
		return upsellFigure{}, bad
	}
	return f, nil
}

// cutLast cuts s around its last dot: both sides must be non-empty.
func cutLast(s string) (before, after string, ok bool) {
	i := strings.LastIndexByte(s, '.')
	if i <= 0 || i == len(s)-1 {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}

// parts are the parts of the figure of candidate s.
func (f upsellFigure) parts(s *contactState) ([]explain.Part, error) {
	switch f.figure {
	case "usage_percent":
		return []explain.Part{upsellPart(s, ReasonUsage)}, nil
	case "nps":
		if s.nps < 0 {
			return nil, domain.Invalid("explain", "candidates.%s.nps: %s has no survey then", s.id, s.id)
		}
		return []explain.Part{upsellPart(s, ReasonNPS)}, nil
	case "phase":
		return []explain.Part{upsellPart(s, ReasonLoyal)}, nil
	}
	kinds := reasonKinds(s)
	if f.reason >= len(kinds) {
		return nil, domain.Invalid("explain", "candidates.%s.reasons.%d: %s has %d reasons", s.id, f.reason, s.id, len(kinds))
	}
	if f.reason >= 0 {
		kinds = kinds[f.reason : f.reason+1]
	}
	var parts []explain.Part
	for _, kind := range kinds {
		p := upsellPart(s, kind)
		p.Bucket = kind
		parts = append(parts, p)
	}
	return parts, nil
}

// upsellPart is the part of candidate s's fact of kind: its latest usage report (the percent
// its bucket and value), its latest survey (the score) or the event of its phase (the phase
// its bucket), counting 1.
func upsellPart(s *contactState, kind string) explain.Part {
	switch kind {
	case ReasonUsage:
		return explain.Part{Entity: s.id, Figure: figUsage, Position: s.usageBy.pos, EventID: s.usageBy.eventID,
			Bucket: fmt.Sprint(s.usage), At: s.usageAt, Owner: s.owner, Count: 1, Measure: s.usage}
	case ReasonNPS:
		return explain.Part{Entity: s.id, Figure: figSurvey, Position: s.npsBy.pos, EventID: s.npsBy.eventID,
			Bucket: fmt.Sprint(s.nps), At: s.npsAt, Owner: s.owner, Count: 1, Measure: s.nps}
	}
	return explain.Part{Entity: s.id, Figure: figPhase, Position: s.phaseBy.pos, EventID: s.phaseBy.eventID,
		Bucket: s.phase, At: s.phaseAt, Owner: s.owner, Count: 1, Measure: -1}
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
