package value

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/paging"
)

// contactState is a contact (not merged into another) as it stood at as_of: its phase and
// owner, its last activity, and its latest usage report and survey, its merged duplicates'
// facts included.
type contactState struct {
	id, name, owner, phase string
	phaseAt                int64
	idleAt                 int64
	idleKind               string
	usage, usageAt         int64 // usage -1: none
	nps, npsAt             int64 // nps -1: none
	// The events of the latest phase, activity, usage report and survey (the contact's own or
	// those of a contact merged into it), which explain them.
	phaseBy, idleBy, usageBy, npsBy source
}

// source is the event of a fact: its position and id.
type source struct {
	pos     int64
	eventID string
}

// latest is the latest fact of one kind seen so far.
type latest struct {
	at, pos int64
	text    string
	num     int64
	set     bool
	by      source
}

func (l *latest) offer(at, pos int64, text string, num int64, by source) {
	if !l.set || later(at, pos, l.at, l.pos) {
		*l = latest{at: at, pos: pos, text: text, num: num, set: true, by: by}
	}
}

// statesThen are the contacts created at or before as_of and not merged into another, as
// they stood then, by id, from the facts: phase and owner their own latest; last touchpoint,
// usage and survey the latest of their own and their merged duplicates'.
func (q *query) statesThen(ctx context.Context) ([]contactState, error) {
	type facts struct {
		name      string
		createdAt int64
		merged    bool
		phase     latest
		owner     latest
		touch     latest
		usage     latest
		survey    latest
		// created is the creation's event: its first phase's fact, the first of the contact's
		// facts at its creation time in the log.
		created source
	}
	byID := map[string]*facts{}
	err := q.each(ctx, "contacts", `SELECT contact_id, name, created_at, merged FROM `+q.t.Name(tableContacts),
		nil, func(rows *sql.Rows) error {
			var (
				id     string
				f      facts
				merged int64
			)
			err := rows.Scan(&id, &f.name, &f.createdAt, &merged)
			f.merged = merged != 0
			byID[id] = &f
			return err
		})
	if err != nil {
		return nil, err
	}
	err = q.each(ctx, "facts", `SELECT n.customer_id, f.contact_id, f.kind, f.occurred_at, f.position, f.text, f.num, f.event_id
		FROM `+q.t.Name(tableFacts)+` f JOIN `+q.t.Name(tableContacts)+` n ON n.contact_id = f.contact_id
		WHERE f.occurred_at <= ?`, []any{q.asOf}, func(rows *sql.Rows) error {
		var (
			customer, contactID, kind, text, eventID string
			at, pos, num                             int64
		)
		if err := rows.Scan(&customer, &contactID, &kind, &at, &pos, &text, &num, &eventID); err != nil {
			return err
		}
		by := source{pos: pos, eventID: eventID}
		f := byID[customer]
		if f == nil {
			return fmt.Errorf("facts of %s for unknown customer %s", contactID, customer)
		}
		switch kind {
		case factPhase:
			if contactID == customer {
				f.phase.offer(at, pos, text, num, by)
				if at == f.createdAt && (f.created.eventID == "" || pos < f.created.pos) {
					f.created = by
				}
			}
		case factOwner:
			if contactID == customer {
				f.owner.offer(at, pos, text, num, by)
			}
		case factTouchpoint:
			f.touch.offer(at, pos, text, num, by)
		case factUsage:
			f.usage.offer(at, pos, text, num, by)
		case factSurvey:
			f.survey.offer(at, pos, text, num, by)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var list []contactState
	for id, f := range byID {
		if f.merged || f.createdAt > q.asOf {
			continue
		}
		s := contactState{id: id, name: f.name, owner: f.owner.text, phase: f.phase.text, phaseAt: f.phase.at, phaseBy: f.phase.by,
			idleAt: f.createdAt, idleKind: KindCreated, usage: -1, nps: -1}
		// The creation is the first phase's fact: its event is the last activity's without a
		// touchpoint.
		s.idleBy = f.created
		if f.touch.set {
			s.idleAt, s.idleKind, s.idleBy = f.touch.at, f.touch.text, f.touch.by
		}
		if f.usage.set {
			s.usage, s.usageAt, s.usageBy = f.usage.num, f.usage.at, f.usage.by
		}
		if f.survey.set {
			s.nps, s.npsAt, s.npsBy = f.survey.num, f.survey.at, f.survey.by
		}
		list = append(list, s)
	}
	slices.SortFunc(list, func(a, b contactState) int { return strings.Compare(a.id, b.id) })
	return list, nil
}

// UpsellThreshold is the usage, in percent of the plan limit, from which a contact is an
// upsell candidate (with a high NPS or loyal).
const UpsellThreshold = 80

// PromoterNPS is the NPS from which a contact's latest survey makes it an upsell candidate.
const PromoterNPS = 9

// UpsellParams is the question asked of the upsell candidates.
type UpsellParams struct {
	AsOf   time.Time `json:"as_of"`
	Limit  int       `json:"limit,omitempty"`
	Cursor string    `json:"cursor,omitempty"`
}

// UpsellAnswer is a page of upsell candidates, by contact id.
type UpsellAnswer struct {
	AsOf time.Time `json:"as_of"`
	// Count is every candidate as of as_of, on every page.
	Count      int64       `json:"count"`
	Candidates []Candidate `json:"candidates"`
	NextCursor string      `json:"next_cursor,omitempty"`
}

// Candidate is an upsell candidate with the facts that made it one.
type Candidate struct {
	ContactID string `json:"contact_id"`
	Name      string `json:"name"`
	Owner     string `json:"owner"`
	Phase     string `json:"phase"`
	// UsagePercent is the latest usage report at or before as_of, in percent of the plan limit.
	UsagePercent    int64     `json:"usage_percent"`
	UsageReportedAt time.Time `json:"usage_reported_at"`
	// NPS is the latest survey's score at or before as_of; null without a survey.
	NPS        *int64     `json:"nps"`
	SurveyedAt *time.Time `json:"surveyed_at"`
	// Reasons are the facts that made it a candidate, in this order: its usage, its NPS (when
	// 9 or more), its phase (when loyal); reasons.<i> explains the one at index i.
	Reasons []string `json:"reasons"`
}

// Kinds of the reasons of an upsell candidate, in the order they are given: the bucket of
// the part that explains each.
const (
	ReasonUsage = "usage"
	ReasonNPS   = "nps"
	ReasonLoyal = "loyal"
)

// reasonKinds are the kinds of the reasons that make s a candidate, in the order of
// Candidate.Reasons.
func reasonKinds(s *contactState) []string {
	kinds := []string{ReasonUsage}
	if s.nps >= PromoterNPS {
		kinds = append(kinds, ReasonNPS)
	}
	if s.phase == string(contact.Loyal) {
		kinds = append(kinds, ReasonLoyal)
	}
	return kinds
}

// upsell is the candidate of s, or false.
func upsell(s *contactState) (Candidate, bool) {
	if s.usage < UpsellThreshold || (s.nps < PromoterNPS && s.phase != string(contact.Loyal)) {
		return Candidate{}, false
	}
	c := Candidate{ContactID: s.id, Name: s.name, Owner: s.owner, Phase: s.phase, UsagePercent: s.usage,
		UsageReportedAt: timeOf(s.usageAt), Reasons: []string{}}
	if s.nps >= 0 {
		nps, at := s.nps, timeOf(s.npsAt)
		c.NPS, c.SurveyedAt = &nps, &at
	}
	for _, kind := range reasonKinds(s) {
		switch kind {
		case ReasonUsage:
			c.Reasons = append(c.Reasons, fmt.Sprintf("latest usage %d%% of the plan limit >= %d%%", s.usage, UpsellThreshold))
		case ReasonNPS:
			c.Reasons = append(c.Reasons, fmt.Sprintf("latest NPS %d >= %d", s.nps, PromoterNPS))
		case ReasonLoyal:
			c.Reasons = append(c.Reasons, "phase loyal")
		}
	}
	return c, true
}

// candidatesWhere is the condition on the contacts table of the candidates now, as the
// partial index of the candidates has it (its constants written out, so that a statement
// with it matches the index).
const candidatesWhere = "merged = 0 AND usage >= 80 AND (nps >= 9 OR phase = 'loyal')"

// upsellWhere is the condition on the contacts table of the candidates now.
func upsellWhere() (string, []any) {
	return candidatesWhere, nil
}

// QueryUpsell answers a page of the upsell candidates as of params.AsOf (required): about now
// from the contacts with a high latest usage (an index), about a past time from the facts.
func QueryUpsell(ctx context.Context, db *projections.DB, t projections.Tables, zone *time.Location, params UpsellParams) (UpsellAnswer, error) {
	if err := asOfRequired(params.AsOf); err != nil {
		return UpsellAnswer{}, err
	}
	limit, err := limitOf(params.Limit)
	if err != nil {
		return UpsellAnswer{}, err
	}
	after, err := decodeCursor(params.Cursor)
	if err != nil {
		return UpsellAnswer{}, err
	}
	answer := UpsellAnswer{AsOf: params.AsOf.UTC(), Candidates: []Candidate{}}
	err = askCandidates(ctx, db, t, zone, params.AsOf, func(q *query) error {
		var states []contactState
		if q.now {
			answer.Count = q.candidates
			afterID := ""
			if after != nil {
				afterID = after.ID
			}
			stmt, args := upsellPage(q.t, afterID, limit)
			states, err = q.readStates(ctx, stmt, args...)
		} else {
			states, err = q.statesThen(ctx)
		}
		if err != nil {
			return err
		}
		for i := range states {
			c, ok := upsell(&states[i])
			if !ok {
				continue
			}
			if !q.now {
				answer.Count++
			}
			if (after == nil || states[i].id > after.ID) && len(answer.Candidates) <= limit {
				answer.Candidates = append(answer.Candidates, c)
			}
		}
		return nil
	})
	if len(answer.Candidates) > limit {
		answer.Candidates = answer.Candidates[:limit]
		answer.NextCursor = paging.Encode(cursor{ID: answer.Candidates[limit-1].ContactID})
	}
	return answer, err
}

// keptDormant counts the dormant contacts now per owner: the kept counts of the months before
// the cutoff's, and the contacts of the cutoff's month (an index range) idle since the cutoff.
func (q *query) keptDormant(ctx context.Context, params DormantParams, cutoff int64) ([]OwnerCount, int64, error) {
	day := monthOf(dayOf(cutoff))
	days, daysArgs := `day < ?`, []any{day}
	if params.Phase != "" {
		days, daysArgs = days+` AND phase = ?`, append(daysArgs, params.Phase)
	}
	if params.Owner != "" {
		days, daysArgs = days+` AND owner = ?`, append(daysArgs, params.Owner)
	}
	where, args := params.dormantWhere(cutoff)
	owners := map[string]int64{}
	err := q.each(ctx, "dormant owners", `SELECT owner, SUM(n) FROM (
		SELECT owner, contacts AS n FROM `+q.t.Name(tableIdleMonths)+` WHERE `+days+`
		UNION ALL
		SELECT owner, 1 AS n FROM `+q.t.Name(tableContacts)+` WHERE `+where+` AND idle_at >= ?) x
		GROUP BY owner ORDER BY owner`, append(append(daysArgs, args...), day), func(rows *sql.Rows) error {
		var (
			owner string
			n     int64
		)
		err := rows.Scan(&owner, &n)
		owners[owner] += n
		return err
	})
	var (
		list  = []OwnerCount{}
		total int64
	)
	for _, o := range slices.Sorted(maps.Keys(owners)) {
		if owners[o] != 0 {
			list = append(list, OwnerCount{Owner: o, Count: owners[o]})
			total += owners[o]
		}
	}
	return list, total, err
}

// keptStates reads contacts as they stand now: where is the condition and order on the
// contacts table.
func (q *query) keptStates(ctx context.Context, where string, args ...any) ([]contactState, error) {
	return q.readStates(ctx, statesStatement(q.t, where), args...)
}

// readStates reads contacts as they stand now with stmt, a statesStatement.
func (q *query) readStates(ctx context.Context, stmt string, args ...any) ([]contactState, error) {
	var list []contactState
	err := q.each(ctx, "contacts", stmt, args, func(rows *sql.Rows) error {
		var s contactState
		err := rows.Scan(&s.id, &s.name, &s.owner, &s.phase, &s.idleAt, &s.idleKind, &s.usage, &s.usageAt, &s.nps, &s.npsAt,
			&s.phaseAt, &s.phaseBy.pos, &s.phaseBy.eventID, &s.idleBy.pos, &s.idleBy.eventID, &s.usageBy.pos, &s.usageBy.eventID,
			&s.npsBy.pos, &s.npsBy.eventID)
		list = append(list, s)
		return err
	})
	return list, err
}

// statesStatement reads contacts as they stand now: where is the condition and order on the
// contacts table.
func statesStatement(t projections.Tables, where string) string {
	return `SELECT contact_id, name, owner, phase, idle_at, idle_kind, usage, usage_at, nps, nps_at,
		phase_at, phase_pos, phase_event, idle_pos, idle_event, usage_pos, usage_event, nps_pos, nps_event
		FROM ` + t.Name(tableContacts) + ` WHERE ` + where
}

// upsellPage is the statement of a page of the upsell candidates now, after the id after
// ("" for the first page).
func upsellPage(t projections.Tables, after string, limit int) (string, []any) {
	where, args := upsellWhere()
	if after != "" {
		where += ` AND contact_id > ?`
		args = append(args, after)
	}
	return statesStatement(t, where+` ORDER BY contact_id LIMIT ?`), append(args, limit+1)
}

// DefaultDormantDays is how long without a touchpoint makes a contact dormant, by default.
const DefaultDormantDays = 90

// DormantParams is the question asked of the dormant contacts.
type DormantParams struct {
	// AsOf is the business time of the question (required).
	AsOf time.Time `json:"as_of"`
	// Days is N: dormant when the last touchpoint (or the creation, without one) is N x 24 h
	// or more before as_of; DefaultDormantDays when 0.
	Days int `json:"days,omitempty"`
	// Phase and Owner keep the contacts in that phase, of that owner, at as_of.
	Phase  string `json:"phase,omitempty"`
	Owner  string `json:"owner,omitempty"`
	Limit  int    `json:"limit,omitempty"`
	Cursor string `json:"cursor,omitempty"`
}

// DormantAnswer is a page of the dormant contacts, longest idle first (then by id).
type DormantAnswer struct {
	AsOf time.Time `json:"as_of"`
	Days int       `json:"days"`
	// IdleSince is the cutoff: a contact whose last activity is at or before it is dormant.
	IdleSince time.Time `json:"idle_since"`
	// Count is every dormant contact of the question (phase and owner as asked), on every
	// page; Owners splits it per owner at as_of, by owner ("" for none).
	Count      int64            `json:"count"`
	Owners     []OwnerCount     `json:"owners"`
	Contacts   []DormantContact `json:"contacts"`
	NextCursor string           `json:"next_cursor,omitempty"`
}

// OwnerCount is the dormant contacts of one owner.
type OwnerCount struct {
	Owner string `json:"owner"`
	Count int64  `json:"count"`
}

// DormantContact is a dormant contact, its last activity and what it was.
type DormantContact struct {
	ContactID string `json:"contact_id"`
	Name      string `json:"name"`
	Owner     string `json:"owner"`
	Phase     string `json:"phase"`
	// LastActivity is the kind of the latest touchpoint at or before as_of, or "created".
	LastActivity   string    `json:"last_activity"`
	LastActivityAt time.Time `json:"last_activity_at"`
	// DaysIdle is from the last activity to as_of, exact days to 2 decimals.
	DaysIdle float64 `json:"days_idle"`
}

// check checks the question's days, phase and as_of, and answers its days (the
// default when 0) and its cutoff.
func (params DormantParams) check() (days int, cutoff int64, err error) {
	if err := asOfRequired(params.AsOf); err != nil {
		return 0, 0, err
	}
	n := params.Days
	switch {
	case n == 0:
		n = DefaultDormantDays
	case n < 0 || n > 36500:
		return 0, 0, domain.Invalid("days", "%d is outside 1..36500", n)
	}
	if params.Phase != "" {
		if _, err := contact.ParsePhase("phase", params.Phase); err != nil {
			return 0, 0, err
		}
	}
	return n, micros(params.AsOf) - int64(n)*microsPerDay, nil
}

// dormantWhere is the condition on the contacts table of the contacts dormant now, phase and
// owner as asked.
func (params DormantParams) dormantWhere(cutoff int64) (string, []any) {
	where, args := `merged = 0 AND idle_at <= ?`, []any{cutoff}
	if params.Phase != "" {
		where += ` AND phase = ?`
		args = append(args, params.Phase)
	}
	if params.Owner != "" {
		where += ` AND owner = ?`
		args = append(args, params.Owner)
	}
	return where, args
}

// dormantPage is the statement of a page of the contacts dormant now, after the cursor after
// (nil for the first page).
func dormantPage(t projections.Tables, params DormantParams, cutoff int64, after *cursor, limit int) (string, []any) {
	where, args := params.dormantWhere(cutoff)
	if after != nil {
		where += ` AND (idle_at > ? OR (idle_at = ? AND contact_id > ?))`
		args = append(args, after.V, after.V, after.ID)
	}
	return statesStatement(t, where+` ORDER BY idle_at, contact_id LIMIT ?`), append(args, limit+1)
}

// dormant tells whether s, as it stood at the question's time, is dormant for it.
func (params DormantParams) dormant(s *contactState, cutoff int64) bool {
	return s.idleAt <= cutoff && (params.Phase == "" || s.phase == params.Phase) && (params.Owner == "" || s.owner == params.Owner)
}

// QueryDormant answers a page of the dormant contacts, and their count per owner: about now
// one range of the index of the contacts by last activity (and one count of it), about a past
// time from the facts.
func QueryDormant(ctx context.Context, db *projections.DB, t projections.Tables, zone *time.Location, params DormantParams) (DormantAnswer, error) {
	n, cutoff, err := params.check()
	if err != nil {
		return DormantAnswer{}, err
	}
	limit, err := limitOf(params.Limit)
	if err != nil {
		return DormantAnswer{}, err
	}
	after, err := decodeCursor(params.Cursor)
	if err != nil {
		return DormantAnswer{}, err
	}
	answer := DormantAnswer{AsOf: params.AsOf.UTC(), Days: n, IdleSince: timeOf(cutoff), Owners: []OwnerCount{}, Contacts: []DormantContact{}}
	err = ask(ctx, db, t, zone, params.AsOf, func(q *query) error {
		var states []contactState
		if q.now {
			if answer.Owners, answer.Count, err = q.keptDormant(ctx, params, cutoff); err != nil {
				return err
			}
			stmt, args := dormantPage(q.t, params, cutoff, after, limit)
			states, err = q.readStates(ctx, stmt, args...)
		} else {
			states, err = q.statesThen(ctx)
			slices.SortFunc(states, func(a, b contactState) int {
				return cmp.Or(cmp.Compare(a.idleAt, b.idleAt), strings.Compare(a.id, b.id))
			})
			owners := map[string]int64{}
			for i := range states {
				if params.dormant(&states[i], cutoff) {
					owners[states[i].owner]++
					answer.Count++
				}
			}
			for _, o := range slices.Sorted(maps.Keys(owners)) {
				answer.Owners = append(answer.Owners, OwnerCount{Owner: o, Count: owners[o]})
			}
		}
		if err != nil {
			return err
		}
		for _, s := range states {
			switch {
			case !params.dormant(&s, cutoff), after != nil && (s.idleAt < after.V || s.idleAt == after.V && s.id <= after.ID):
				continue
			}
			answer.Contacts = append(answer.Contacts, DormantContact{ContactID: s.id, Name: s.name, Owner: s.owner, Phase: s.phase,
				LastActivity: s.idleKind, LastActivityAt: timeOf(s.idleAt), DaysIdle: days(q.asOf - s.idleAt)})
			if len(answer.Contacts) > limit {
				break
			}
		}
		return nil
	})
	if len(answer.Contacts) > limit {
		answer.Contacts = answer.Contacts[:limit]
		last := answer.Contacts[limit-1]
		answer.NextCursor = paging.Encode(cursor{V: micros(last.LastActivityAt), ID: last.ContactID})
	}
	return answer, err
}
