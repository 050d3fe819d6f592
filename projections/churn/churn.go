// Package churn is the churn points read model (projection "churn_points"): where customers drop
// out. Per lifecycle phase, the contacts whose journey ended there (lost, churned, or dormant as
// of a date) over those that entered it; the deals lost by stage and reason; and, per churn,
// the facts around it (time since won, last NPS, last touchpoint, overdue tasks).
//
// The detail tables keep times, so that any question can be answered as of a business time T,
// and dormancy, which depends on T, is computed at query time only. Beside them the fold keeps
// what a question about now reads (as_of at or after the horizon, the latest business time in
// the tables): the phase counts per cohort and channel, the lost deals per stage, reason and
// currency, and each contact's open phase and last activity; dormancy is then counted from the
// contacts active since the dormancy cutoff only (see query.go).
//
// A duplicate merged into another contact (contact.merged_into) is a contact of its own as of
// every time before the merge occurred, and none from the merge on: a question as of a time at
// or after it counts none of its entries, losses, churns and dormancy, lists none of its churns
// and explains none of them; the survivor keeps its own journey. Its deals are deals still:
// their losses count under its cohort and channel, as in the sales analytics. The fold takes
// the duplicate out of the phase counts when the merge arrives (it is then in no open phase).
//
// Tables (prefix from projections.Tables):
//
//	contacts     contact_id, name (current), created_at, cohort (YYYY-MM of created_at in the business zone),
//	             channel, last_seq (the seq of the contact's latest visit), entered, lost and
//	             churned (bit sets over the phases' ranks: entered, left to lost, left to
//	             churned), open_phase (the phase of the open visit; '' in an exit), open_exited
//	             (1 when the contact was lost or churned from its open phase before),
//	             touched (1 once it has a touchpoint), idle_since (its latest touchpoint, else
//	             its creation), merged_at (the business time of its merge into another
//	             contact, NULL while it is not a merged duplicate)
//	visits       contact_id, seq (1, 2, ... per contact), phase (a lifecycle phase or an exit),
//	             entered_at, left_at and next_phase (NULL while open), position and event_id
//	             (of the event that entered it: an open visit is its part)
//	touchpoints  position (of the event in the global log: the key, so that the rows of a
//	             rebuild are appended), contact_id, occurred_at, event_id
//	surveys      position (the same; it also orders surveys of the same instant), contact_id,
//	             nps, occurred_at, event_id
//	tasks        contact_id, task_id, seq (1, 2, ... per task: each due date it had), due
//	             (YYYY-MM-DD), overdue_at (the start of the day after due in the business
//	             zone: from then on an open task is overdue), scheduled_at, from_at (when it
//	             got this due date: scheduled or rescheduled), until_at (when it stopped
//	             being open with it: rescheduled, done or cancelled; NULL while it is),
//	             position and event_id (of the scheduling event)
//	deal_losses  deal_id, seq (1, 2, ... per deal), contact_id, from_stage, reason, amount,
//	             currency, lost_at, reopened_at (NULL while the deal stays lost), position (of
//	             the loss: the key of its part)
//	phase_counts cohort, channel, phase: entered, lost, churned, exited (distinct contacts, as
//	             in PhaseDropOff), open_visits and open_not_exited (contacts whose open visit is
//	             in the phase, and those of them not lost or churned from it before)
//	lost_deals   cohort, channel (of the deal's contact; '' when unknown), stage, reason,
//	             currency: losses and amount of the losses not reopened (added to, never
//	             read, by the fold: a row back at no losses stays, and the query skips it)
//	horizon      id (always 1), at: the latest creation, visit entered or left, touchpoint,
//	             loss or reopening
//	parts        see projections/explain: what each figure is made of, read only when a
//	             figure is explained. Figures, entity the contact: entered/<phase> (its first
//	             entry), lost/<phase>, churned/<phase>, exited/<phase> (its first change from
//	             the phase to lost, to churned, to either), in/<phase> (each visit of a
//	             lifecycle phase that ended, from entered_at until left_at, written when it
//	             ends: the open visits are read from the visits; dormancy is judged among
//	             them at the question); entity the deal: loss/<stage>/<reason> (each loss,
//	             with its amount, until the deal is reopened)
//
// The facts of a churned customer (its churn, the win before it, the last survey and
// touchpoint, the tasks overdue at it) are explained when asked, from the visits,
// touchpoints, surveys and tasks, each with the event that made it: no part is kept of them.
//
// Times are BIGINT microseconds since the Unix epoch, UTC.
package churn

import (
	"database/sql"
	"fmt"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/domain/deal"
	"github.com/eventcrm/crm/projections/explain"
	"github.com/eventcrm/crm/projections/horizon"
	"github.com/eventcrm/crm/projections/period"
	"github.com/eventcrm/crm/projections/readmodel"
	"github.com/eventcrm/crm/projections/visits"
)

// Name is the persisted name of the projection.
const Name = "churn_points"

// Projection returns the churn points: their tables and their fold.
func Projection() *readmodel.Model { return ProjectionIn(time.UTC) }

// ProjectionIn returns the churn points with cohort months (and business dates) taken in the
// business time zone loc: a zone of its own is a version of its own (period.Version).
func ProjectionIn(loc *time.Location) *readmodel.Model { return period.Define(loc, 8, declare) }

// declare declares the tables and the fold of the churn points in the business zone.
func declare(zone *time.Location) readmodel.Spec {
	m := newModel(zone)
	return readmodel.Spec{Name: Name, Fold: m.fold, Tables: []readmodel.AnyTable{m.contacts, m.visits.Table(),
		m.touchpoints, m.surveys, m.tasks, m.dealLosses, m.phaseCounts, m.lostDeals, m.horizon.Table(), m.parts}}
}

// Base names of the tables.
const (
	tableContacts    = "contacts"
	tableTouchpoints = "touchpoints"
	tableSurveys     = "surveys"
	tableTasks       = "tasks"
	tableDealLosses  = "deal_losses"
	tablePhaseCounts = "phase_counts"
	tableLostDeals   = "lost_deals"
	tableParts       = "parts"
)

type contactRow struct {
	contactID, name string
	createdAt       int64
	cohort, channel string
	lastSeq         int64
	// entered, lost, churned: bit rank-1 of each phase
	entered, lost, churned int64
	openPhase              string
	openExited             int64
	touched, idleSince     int64
	// mergedAt is when the contact was merged into another; NULL while it was not.
	mergedAt sql.NullInt64
}

// phaseCountRow counts the contacts of a cohort and channel in one phase.
type phaseCountRow struct {
	cohort, channel, phase         string
	entered, lost, churned, exited int64
	open, openNotExited            int64
}

// lostDealRow sums the standing losses of a cohort and channel by stage, reason and currency.
type lostDealRow struct {
	cohort, channel, stage, reason, currency string
	count, amount                            int64
}

// visitRow is a visit with the event that entered it (an open visit is its part).
type visitRow struct {
	visits.Visit
	position int64
	eventID  string
}

type touchpointRow struct {
	position   int64
	contactID  string
	occurredAt int64
	eventID    string
}

type surveyRow struct {
	position   int64
	contactID  string
	nps        int64
	occurredAt int64
	eventID    string
}

type taskRow struct {
	contactID, taskID, due string
	seq                    int64
	overdueAt, scheduledAt int64
	fromAt                 int64
	untilAt                sql.NullInt64
	// position and eventID are the scheduling event's.
	position int64
	eventID  string
}

type lossRow struct {
	dealID                       string
	seq                          int64
	contactID, fromStage, reason string
	amount                       int64
	currency                     string
	lostAt                       int64
	reopenedAt                   sql.NullInt64
	position                     int64
}

// model holds the declarations of the tables the fold writes.
type model struct {
	contacts    *readmodel.Table[contactRow]
	visits      visits.Visits[visitRow]
	touchpoints *readmodel.Table[touchpointRow]
	surveys     *readmodel.Table[surveyRow]
	tasks       *readmodel.Table[taskRow]
	dealLosses  *readmodel.Table[lossRow]
	phaseCounts *readmodel.Table[phaseCountRow]
	lostDeals   *readmodel.Table[lostDealRow]
	horizon     horizon.Horizon
	parts       *readmodel.Table[explain.Part]
	zone        *time.Location // the business time zone
}

func newModel(zone *time.Location) *model {
	type (
		c  = contactRow
		v  = visitRow
		tp = touchpointRow
		s  = surveyRow
		tk = taskRow
		l  = lossRow
		pc = phaseCountRow
		ld = lostDealRow
	)
	m := &model{zone: zone}
	m.visits = visits.New(func(r *v) *visits.Visit { return &r.Visit },
		readmodel.BigInt("position", func(r *v) *int64 { return &r.position }),
		readmodel.Text("event_id", func(r *v) *string { return &r.eventID }))
	// The churns in the order they are listed and paged.
	m.visits.Table().WithIndexes(readmodel.Index{Name: "churns", Columns: "left_at, contact_id, seq", Where: "next_phase = 'churned'"})
	m.contacts = readmodel.NewTable(tableContacts, 1,
		readmodel.Text("contact_id", func(r *c) *string { return &r.contactID }),
		readmodel.Text("name", func(r *c) *string { return &r.name }),
		readmodel.BigInt("created_at", func(r *c) *int64 { return &r.createdAt }),
		readmodel.Text("cohort", func(r *c) *string { return &r.cohort }),
		readmodel.Text("channel", func(r *c) *string { return &r.channel }),
		readmodel.Integer("last_seq", func(r *c) *int64 { return &r.lastSeq }),
		readmodel.Integer("entered", func(r *c) *int64 { return &r.entered }),
		readmodel.Integer("lost", func(r *c) *int64 { return &r.lost }),
		readmodel.Integer("churned", func(r *c) *int64 { return &r.churned }),
		readmodel.Text("open_phase", func(r *c) *string { return &r.openPhase }),
		readmodel.Integer("open_exited", func(r *c) *int64 { return &r.openExited }),
		readmodel.Integer("touched", func(r *c) *int64 { return &r.touched }),
		readmodel.BigInt("idle_since", func(r *c) *int64 { return &r.idleSince }),
		readmodel.NullBigInt("merged_at", func(r *c) *sql.NullInt64 { return &r.mergedAt })).
		Clustered().
		WithIndexes(readmodel.Index{Name: "cohort", Columns: "cohort, channel"},
			// Dormancy now: the contacts active since the cutoff, a recent few.
			readmodel.Index{Name: "idle", Columns: "idle_since, open_phase", Where: "open_phase <> ''"}).
		// A phase change reads the contact's current visit after the contact.
		Then(m.visits.Table(), func(r *c) []any { return []any{r.contactID, r.lastSeq} })
	m.touchpoints = readmodel.NewTable(tableTouchpoints, 1,
		readmodel.Position("position", func(r *tp) *int64 { return &r.position }),
		readmodel.Text("contact_id", func(r *tp) *string { return &r.contactID }),
		readmodel.BigInt("occurred_at", func(r *tp) *int64 { return &r.occurredAt }),
		readmodel.Text("event_id", func(r *tp) *string { return &r.eventID })).
		WithIndexes(readmodel.Index{Name: "contact", Columns: "contact_id, occurred_at"})
	m.surveys = readmodel.NewTable(tableSurveys, 1,
		readmodel.Position("position", func(r *s) *int64 { return &r.position }),
		readmodel.Text("contact_id", func(r *s) *string { return &r.contactID }),
		readmodel.Integer("nps", func(r *s) *int64 { return &r.nps }),
		readmodel.BigInt("occurred_at", func(r *s) *int64 { return &r.occurredAt }),
		readmodel.Text("event_id", func(r *s) *string { return &r.eventID })).
		WithIndexes(readmodel.Index{Name: "contact", Columns: "contact_id, occurred_at"})
	m.tasks = readmodel.NewTable(tableTasks, 3,
		readmodel.Text("contact_id", func(r *tk) *string { return &r.contactID }),
		readmodel.Text("task_id", func(r *tk) *string { return &r.taskID }),
		readmodel.Integer("seq", func(r *tk) *int64 { return &r.seq }),
		readmodel.Text("due", func(r *tk) *string { return &r.due }),
		readmodel.BigInt("overdue_at", func(r *tk) *int64 { return &r.overdueAt }),
		readmodel.BigInt("scheduled_at", func(r *tk) *int64 { return &r.scheduledAt }),
		readmodel.BigInt("from_at", func(r *tk) *int64 { return &r.fromAt }),
		readmodel.NullBigInt("until_at", func(r *tk) *sql.NullInt64 { return &r.untilAt }),
		readmodel.BigInt("position", func(r *tk) *int64 { return &r.position }),
		readmodel.Text("event_id", func(r *tk) *string { return &r.eventID }))
	m.dealLosses = readmodel.NewTable(tableDealLosses, 2,
		readmodel.Text("deal_id", func(r *l) *string { return &r.dealID }),
		readmodel.Integer("seq", func(r *l) *int64 { return &r.seq }),
		readmodel.Text("contact_id", func(r *l) *string { return &r.contactID }),
		readmodel.Text("from_stage", func(r *l) *string { return &r.fromStage }),
		readmodel.Text("reason", func(r *l) *string { return &r.reason }),
		readmodel.BigInt("amount", func(r *l) *int64 { return &r.amount }),
		readmodel.Text("currency", func(r *l) *string { return &r.currency }),
		readmodel.BigInt("lost_at", func(r *l) *int64 { return &r.lostAt }),
		readmodel.NullBigInt("reopened_at", func(r *l) *sql.NullInt64 { return &r.reopenedAt }),
		readmodel.BigInt("position", func(r *l) *int64 { return &r.position }))
	m.phaseCounts = readmodel.NewTable(tablePhaseCounts, 3,
		readmodel.Text("cohort", func(r *pc) *string { return &r.cohort }),
		readmodel.Text("channel", func(r *pc) *string { return &r.channel }),
		readmodel.Text("phase", func(r *pc) *string { return &r.phase }),
		readmodel.Integer("entered", func(r *pc) *int64 { return &r.entered }),
		readmodel.Integer("lost", func(r *pc) *int64 { return &r.lost }),
		readmodel.Integer("churned", func(r *pc) *int64 { return &r.churned }),
		readmodel.Integer("exited", func(r *pc) *int64 { return &r.exited }),
		readmodel.Integer("open_visits", func(r *pc) *int64 { return &r.open }),
		readmodel.Integer("open_not_exited", func(r *pc) *int64 { return &r.openNotExited })).
		Clustered()
	m.lostDeals = readmodel.NewTable(tableLostDeals, 5,
		readmodel.Text("cohort", func(r *ld) *string { return &r.cohort }),
		readmodel.Text("channel", func(r *ld) *string { return &r.channel }),
		readmodel.Text("stage", func(r *ld) *string { return &r.stage }),
		readmodel.Text("reason", func(r *ld) *string { return &r.reason }),
		readmodel.Text("currency", func(r *ld) *string { return &r.currency }),
		readmodel.BigInt("losses", func(r *ld) *int64 { return &r.count }),
		readmodel.BigInt("amount", func(r *ld) *int64 { return &r.amount })).
		Clustered()
	m.horizon = horizon.New()
	m.parts = partsShape().NewTable(tableParts)
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
		c := contactRow{contactID: ev.ContactID, name: ev.Name.Display(), createdAt: at,
			cohort: period.MonthOf(e.OccurredAt, m.zone), channel: string(ev.Channel), lastSeq: 1, idleSince: at}
		m.count(rows, contactRow{cohort: c.cohort, channel: c.channel}, enter(c, contact.Lead))
		m.contacts.Upsert(rows, enter(c, contact.Lead))
		m.openVisit(rows, e, ev.ContactID, 1, contact.Lead)
		m.partsEntered(rows, e, c, enter(c, contact.Lead), contact.Lead)
		m.horizon.Reach(rows, at)
	case contact.TypeDetailsChanged:
		ev, err := readmodel.Decode[contact.DetailsChanged](e)
		if err != nil {
			return err
		}
		if ev.Name == nil {
			return nil
		}
		if c, ok := m.contacts.Get(rows, ev.ContactID); ok {
			c.name = ev.Name.Display()
			m.contacts.Upsert(rows, c)
		}
	case contact.TypePhaseChanged:
		ev, err := readmodel.Decode[contact.PhaseChanged](e)
		if err != nil {
			return err
		}
		return m.changePhase(rows, e, ev.ContactID, ev.To)
	case contact.TypeTouchpointRecorded:
		ev, err := readmodel.Decode[contact.TouchpointRecorded](e)
		if err != nil {
			return err
		}
		m.touchpoints.Insert(rows, touchpointRow{position: e.Position, contactID: ev.ContactID, occurredAt: at, eventID: e.ID})
		if c, ok := m.contacts.Get(rows, ev.ContactID); ok {
			if c.touched == 0 || at > c.idleSince {
				c.touched, c.idleSince = 1, at
			}
			m.contacts.Upsert(rows, c)
		}
		m.horizon.Reach(rows, at)
	case contact.TypeSurveyRecorded:
		ev, err := readmodel.Decode[contact.SurveyRecorded](e)
		if err != nil {
			return err
		}
		m.surveys.Insert(rows, surveyRow{position: e.Position, contactID: ev.ContactID, nps: int64(ev.NPS), occurredAt: at, eventID: e.ID})
	case contact.TypeTaskScheduled:
		ev, err := readmodel.Decode[contact.TaskScheduled](e)
		if err != nil {
			return err
		}
		return m.openTask(rows, taskRow{contactID: ev.ContactID, taskID: ev.TaskID, seq: 1, scheduledAt: at,
			position: e.Position, eventID: e.ID}, ev.Due, at)
	case contact.TypeTaskRescheduled:
		ev, err := readmodel.Decode[contact.TaskRescheduled](e)
		if err != nil {
			return err
		}
		if tk, ok := m.closeTask(rows, ev.ContactID, ev.TaskID, at); ok {
			tk.seq++
			return m.openTask(rows, tk, ev.To, at)
		}
	case contact.TypeTaskCompleted:
		ev, err := readmodel.Decode[contact.TaskCompleted](e)
		if err != nil {
			return err
		}
		m.closeTask(rows, ev.ContactID, ev.TaskID, at)
	case contact.TypeTaskCancelled:
		ev, err := readmodel.Decode[contact.TaskCancelled](e)
		if err != nil {
			return err
		}
		m.closeTask(rows, ev.ContactID, ev.TaskID, at)
	case contact.TypeMergedInto:
		ev, err := readmodel.Decode[contact.MergedInto](e)
		if err != nil {
			return err
		}
		c, err := m.contacts.Need(rows, ev.ContactID)
		if err != nil || c.mergedAt.Valid {
			return err
		}
		// Out of every count it was in, and in no open phase any more.
		m.count(rows, c, contactRow{cohort: c.cohort, channel: c.channel})
		c.openPhase, c.openExited = "", 0
		c.mergedAt = sql.NullInt64{Int64: at, Valid: true}
		m.contacts.Upsert(rows, c)
		m.horizon.Reach(rows, at)
	case deal.TypeLost:
		ev, err := readmodel.Decode[deal.Lost](e)
		if err != nil {
			return err
		}
		m.horizon.Reach(rows, at)
		return m.recordLoss(rows, e, ev, at)
	case deal.TypeReopened:
		ev, err := readmodel.Decode[deal.Reopened](e)
		if err != nil {
			return err
		}
		for _, r := range m.dealLosses.Group(rows, ev.DealID) {
			if !r.reopenedAt.Valid {
				r.reopenedAt = sql.NullInt64{Int64: at, Valid: true}
				m.dealLosses.Upsert(rows, r)
				m.addLoss(rows, r, -1)
				m.revoke(rows, r.dealID, figLoss+r.fromStage+"/"+r.reason, r.position, at)
			}
		}
		m.horizon.Reach(rows, at)
	}
	return nil
}

// bit is the bit of a lifecycle phase in a contact's sets; 0 for an exit.
func bit(p contact.Phase) int64 {
	if r := p.Rank(); r > 0 {
		return 1 << (r - 1)
	}
	return 0
}

// enter returns c with its open visit in phase p.
func enter(c contactRow, p contact.Phase) contactRow {
	c.entered |= bit(p)
	c.openPhase, c.openExited = "", 0
	if bit(p) != 0 {
		c.openPhase = string(p)
		if (c.lost|c.churned)&bit(p) != 0 {
			c.openExited = 1
		}
	}
	return c
}

// count adds to the phase counts of the contact's cohort what changed from before to after
// (taken away when after has none of before's: a merged duplicate).
func (m *model) count(rows *readmodel.Rows, before, after contactRow) {
	for _, p := range contact.Phases() {
		b := bit(p)
		d := phaseCountRow{
			entered: flips(before.entered, after.entered, b),
			lost:    flips(before.lost, after.lost, b),
			churned: flips(before.churned, after.churned, b),
			exited:  flips(before.lost|before.churned, after.lost|after.churned, b),
		}
		if before.openPhase == string(p) {
			d.open--
			d.openNotExited -= 1 - before.openExited
		}
		if after.openPhase == string(p) {
			d.open++
			d.openNotExited += 1 - after.openExited
		}
		if d == (phaseCountRow{}) {
			continue
		}
		d.cohort, d.channel, d.phase = after.cohort, after.channel, string(p)
		m.phaseCounts.Add(rows, d)
	}
}

// flips is 1 when bit b is set in after and not in before, -1 the other way round (bits are
// cleared only when a merged duplicate's counts are taken away).
func flips(before, after, b int64) int64 {
	switch {
	case before&b == 0 && after&b != 0:
		return 1
	case before&b != 0 && after&b == 0:
		return -1
	}
	return 0
}

// addLoss adds a standing loss (sign 1) or takes a reopened one away (sign -1) from the lost
// deals of its contact's cohort, without reading them: a row back at no losses stays, and
// the query skips it.
func (m *model) addLoss(rows *readmodel.Rows, l lossRow, sign int64) {
	c, _ := m.contacts.Get(rows, l.contactID)
	m.lostDeals.Add(rows, lostDealRow{cohort: c.cohort, channel: c.channel, stage: l.fromStage, reason: l.reason,
		currency: l.currency, count: sign, amount: sign * l.amount})
}

func (m *model) openVisit(rows *readmodel.Rows, e *readmodel.Event, contactID string, seq int64, phase contact.Phase) {
	m.visits.Enter(rows, visitRow{position: e.Position, eventID: e.ID}, contactID, seq, phase, e.OccurredAt.UnixMicro())
}

func (m *model) changePhase(rows *readmodel.Rows, e *readmodel.Event, contactID string, to contact.Phase) error {
	at := e.OccurredAt.UnixMicro()
	c, err := m.contacts.Need(rows, contactID)
	if err != nil {
		return err
	}
	before := c
	if v, ok := m.visits.Leave(rows, contactID, c.lastSeq, to, at, nil); ok {
		switch to {
		case contact.Lost:
			c.lost |= bit(contact.Phase(v.Phase))
		case contact.Churned:
			c.churned |= bit(contact.Phase(v.Phase))
		}
		m.partsLeft(rows, e, before, c, v)
	}
	c.lastSeq++
	c = enter(c, to)
	if c.mergedAt.Valid {
		// A merged duplicate counts nowhere any more, and is in no open phase.
		c.openPhase, c.openExited = "", 0
	} else {
		m.count(rows, before, c)
	}
	m.openVisit(rows, e, contactID, c.lastSeq, to)
	m.partsEntered(rows, e, before, c, to)
	m.contacts.Upsert(rows, c)
	m.horizon.Reach(rows, at)
	return nil
}

// recordLoss adds the deal's next loss: its seq counts the losses recorded before.
func (m *model) recordLoss(rows *readmodel.Rows, e *readmodel.Event, ev *deal.Lost, at int64) error {
	losses := m.dealLosses.Group(rows, ev.DealID)
	seq := int64(len(losses)) + 1
	for _, r := range losses {
		if r.seq == seq {
			return fmt.Errorf("loss %d of deal %s is recorded already", seq, ev.DealID)
		}
	}
	l := lossRow{dealID: ev.DealID, seq: seq, contactID: ev.ContactID, fromStage: string(ev.FromStage),
		reason: string(ev.Reason), amount: ev.Amount.Amount, currency: ev.Amount.Currency, lostAt: at, position: e.Position}
	m.dealLosses.Upsert(rows, l)
	m.addLoss(rows, l, 1)
	p := m.part(e, l.dealID, figLoss+l.fromStage+"/"+l.reason)
	p.Amount, p.Currency = l.amount, l.currency
	m.parts.Upsert(rows, p)
	return nil
}

// openTask records that tk is open from at with due date due (tk keeps its scheduling event).
func (m *model) openTask(rows *readmodel.Rows, tk taskRow, due domain.Date, at int64) error {
	d, err := time.Parse(time.DateOnly, string(due))
	if err != nil {
		return fmt.Errorf("due date of task %s: %w", tk.taskID, err)
	}
	tk.due, tk.fromAt, tk.untilAt = string(due), at, sql.NullInt64{}
	tk.overdueAt = period.DateStart(d.Year(), d.Month(), d.Day()+1, m.zone).UnixMicro()
	m.tasks.Upsert(rows, tk)
	return nil
}

// closeTask records that the task stops being open with its due date at at (rescheduled,
// done or cancelled) and returns it; false when it is not open.
func (m *model) closeTask(rows *readmodel.Rows, contactID, taskID string, at int64) (taskRow, bool) {
	var open taskRow
	for _, tk := range m.tasks.Group(rows, contactID) {
		if tk.taskID == taskID && !tk.untilAt.Valid {
			open = tk
		}
	}
	if open.taskID == "" {
		return taskRow{}, false
	}
	open.untilAt = sql.NullInt64{Int64: at, Valid: true}
	m.tasks.Upsert(rows, open)
	return open, true
}
