package journey

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/explain"
	"github.com/eventcrm/crm/projections/round"
	"github.com/eventcrm/crm/projections/visits"
)

// CohortLayout is the form of a cohort: the month of lead capture, YYYY-MM (business time zone).
const CohortLayout = "2006-01"

// Params is the question asked of the journey map of a cohort.
type Params struct {
	// Cohort keeps the contacts captured in this month (YYYY-MM, business time zone); empty keeps all.
	Cohort string `json:"cohort,omitempty"`
	// Channel keeps the contacts of this lead channel.
	Channel string `json:"channel,omitempty"`
	// Owner and Segment keep the contacts whose current owner / segment is this one.
	Owner   string `json:"owner,omitempty"`
	Segment string `json:"segment,omitempty"`
	// AsOf, when set, is the business time of the question: only contacts captured at or
	// before it and not merged into another contact by then, and visits entered, phase
	// changes and touchpoints that occurred at or before it, count. Zero means everything
	// known.
	AsOf time.Time `json:"as_of,omitzero"`
	// ByStage adds the map with the phases grouped into the five journey stages.
	ByStage bool `json:"by_stage,omitempty"`
	// Explain, when set, asks for the parts of one figure of the map instead (see Explain),
	// a page of Limit at a time from Cursor.
	Explain string `json:"explain,omitempty"`
	Limit   int    `json:"limit,omitempty"`
	Cursor  string `json:"cursor,omitempty"`
}

// Answer is the journey map of a cohort.
type Answer struct {
	AsOf    *time.Time `json:"as_of,omitempty"`
	Cohort  string     `json:"cohort,omitempty"`
	Channel string     `json:"channel,omitempty"`
	Owner   string     `json:"owner,omitempty"`
	Segment string     `json:"segment,omitempty"`
	// ByPhase has a step per lifecycle phase (lead ... loyal).
	ByPhase Map `json:"by_phase"`
	// ByStage has a step per journey stage (awareness ... loyalty), when asked: consecutive
	// visits of phases of the same stage are one stay in it.
	ByStage *Map `json:"by_stage,omitempty"`
}

// Map is the aggregate journey of a cohort over steps (phases or stages).
type Map struct {
	Steps         []Step       `json:"steps"`
	Transitions   []Transition `json:"transitions"`
	TouchpointMix []Mix        `json:"touchpoint_mix"`
}

// Step is what happened in one phase (or stage) to the contacts of the cohort.
type Step struct {
	Name string `json:"name"`
	// Entered counts the distinct contacts with at least one stay in the step.
	Entered int `json:"entered"`
	// Advanced counts the distinct contacts that, after a stay in the step, entered a later
	// step of the lifecycle: the next one or beyond (a skip forward). An exit (lost, churned)
	// or a backward move is not an advance, and a contact that advances from several stays in
	// the step counts once. Advanced <= Entered; always 0 for the last step (loyal, loyalty).
	Advanced int `json:"advanced"`
	// Conversion is Advanced / Entered rounded half up to 4 decimals; null when nobody entered,
	// and for the last step, which has no next one.
	Conversion *float64 `json:"conversion"`
	// ClosedVisits counts the stays in the step that ended (the contact moved on, backwards or
	// out) at or before as_of; only they are measured.
	ClosedVisits int `json:"closed_visits"`
	// MedianDays and P75Days measure the closed stays in days (2 decimals, half up). Median: the
	// middle one, the mean of the two middle ones for an even count. P75: nearest rank, the
	// ceil(0.75 n)-th shortest. Null when there is no closed stay.
	MedianDays *float64 `json:"median_days"`
	P75Days    *float64 `json:"p75_days"`
}

// Transition counts the moves from one step to another: phase changes (forward, skips,
// backward moves, exits to lost or churned, win-backs) that occurred at or before as_of.
// Grouped by stage, moves inside a stage are not transitions.
type Transition struct {
	From  string `json:"from"`
	To    string `json:"to"`
	Count int    `json:"count"`
}

// Mix counts the touchpoints by kind in one step, by the phase recorded on each touchpoint
// event. Every step is listed; exits (lost, churned) only when they have touchpoints.
type Mix struct {
	Name  string      `json:"name"`
	Total int         `json:"total"`
	Kinds []KindCount `json:"kinds"`
}

// KindCount is the number of touchpoints of one kind; by count, largest first, then by kind.
type KindCount struct {
	Kind  string `json:"kind"`
	Count int    `json:"count"`
}

// filter is the cohort of a question, as SQL conditions on the contacts table c.
type filter struct {
	asOf  int64
	where string
	args  []any
}

func (p Params) filter() (filter, error) {
	// A merged duplicate is a contact of the cohort until its merge, none from then on.
	f := filter{asOf: asOfMicros(p.AsOf), where: ` c.created_at <= ? AND (c.merged_at IS NULL OR c.merged_at > ?)`}
	f.args = append(f.args, f.asOf, f.asOf)
	if p.Cohort != "" {
		if _, err := time.Parse(CohortLayout, p.Cohort); err != nil {
			return filter{}, domain.Invalid("cohort", "%q is not a month of the form YYYY-MM", p.Cohort)
		}
		f.where += ` AND c.cohort = ?`
		f.args = append(f.args, p.Cohort)
	}
	if p.Channel != "" {
		if _, err := contact.ParseChannel("channel", p.Channel); err != nil {
			return filter{}, err
		}
		f.where += ` AND c.channel = ?`
		f.args = append(f.args, p.Channel)
	}
	if p.Owner != "" {
		f.where += ` AND c.owner = ?`
		f.args = append(f.args, p.Owner)
	}
	if p.Segment != "" {
		f.where += ` AND c.segment = ?`
		f.args = append(f.args, p.Segment)
	}
	return f, nil
}

// argsAnd is the filter's arguments followed by more.
func (f filter) argsAnd(more ...any) []any {
	return append(slices.Clip(f.args), more...)
}

// asOfMicros is the bound of business time: as_of, or no bound when it is zero.
func asOfMicros(asOf time.Time) int64 {
	if asOf.IsZero() {
		return math.MaxInt64
	}
	return asOf.UnixMicro()
}

func asOfPtr(asOf time.Time) *time.Time {
	if asOf.IsZero() {
		return nil
	}
	t := asOf.UTC()
	return &t
}

// Query answers the journey map of a cohort from the tables of set t. Invalid parameters
// return a domain error with code invalid naming the parameter.
//
// A map about now (no as_of, or one at or after the latest business time in the tables) of
// every contact or of one cohort, channel, owner or segment reads the map the fold keeps (see
// kept.go): a few hundred rows. Any other question reads the visits of every contact it is
// about; both give the same answer.
func Query(ctx context.Context, db *projections.DB, t projections.Tables, params Params) (Answer, error) {
	return ask(ctx, db, t, params, true)
}

// ask answers as Query does; without kept, from the visits even about now.
func ask(ctx context.Context, db *projections.DB, t projections.Tables, params Params, kept bool) (Answer, error) {
	f, err := params.filter()
	if err != nil {
		return Answer{}, err
	}
	if d, ok := params.keptDim(); kept && ok {
		answer, now, err := queryKept(ctx, db, t, params, d)
		if err != nil || now {
			return answer, err
		}
	}
	phases := newAccumulator(byPhase())
	var stages *accumulator
	if params.ByStage {
		stages = newAccumulator(byStage())
	}
	visits := func(tx *sql.Tx) error { return scanVisits(ctx, tx, db.Dialect, t, f, phases, stages) }
	var mix []mixRow
	mixes := func(tx *sql.Tx) (err error) {
		mix, err = scanMix(ctx, tx, db.Dialect, t, f)
		return err
	}
	if db.Frozen() {
		// Nothing writes to the tables: the two statements see the same state from
		// transactions of their own, and run side by side.
		var (
			wg     sync.WaitGroup
			mixErr error
		)
		wg.Go(func() { mixErr = db.ReadOnly(ctx, mixes) })
		err = db.ReadOnly(ctx, visits)
		wg.Wait()
		err = errors.Join(err, mixErr)
	} else {
		err = db.ReadOnly(ctx, func(tx *sql.Tx) error {
			if err := visits(tx); err != nil {
				return err
			}
			return mixes(tx)
		})
	}
	if err != nil {
		return Answer{}, err
	}
	answer := Answer{AsOf: asOfPtr(params.AsOf), Cohort: params.Cohort, Channel: params.Channel, Owner: params.Owner,
		Segment: params.Segment, ByPhase: phases.result(mix)}
	if stages != nil {
		m := stages.result(mix)
		answer.ByStage = &m
	}
	return answer, nil
}

// scanVisits adds the visits of the cohort's contacts, contact by contact, to phases (and
// stages, when asked).
func scanVisits(ctx context.Context, tx *sql.Tx, d projections.Dialect, t projections.Tables, f filter, phases, stages *accumulator) error {
	rows, err := tx.QueryContext(ctx, d.Rebind(`SELECT v.contact_id, v.phase, v.entered_at, v.left_at
		FROM `+t.Name(visits.Table)+` v JOIN `+t.Name(tableContacts)+` c ON c.contact_id = v.contact_id
		WHERE`+f.where+` AND v.entered_at <= ? ORDER BY v.contact_id, v.seq`), f.argsAnd(f.asOf)...)
	if err != nil {
		return fmt.Errorf("visits: %w", err)
	}
	defer rows.Close()
	// The visits come in contact order: each contact's are added when the next starts.
	var (
		current []byte
		visits  []visit
	)
	addContact := func() {
		if len(visits) == 0 {
			return
		}
		phases.add(visits)
		if stages != nil {
			stages.add(visits)
		}
		visits = visits[:0]
	}
	for rows.Next() {
		var (
			id   sql.RawBytes
			v    visit
			left sql.NullInt64
		)
		if err := rows.Scan(&id, &v.phase, &v.entered, &left); err != nil {
			return fmt.Errorf("visits: %w", err)
		}
		if !bytes.Equal(id, current) {
			addContact()
			current = append(current[:0], id...)
		}
		v.left, v.closed = left.Int64, left.Valid && left.Int64 <= f.asOf
		visits = append(visits, v)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("visits: %w", err)
	}
	addContact()
	return nil
}

// scanMix counts the touchpoints of the cohort's contacts by phase and kind.
func scanMix(ctx context.Context, tx *sql.Tx, d projections.Dialect, t projections.Tables, f filter) ([]mixRow, error) {
	var mix []mixRow
	rows, err := tx.QueryContext(ctx, d.Rebind(`SELECT tp.phase, tp.kind, COUNT(*)
		FROM `+t.Name(tableTouchpoints)+` tp JOIN `+t.Name(tableContacts)+` c ON c.contact_id = tp.contact_id
		WHERE`+f.where+` AND tp.occurred_at <= ? GROUP BY tp.phase, tp.kind`), f.argsAnd(f.asOf)...)
	if err != nil {
		return nil, fmt.Errorf("touchpoint mix: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r mixRow
		if err := rows.Scan(&r.phase, &r.kind, &r.count); err != nil {
			return nil, fmt.Errorf("touchpoint mix: %w", err)
		}
		mix = append(mix, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("touchpoint mix: %w", err)
	}
	return mix, nil
}

// ContactParams is the question asked of the journey of one contact.
type ContactParams struct {
	ContactID string `json:"contact_id"`
	// AsOf, when set, is the business time of the question: visits entered and touchpoints that
	// occurred after it are left out, and visits left after it are open.
	AsOf time.Time `json:"as_of,omitzero"`
}

// ContactAnswer is the journey of one contact: its phase visits in order.
type ContactAnswer struct {
	ContactID string     `json:"contact_id"`
	AsOf      *time.Time `json:"as_of,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	Cohort    string     `json:"cohort"`
	Channel   string     `json:"channel"`
	// Owner and Segment are the current ones.
	Owner   string `json:"owner"`
	Segment string `json:"segment,omitempty"`
	// Phase is the phase of the last visit (as of as_of).
	Phase  contact.Phase `json:"phase"`
	Visits []Visit       `json:"visits"`
}

// Visit is one stay of the contact in a phase (or exit).
type Visit struct {
	Seq          int           `json:"seq"`
	Phase        contact.Phase `json:"phase"`
	JourneyStage contact.Stage `json:"journey_stage,omitempty"`
	EnteredAt    time.Time     `json:"entered_at"`
	// LeftAt, Days (2 decimals, half up), NextPhase, Rule and Reason are those of the phase
	// change that ended the visit; null or absent while the visit is open.
	LeftAt    *time.Time       `json:"left_at"`
	Days      *float64         `json:"days"`
	NextPhase contact.Phase    `json:"next_phase,omitempty"`
	Rule      contact.RuleName `json:"rule,omitempty"`
	Reason    string           `json:"reason,omitempty"`
	// Touchpoints are those recorded during the visit, by time.
	TouchpointCount int          `json:"touchpoint_count"`
	Touchpoints     []Touchpoint `json:"touchpoints"`
}

// Touchpoint is an activity with the contact.
type Touchpoint struct {
	TouchpointID string                 `json:"touchpoint_id"`
	Kind         contact.TouchpointKind `json:"kind"`
	OccurredAt   time.Time              `json:"occurred_at"`
}

// QueryContact answers the journey of one contact from the tables of set t. A contact that does
// not exist (or was captured after as_of) returns a domain error with code not_found.
func QueryContact(ctx context.Context, db *projections.DB, t projections.Tables, params ContactParams) (ContactAnswer, error) {
	if params.ContactID == "" {
		return ContactAnswer{}, domain.Invalid("contact_id", "is required")
	}
	asOf := asOfMicros(params.AsOf)
	answer := ContactAnswer{ContactID: params.ContactID, AsOf: asOfPtr(params.AsOf), Visits: []Visit{}}
	err := db.ReadOnly(ctx, func(tx *sql.Tx) error {
		var createdAt int64
		err := tx.QueryRowContext(ctx, db.Dialect.Rebind(`SELECT created_at, cohort, channel, owner, segment FROM `+
			t.Name(tableContacts)+` WHERE contact_id = ?`), params.ContactID).
			Scan(&createdAt, &answer.Cohort, &answer.Channel, &answer.Owner, &answer.Segment)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && createdAt > asOf) {
			return domain.NotFound("contact %s not found", params.ContactID)
		}
		if err != nil {
			return fmt.Errorf("contact: %w", err)
		}
		answer.CreatedAt = time.UnixMicro(createdAt).UTC()

		rows, err := tx.QueryContext(ctx, db.Dialect.Rebind(`SELECT seq, phase, entered_at, left_at, next_phase, rule, reason
			FROM `+t.Name(visits.Table)+` WHERE contact_id = ? AND entered_at <= ? ORDER BY seq`), params.ContactID, asOf)
		if err != nil {
			return fmt.Errorf("visits: %w", err)
		}
		defer rows.Close()
		bySeq := map[int]int{}
		for rows.Next() {
			var (
				v                  Visit
				entered            int64
				left               sql.NullInt64
				next, rule, reason sql.NullString
			)
			if err := rows.Scan(&v.Seq, &v.Phase, &entered, &left, &next, &rule, &reason); err != nil {
				return fmt.Errorf("visits: %w", err)
			}
			v.JourneyStage = v.Phase.JourneyStage()
			v.EnteredAt = time.UnixMicro(entered).UTC()
			if left.Valid && left.Int64 <= asOf {
				l := time.UnixMicro(left.Int64).UTC()
				d := round.Days(max(left.Int64-entered, 0))
				v.LeftAt, v.Days = &l, &d
				v.NextPhase, v.Rule, v.Reason = contact.Phase(next.String), contact.RuleName(rule.String), reason.String
			}
			v.Touchpoints = []Touchpoint{}
			bySeq[v.Seq] = len(answer.Visits)
			answer.Visits = append(answer.Visits, v)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("visits: %w", err)
		}

		rows, err = tx.QueryContext(ctx, db.Dialect.Rebind(`SELECT visit_seq, touchpoint_id, kind, occurred_at
			FROM `+t.Name(tableTouchpoints)+` WHERE contact_id = ? AND occurred_at <= ? ORDER BY occurred_at, position`),
			params.ContactID, asOf)
		if err != nil {
			return fmt.Errorf("touchpoints: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var (
				seq int
				tp  Touchpoint
				at  int64
			)
			if err := rows.Scan(&seq, &tp.TouchpointID, &tp.Kind, &at); err != nil {
				return fmt.Errorf("touchpoints: %w", err)
			}
			tp.OccurredAt = time.UnixMicro(at).UTC()
			if i, ok := bySeq[seq]; ok {
				answer.Visits[i].Touchpoints = append(answer.Visits[i].Touchpoints, tp)
				answer.Visits[i].TouchpointCount++
			}
		}
		return rows.Err()
	})
	if err != nil {
		return ContactAnswer{}, err
	}
	if n := len(answer.Visits); n > 0 {
		answer.Phase = answer.Visits[n-1].Phase
	}
	return answer, nil
}

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
