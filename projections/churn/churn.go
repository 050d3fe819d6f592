// Package churn is the churn points read model (projection "churn_points"): where customers drop
// out. Per lifecycle phase, the contacts whose journey ended there (lost, churned, or dormant as
// of a date) over those that entered it; the deals lost by stage and reason; and, per churn,
// the facts around it (time since won, last NPS, last touchpoint, overdue tasks).
//
// Every table keeps times, so that any question can be answered as of a business time T, and
// dormancy, which depends on T, is computed at query time only.
//
// Tables (prefix from projections.Tables):
//
//	contacts     contact_id, name (current), created_at, cohort (YYYY-MM of created_at, UTC),
//	             channel, last_seq (the seq of the contact's latest visit)
//	visits       contact_id, seq (1, 2, ... per contact), phase (a lifecycle phase or an exit),
//	             entered_at, left_at and next_phase (NULL while open)
//	touchpoints  position (of the event in the global log: the key, so that the rows of a
//	             rebuild are appended), contact_id, occurred_at
//	surveys      position (the same; it also orders surveys of the same instant), contact_id,
//	             nps, occurred_at
//	tasks        contact_id, task_id, due (YYYY-MM-DD), overdue_at (the start of the day after
//	             due, UTC: from then on an open task is overdue), scheduled_at, completed_at
//	             (NULL while open)
//	deal_losses  deal_id, seq (1, 2, ... per deal), contact_id, from_stage, reason, amount,
//	             currency, lost_at, reopened_at (NULL while the deal stays lost)
//
// Times are BIGINT microseconds since the Unix epoch, UTC.
package churn

import (
	"database/sql"
	"fmt"
	"time"

	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/domain/deal"
	"github.com/eventcrm/crm/projections/readmodel"
)

// Name is the persisted name of the projection.
const Name = "churn_points"

// Projection returns the churn points: their tables and their fold.
func Projection() *readmodel.Model {
	m := newModel()
	return readmodel.Define(readmodel.Spec{
		Name:    Name,
		Version: 2,
		Tables:  []readmodel.AnyTable{m.contacts, m.visits, m.touchpoints, m.surveys, m.tasks, m.dealLosses},
		Fold:    m.fold,
	})
}

// Base names of the tables.
const (
	tableContacts    = "contacts"
	tableVisits      = "visits"
	tableTouchpoints = "touchpoints"
	tableSurveys     = "surveys"
	tableTasks       = "tasks"
	tableDealLosses  = "deal_losses"
)

type contactRow struct {
	contactID, name string
	createdAt       int64
	cohort, channel string
	lastSeq         int64
}

type visitRow struct {
	contactID string
	seq       int64
	phase     string
	enteredAt int64
	leftAt    sql.NullInt64
	next      sql.NullString
}

type touchpointRow struct {
	position   int64
	contactID  string
	occurredAt int64
}

type surveyRow struct {
	position   int64
	contactID  string
	nps        int64
	occurredAt int64
}

type taskRow struct {
	contactID, taskID, due string
	overdueAt, scheduledAt int64
	completedAt            sql.NullInt64
}

type lossRow struct {
	dealID                       string
	seq                          int64
	contactID, fromStage, reason string
	amount                       int64
	currency                     string
	lostAt                       int64
	reopenedAt                   sql.NullInt64
}

// model holds the declarations of the tables the fold writes.
type model struct {
	contacts    *readmodel.Table[contactRow]
	visits      *readmodel.Table[visitRow]
	touchpoints *readmodel.Table[touchpointRow]
	surveys     *readmodel.Table[surveyRow]
	tasks       *readmodel.Table[taskRow]
	dealLosses  *readmodel.Table[lossRow]
}

func newModel() *model {
	type (
		c  = contactRow
		v  = visitRow
		tp = touchpointRow
		s  = surveyRow
		tk = taskRow
		l  = lossRow
	)
	m := &model{}
	m.visits = readmodel.NewTable(tableVisits, 2,
		readmodel.Text("contact_id", func(r *v) *string { return &r.contactID }),
		readmodel.Integer("seq", func(r *v) *int64 { return &r.seq }),
		readmodel.Text("phase", func(r *v) *string { return &r.phase }),
		readmodel.BigInt("entered_at", func(r *v) *int64 { return &r.enteredAt }),
		readmodel.NullBigInt("left_at", func(r *v) *sql.NullInt64 { return &r.leftAt }),
		readmodel.NullText("next_phase", func(r *v) *sql.NullString { return &r.next })).
		Clustered()
	m.contacts = readmodel.NewTable(tableContacts, 1,
		readmodel.Text("contact_id", func(r *c) *string { return &r.contactID }),
		readmodel.Text("name", func(r *c) *string { return &r.name }),
		readmodel.BigInt("created_at", func(r *c) *int64 { return &r.createdAt }),
		readmodel.Text("cohort", func(r *c) *string { return &r.cohort }),
		readmodel.Text("channel", func(r *c) *string { return &r.channel }),
		readmodel.Integer("last_seq", func(r *c) *int64 { return &r.lastSeq })).
		Clustered().
		WithIndexes(readmodel.Index{Name: "cohort", Columns: "cohort, channel"}).
		// A phase change reads the contact's current visit after the contact.
		Then(m.visits, func(r *c) []any { return []any{r.contactID, r.lastSeq} })
	m.touchpoints = readmodel.NewTable(tableTouchpoints, 1,
		readmodel.Position("position", func(r *tp) *int64 { return &r.position }),
		readmodel.Text("contact_id", func(r *tp) *string { return &r.contactID }),
		readmodel.BigInt("occurred_at", func(r *tp) *int64 { return &r.occurredAt })).
		WithIndexes(readmodel.Index{Name: "contact", Columns: "contact_id, occurred_at"})
	m.surveys = readmodel.NewTable(tableSurveys, 1,
		readmodel.Position("position", func(r *s) *int64 { return &r.position }),
		readmodel.Text("contact_id", func(r *s) *string { return &r.contactID }),
		readmodel.Integer("nps", func(r *s) *int64 { return &r.nps }),
		readmodel.BigInt("occurred_at", func(r *s) *int64 { return &r.occurredAt })).
		WithIndexes(readmodel.Index{Name: "contact", Columns: "contact_id, occurred_at"})
	m.tasks = readmodel.NewTable(tableTasks, 2,
		readmodel.Text("contact_id", func(r *tk) *string { return &r.contactID }),
		readmodel.Text("task_id", func(r *tk) *string { return &r.taskID }),
		readmodel.Text("due", func(r *tk) *string { return &r.due }),
		readmodel.BigInt("overdue_at", func(r *tk) *int64 { return &r.overdueAt }),
		readmodel.BigInt("scheduled_at", func(r *tk) *int64 { return &r.scheduledAt }),
		readmodel.NullBigInt("completed_at", func(r *tk) *sql.NullInt64 { return &r.completedAt }))
	m.dealLosses = readmodel.NewTable(tableDealLosses, 2,
		readmodel.Text("deal_id", func(r *l) *string { return &r.dealID }),
		readmodel.Integer("seq", func(r *l) *int64 { return &r.seq }),
		readmodel.Text("contact_id", func(r *l) *string { return &r.contactID }),
		readmodel.Text("from_stage", func(r *l) *string { return &r.fromStage }),
		readmodel.Text("reason", func(r *l) *string { return &r.reason }),
		readmodel.BigInt("amount", func(r *l) *int64 { return &r.amount }),
		readmodel.Text("currency", func(r *l) *string { return &r.currency }),
		readmodel.BigInt("lost_at", func(r *l) *int64 { return &r.lostAt }),
		readmodel.NullBigInt("reopened_at", func(r *l) *sql.NullInt64 { return &r.reopenedAt }))
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
		m.contacts.Upsert(rows, contactRow{contactID: ev.ContactID, name: ev.Name, createdAt: at,
			cohort: e.OccurredAt.UTC().Format(CohortLayout), channel: string(ev.Channel), lastSeq: 1})
		m.openVisit(rows, ev.ContactID, 1, contact.Lead, at)
	case contact.TypeDetailsChanged:
		ev, err := readmodel.Decode[contact.DetailsChanged](e)
		if err != nil {
			return err
		}
		if ev.Name == nil {
			return nil
		}
		if c, ok := m.contacts.Get(rows, ev.ContactID); ok {
			c.name = *ev.Name
			m.contacts.Upsert(rows, c)
		}
	case contact.TypePhaseChanged:
		ev, err := readmodel.Decode[contact.PhaseChanged](e)
		if err != nil {
			return err
		}
		return m.changePhase(rows, ev.ContactID, ev.To, at)
	case contact.TypeTouchpointRecorded:
		ev, err := readmodel.Decode[contact.TouchpointRecorded](e)
		if err != nil {
			return err
		}
		m.touchpoints.Insert(rows, touchpointRow{position: e.Position, contactID: ev.ContactID, occurredAt: at})
	case contact.TypeSurveyRecorded:
		ev, err := readmodel.Decode[contact.SurveyRecorded](e)
		if err != nil {
			return err
		}
		m.surveys.Insert(rows, surveyRow{position: e.Position, contactID: ev.ContactID, nps: int64(ev.NPS), occurredAt: at})
	case contact.TypeTaskScheduled:
		ev, err := readmodel.Decode[contact.TaskScheduled](e)
		if err != nil {
			return err
		}
		due, err := time.Parse(time.DateOnly, string(ev.Due))
		if err != nil {
			return fmt.Errorf("due date of task %s: %w", ev.TaskID, err)
		}
		m.tasks.Upsert(rows, taskRow{contactID: ev.ContactID, taskID: ev.TaskID, due: string(ev.Due),
			overdueAt: due.AddDate(0, 0, 1).UnixMicro(), scheduledAt: at})
	case contact.TypeTaskCompleted:
		ev, err := readmodel.Decode[contact.TaskCompleted](e)
		if err != nil {
			return err
		}
		if tk, ok := m.tasks.Get(rows, ev.ContactID, ev.TaskID); ok {
			tk.completedAt = sql.NullInt64{Int64: at, Valid: true}
			m.tasks.Upsert(rows, tk)
		}
	case deal.TypeLost:
		ev, err := readmodel.Decode[deal.Lost](e)
		if err != nil {
			return err
		}
		return m.recordLoss(rows, ev, at)
	case deal.TypeReopened:
		ev, err := readmodel.Decode[deal.Reopened](e)
		if err != nil {
			return err
		}
		for _, r := range m.dealLosses.Group(rows, ev.DealID) {
			if !r.reopenedAt.Valid {
				r.reopenedAt = sql.NullInt64{Int64: at, Valid: true}
				m.dealLosses.Upsert(rows, r)
			}
		}
	}
	return nil
}

func (m *model) openVisit(rows *readmodel.Rows, contactID string, seq int64, phase contact.Phase, at int64) {
	m.visits.Upsert(rows, visitRow{contactID: contactID, seq: seq, phase: string(phase), enteredAt: at})
}

func (m *model) changePhase(rows *readmodel.Rows, contactID string, to contact.Phase, at int64) error {
	c, ok := m.contacts.Get(rows, contactID)
	if !ok {
		return fmt.Errorf("contact %s was not created", contactID)
	}
	if v, ok := m.visits.Get(rows, contactID, c.lastSeq); ok {
		v.leftAt = sql.NullInt64{Int64: at, Valid: true}
		v.next = sql.NullString{String: string(to), Valid: true}
		m.visits.Upsert(rows, v)
	}
	c.lastSeq++
	m.openVisit(rows, contactID, c.lastSeq, to, at)
	m.contacts.Upsert(rows, c)
	return nil
}

// recordLoss adds the deal's next loss: its seq counts the losses recorded before.
func (m *model) recordLoss(rows *readmodel.Rows, ev *deal.Lost, at int64) error {
	losses := m.dealLosses.Group(rows, ev.DealID)
	seq := int64(len(losses)) + 1
	for _, r := range losses {
		if r.seq == seq {
			return fmt.Errorf("loss %d of deal %s is recorded already", seq, ev.DealID)
		}
	}
	m.dealLosses.Upsert(rows, lossRow{dealID: ev.DealID, seq: seq, contactID: ev.ContactID, fromStage: string(ev.FromStage),
		reason: string(ev.Reason), amount: ev.Amount.Amount, currency: ev.Amount.Currency, lostAt: at})
	return nil
}
