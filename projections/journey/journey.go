// Package journey is the journey map read model (projection "journey"): per contact, the
// ordered visits of lifecycle phases with the touchpoints of each visit; over a cohort, for
// each phase (or each of the five journey stages) how many contacts entered and advanced, how
// long they stayed, the transition matrix and the touchpoint mix.
//
// A visit is one stay of a contact in a phase, from the event that entered it (creation for the
// first visit in lead, a phase change otherwise) to the phase change that left it. Exits (lost,
// churned) are visits too, so a win-back shows as the visit of the exit being left. Keeping the
// visits with their times lets every question be answered as of any business time T: a visit
// exists at T when it was entered at or before T, and is closed at T when it was left at or
// before T.
//
// Beside the visits, the fold keeps the map of every contact, of each cohort, channel, owner
// and segment up to date (see kept.go): a map about now, with none or one of these filters,
// reads a few hundred of those rows instead of every contact's visits.
//
// A duplicate merged into another contact (contact.merged_into) is a contact of its own as of
// every time before the merge occurred, and none from the merge on: a question as of a time at
// or after it counts none of its visits, stays, moves, steps and touchpoints, nor their parts;
// the survivor keeps its own journey. The fold takes the duplicate's whole share out of the
// kept map when the merge arrives.
//
// Tables (prefix from projections.Tables):
//
//	contacts     contact_id, created_at, cohort (YYYY-MM of created_at in the business zone), channel, owner and
//	             segment (current values), last_seq (the seq of the contact's latest visit),
//	             phase_seen and phase_advanced (bit sets over the phases' ranks: entered, and
//	             advanced from), stage_seen and stage_advanced (the same over the journey
//	             stages), stage and stage_since (the stage, or exit, of the current stay in a
//	             stage and when it began), merged_at (the business time of its merge into
//	             another contact, NULL while it is not a merged duplicate)
//	visits       contact_id, seq (1, 2, ... per contact), phase, entered_at, left_at (NULL while
//	             open), next_phase, rule and reason of the phase change that left it (NULL while
//	             open; reason '' when none was given)
//	touchpoints  position (of the event in the global log: its key, so that the rows of a
//	             rebuild are appended, and the order of touchpoints of the same instant),
//	             contact_id, visit_seq (the visit current when it was recorded), touchpoint_id,
//	             kind, phase (as recorded on the event), occurred_at
//	contact_mix  contact_id, phase, kind: touchpoints (moved with the contact when its owner or
//	             segment changes)
//
// The kept map: every row is keyed first by dim and value, the contacts it counts: dim ”
// (value ”) for every contact, 'cohort', 'channel', 'owner' or 'segment' and its value.
// grouping is 'phase' or 'stage', step a phase or journey stage (or exit, for moves):
//
//	steps        dim, value, grouping, step: entered, advanced, closed (stays that ended)
//	moves        dim, value, grouping, from_step, to_step: moves between consecutive stays
//	mix          dim, value, phase, kind: touchpoints
//	stay_bins    dim, value, grouping, step, width (always 100: a day of hundredths of a day,
//	             rounded half up), bin: stays that ended, by length
//	stays        grouping, step, micros, contact_id: stays that ended, by exact length (the
//	             lengths of the day of a rank), once per contact: a question joins its contacts
//	horizon      id (always 1), at: the latest creation, phase change or touchpoint
//
// What each figure is made of, read only when a figure is explained:
//
//	parts        see projections/explain; entity: the contact; figures, grouping 'phase' or
//	             'stage': <grouping>/entered/<step> (the event of the contact's first entry
//	             into the step), <grouping>/advanced/<step> (the event of its first entry
//	             into a later step after a stay in it), <grouping>/stay/<step> (the event
//	             that ended a stay; measure: its length), <grouping>/move/<from>/<to> (the
//	             phase change), mix/<phase>/<kind> (the touchpoint). No part is ever revoked:
//	             a part counts from its event's business time on, and the cohort's filters
//	             (owner and segment as they are now, merged duplicates left out from their
//	             merge on) are those of the contacts table
//
// steps, moves, mix, stay_bins and stays are counted with Add, never read by the fold: a row
// whose counters come back to zero (a contact's share moved away) stays, and the queries
// filter it.
//
// Times are BIGINT microseconds since the Unix epoch, UTC.
package journey

import (
	"time"

	"database/sql"

	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/projections/explain"
	"github.com/eventcrm/crm/projections/horizon"
	"github.com/eventcrm/crm/projections/period"
	"github.com/eventcrm/crm/projections/readmodel"
	"github.com/eventcrm/crm/projections/visits"
)

// Name is the persisted name of the projection.
const Name = "journey"

// Projection returns the journey map: its tables and its fold.
func Projection() *readmodel.Model { return ProjectionIn(time.UTC) }

// ProjectionIn returns the journey map with cohort months (and business dates) taken in the
// business time zone loc: a zone of its own is a version of its own (period.Version).
func ProjectionIn(loc *time.Location) *readmodel.Model { return period.Define(loc, 8, declare) }

// declare declares the tables and the fold of the journey map in the business zone.
func declare(zone *time.Location) readmodel.Spec {
	m := newModel(zone)
	return readmodel.Spec{Name: Name, Fold: m.fold, Tables: []readmodel.AnyTable{m.contacts, m.visits.Table(), m.touchpoints,
		m.contactMix, m.steps, m.moves, m.mix, m.stayBins, m.stays, m.horizon.Table(), m.parts}}
}

// Base names of the tables.
const (
	tableContacts    = "contacts"
	tableTouchpoints = "touchpoints"
	tableContactMix  = "contact_mix"
	tableSteps       = "steps"
	tableMoves       = "moves"
	tableMix         = "mix"
	tableStayBins    = "stay_bins"
	tableStays       = "stays"
	tableParts       = "parts"
)

type contactRow struct {
	contactID                       string
	createdAt                       int64
	cohort, channel, owner, segment string
	lastSeq                         int64
	// bit rank-1 of each phase (stage) entered, and advanced from
	phaseSeen, phaseAdvanced int64
	stageSeen, stageAdvanced int64
	stage                    string
	stageSince               int64
	// mergedAt is when the contact was merged into another; NULL while it was not.
	mergedAt sql.NullInt64
}

// visitRow is a visit with the rule and reason of the phase change that left it.
type visitRow struct {
	visits.Visit
	rule, reason sql.NullString
}

type touchpointRow struct {
	position                  int64
	contactID                 string
	visitSeq                  int64
	touchpointID, kind, phase string
	occurredAt                int64
}

// model holds the declarations of the tables the fold writes.
type model struct {
	contacts    *readmodel.Table[contactRow]
	visits      visits.Visits[visitRow]
	touchpoints *readmodel.Table[touchpointRow]
	contactMix  *readmodel.Table[contactMixRow]
	steps       *readmodel.Table[stepRow]
	moves       *readmodel.Table[moveRow]
	mix         *readmodel.Table[keptMixRow]
	stayBins    *readmodel.Table[stayBinRow]
	stays       *readmodel.Table[stayRow]
	horizon     horizon.Horizon
	parts       *readmodel.Table[explain.Part]
	zone        *time.Location // the business time zone
	groupings   []keptGrouping // the groupings of the kept map, by phase then by stage
}

func newModel(zone *time.Location) *model {
	type (
		c  = contactRow
		v  = visitRow
		tp = touchpointRow
	)
	m := &model{zone: zone}
	m.visits = visits.New(func(r *v) *visits.Visit { return &r.Visit },
		readmodel.NullText("rule", func(r *v) *sql.NullString { return &r.rule }),
		readmodel.NullText("reason", func(r *v) *sql.NullString { return &r.reason }))
	m.contacts = readmodel.NewTable(tableContacts, 1,
		readmodel.Text("contact_id", func(r *c) *string { return &r.contactID }),
		readmodel.BigInt("created_at", func(r *c) *int64 { return &r.createdAt }),
		readmodel.Text("cohort", func(r *c) *string { return &r.cohort }),
		readmodel.Text("channel", func(r *c) *string { return &r.channel }),
		readmodel.Text("owner", func(r *c) *string { return &r.owner }),
		readmodel.Text("segment", func(r *c) *string { return &r.segment }),
		readmodel.Integer("last_seq", func(r *c) *int64 { return &r.lastSeq }),
		readmodel.Integer("phase_seen", func(r *c) *int64 { return &r.phaseSeen }),
		readmodel.Integer("phase_advanced", func(r *c) *int64 { return &r.phaseAdvanced }),
		readmodel.Integer("stage_seen", func(r *c) *int64 { return &r.stageSeen }),
		readmodel.Integer("stage_advanced", func(r *c) *int64 { return &r.stageAdvanced }),
		readmodel.Text("stage", func(r *c) *string { return &r.stage }),
		readmodel.BigInt("stage_since", func(r *c) *int64 { return &r.stageSince }),
		readmodel.NullBigInt("merged_at", func(r *c) *sql.NullInt64 { return &r.mergedAt })).
		Clustered().
		WithIndexes(readmodel.Index{Name: "cohort", Columns: "cohort, channel"}).
		// A phase change reads the contact's current visit after the contact.
		Then(m.visits.Table(), func(r *c) []any { return []any{r.contactID, r.lastSeq} })
	m.touchpoints = readmodel.NewTable(tableTouchpoints, 1,
		readmodel.Position("position", func(r *tp) *int64 { return &r.position }),
		readmodel.Text("contact_id", func(r *tp) *string { return &r.contactID }),
		readmodel.Integer("visit_seq", func(r *tp) *int64 { return &r.visitSeq }),
		readmodel.Text("touchpoint_id", func(r *tp) *string { return &r.touchpointID }),
		readmodel.Text("kind", func(r *tp) *string { return &r.kind }),
		readmodel.Text("phase", func(r *tp) *string { return &r.phase }),
		readmodel.BigInt("occurred_at", func(r *tp) *int64 { return &r.occurredAt })).
		WithIndexes(readmodel.Index{Name: "contact", Columns: "contact_id, visit_seq"})
	m.parts = partsShape().NewTable(tableParts)
	m.declareKept()
	return m
}

// fold folds one event into the rows. Events of other types are ignored.
func (m *model) fold(e *readmodel.Event, rows *readmodel.Rows) error {
	at := e.OccurredAt.UnixMicro()
	switch e.Type {
	case contact.TypeCreated:
		ev, err := readmodel.Decode[contact.Created](e)
		if err != nil {
			return err
		}
		c := contactRow{contactID: ev.ContactID, createdAt: at, cohort: period.MonthOf(e.OccurredAt, m.zone),
			channel: string(ev.Channel), owner: ev.Owner, segment: ev.Segment, lastSeq: 1}
		c = m.keepCreated(rows, e, c, at)
		m.contacts.Upsert(rows, c)
		m.openVisit(rows, ev.ContactID, 1, contact.Lead, at)
		m.horizon.Reach(rows, at)
	case contact.TypeDetailsChanged:
		ev, err := readmodel.Decode[contact.DetailsChanged](e)
		if err != nil {
			return err
		}
		if ev.Segment == nil {
			return nil
		}
		m.readShare(rows, ev.ContactID)
		if c, ok := m.contacts.Get(rows, ev.ContactID); ok && c.segment != *ev.Segment {
			m.keepMoved(rows, c, dimSegment, c.segment, *ev.Segment)
			c.segment = *ev.Segment
			m.contacts.Upsert(rows, c)
		}
	case contact.TypeOwnerChanged:
		ev, err := readmodel.Decode[contact.OwnerChanged](e)
		if err != nil {
			return err
		}
		m.readShare(rows, ev.ContactID)
		if c, ok := m.contacts.Get(rows, ev.ContactID); ok && c.owner != ev.To {
			m.keepMoved(rows, c, dimOwner, c.owner, ev.To)
			c.owner = ev.To
			m.contacts.Upsert(rows, c)
		}
	case contact.TypePhaseChanged:
		ev, err := readmodel.Decode[contact.PhaseChanged](e)
		if err != nil {
			return err
		}
		c, err := m.contact(rows, ev.ContactID)
		if err != nil {
			return err
		}
		v, ok := m.visits.Leave(rows, ev.ContactID, c.lastSeq, ev.To, at, func(v *visitRow) {
			v.rule = sql.NullString{String: string(ev.Rule), Valid: true}
			v.reason = sql.NullString{String: ev.Reason, Valid: true}
		})
		if ok && !c.mergedAt.Valid {
			c = m.keepPhaseChange(rows, e, c, v, ev.To, at)
		}
		c.lastSeq++
		m.openVisit(rows, ev.ContactID, c.lastSeq, ev.To, at)
		m.contacts.Upsert(rows, c)
		m.horizon.Reach(rows, at)
	case contact.TypeTouchpointRecorded:
		ev, err := readmodel.Decode[contact.TouchpointRecorded](e)
		if err != nil {
			return err
		}
		// Read before the contact, whose absence ends the fold: a batch loads both in one
		// round.
		m.contactMix.Get(rows, ev.ContactID, string(ev.Phase), string(ev.Kind))
		c, err := m.contact(rows, ev.ContactID)
		if err != nil {
			return err
		}
		m.touchpoints.Insert(rows, touchpointRow{position: e.Position, contactID: ev.ContactID, visitSeq: c.lastSeq,
			touchpointID: ev.TouchpointID, kind: string(ev.Kind), phase: string(ev.Phase), occurredAt: at})
		m.keepTouchpoint(rows, e, c, string(ev.Phase), string(ev.Kind))
		m.horizon.Reach(rows, at)
	case contact.TypeMergedInto:
		ev, err := readmodel.Decode[contact.MergedInto](e)
		if err != nil {
			return err
		}
		m.readShare(rows, ev.ContactID)
		c, err := m.contact(rows, ev.ContactID)
		if err != nil || c.mergedAt.Valid {
			return err
		}
		m.keepMerged(rows, c)
		c.mergedAt = sql.NullInt64{Int64: at, Valid: true}
		m.contacts.Upsert(rows, c)
		m.horizon.Reach(rows, at)
	}
	return nil
}

// readShare reads what moving the contact's share of the kept map reads (keepMoved), before
// the contact, whose absence or value would end the fold: a batch loads them all in one round
// of loads, where it would otherwise fold the batch once more to find them.
func (m *model) readShare(rows *readmodel.Rows, contactID string) {
	m.visits.Table().Group(rows, contactID)
	m.contactMix.Group(rows, contactID)
}

func (m *model) contact(rows *readmodel.Rows, contactID string) (contactRow, error) {
	c, err := m.contacts.Need(rows, contactID)
	if err != nil {
		return c, err
	}
	return c, nil
}

func (m *model) openVisit(rows *readmodel.Rows, contactID string, seq int64, phase contact.Phase, at int64) {
	m.visits.Enter(rows, visitRow{}, contactID, seq, phase, at)
}
