// Package timeline is the customer timeline read model (projection "contact_timeline"): what
// happened with one contact, newest first, for apps. Every event about a contact is one entry
// (touchpoints with their notes, notes, purchases, surveys, tasks, phase changes with rule and
// reason, the events of the contact's deals, owner, account and consent changes, merges),
// with its actor and business time. A merge survivor's timeline also holds the entries of the
// contacts merged into it, each attributed to the contact it was recorded for.
//
// A timeline page is one indexed range read: entries are kept per contact in the order they
// are asked in, (occurred_at, position).
//
// Tables (prefix from projections.Tables):
//
//	entries  position (the event's log position, the key), contact_id (the contact the event is
//	         about; a deal's contact for deal events), occurred_at, kind (touchpoint, note, ...:
//	         see Kinds), event (its persisted type), actor, subject (the task, deal, touchpoint,
//	         purchase, survey or note id; '' when none), title (the task's or deal's title
//	         when the event happened), data (the event's JSON as recorded)
//	deals    deal_id, contact_id, title: the contact and current title of each deal
//	tasks    task_id, contact_id, title, due, status (open, done, cancelled): the current
//	         state of each task, for the entries of its events (overdue is judged per question)
//	members  survivor, member, merged_at: every contact merged into survivor, directly or
//	         through another merge, and when survivor absorbed it
//
// Times are BIGINT microseconds since the Unix epoch, UTC.
package timeline

import (
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/domain/deal"
	"github.com/eventcrm/crm/projections/members"
	"github.com/eventcrm/crm/projections/readmodel"
)

// Name is the persisted name of the projection.
const Name = "contact_timeline"

// Projection returns the timeline: its tables and its fold.
func Projection() *readmodel.Model {
	m := newModel()
	return readmodel.Define(readmodel.Spec{
		Name:    Name,
		Version: 1,
		Tables:  []readmodel.AnyTable{m.entries, m.deals, m.tasks, m.members.Declared()},
		Fold:    m.fold,
	})
}

// Base names of the tables.
const (
	tableEntries = "entries"
	tableDeals   = "deals"
	tableTasks   = "tasks"
)

// Kinds of entries, the values of ?types=.
const (
	KindContact    = "contact"    // created, details changed
	KindTouchpoint = "touchpoint" // with its note
	KindNote       = "note"
	KindPurchase   = "purchase"
	KindSurvey     = "survey"
	KindTask       = "task"    // scheduled, rescheduled, reassigned, done, cancelled
	KindPhase      = "phase"   // with rule and reason
	KindDeal       = "deal"    // opened, moved, edited, won, lost, reopened
	KindOwner      = "owner"   // the contact's owner changed
	KindAccount    = "account" // linked, moved, unlinked
	KindConsent    = "consent" // opted out of a channel
	KindMerge      = "merge"   // merged into another contact, or absorbed a duplicate
)

// Kinds lists every kind of entry.
func Kinds() []string {
	return []string{KindContact, KindTouchpoint, KindNote, KindPurchase, KindSurvey, KindTask,
		KindPhase, KindDeal, KindOwner, KindAccount, KindConsent, KindMerge}
}

// Task statuses.
const (
	StatusOpen      = "open"
	StatusDone      = "done"
	StatusCancelled = "cancelled"
)

type entryRow struct {
	position   int64
	contactID  string
	occurredAt int64
	kind       string
	event      string
	actor      string
	subject    string
	title      string
	data       string
}

type dealRow struct {
	dealID, contactID, title string
}

type taskRow struct {
	taskID, contactID, title, due, status string
}

// model holds the declarations of the tables the fold writes.
type model struct {
	entries *readmodel.Table[entryRow]
	deals   *readmodel.Table[dealRow]
	tasks   *readmodel.Table[taskRow]
	members *members.Table
}

func newModel() *model {
	type (
		e = entryRow
		d = dealRow
		t = taskRow
	)
	m := &model{}
	m.entries = readmodel.NewTable(tableEntries, 1,
		readmodel.Position("position", func(r *e) *int64 { return &r.position }),
		readmodel.Text("contact_id", func(r *e) *string { return &r.contactID }),
		readmodel.BigInt("occurred_at", func(r *e) *int64 { return &r.occurredAt }),
		readmodel.Text("kind", func(r *e) *string { return &r.kind }),
		readmodel.Text("event", func(r *e) *string { return &r.event }),
		readmodel.Text("actor", func(r *e) *string { return &r.actor }),
		readmodel.Text("subject", func(r *e) *string { return &r.subject }),
		readmodel.Text("title", func(r *e) *string { return &r.title }),
		readmodel.Text("data", func(r *e) *string { return &r.data })).
		// A page of one contact's timeline, newest first: one range of this index.
		WithIndexes(readmodel.Index{Name: "contact", Columns: "contact_id, occurred_at, position"})
	m.deals = readmodel.NewTable(tableDeals, 1,
		readmodel.Text("deal_id", func(r *d) *string { return &r.dealID }),
		readmodel.Text("contact_id", func(r *d) *string { return &r.contactID }),
		readmodel.Text("title", func(r *d) *string { return &r.title }))
	m.tasks = readmodel.NewTable(tableTasks, 1,
		readmodel.Text("task_id", func(r *t) *string { return &r.taskID }),
		readmodel.Text("contact_id", func(r *t) *string { return &r.contactID }),
		readmodel.Text("title", func(r *t) *string { return &r.title }),
		readmodel.Text("due", func(r *t) *string { return &r.due }),
		readmodel.Text("status", func(r *t) *string { return &r.status }))
	m.members = members.NewTable()
	return m
}

// fold folds one event into the rows: one entry per event about a contact, and the deal, task
// and merge rows the entries need. Events of other types are ignored.
func (m *model) fold(e *readmodel.Event, rows *readmodel.Rows) error {
	switch {
	case isTaskEvent(e.Type):
		return m.foldTask(e, rows)
	case isDealEvent(e.Type):
		return m.foldDeal(e, rows)
	}
	kind, ok := contactKinds[e.Type]
	if !ok {
		return nil
	}
	ev, err := readmodel.Decode[contactEvent](e)
	if err != nil {
		return err
	}
	m.add(rows, e, kind, ev.ContactID, ev.subject(), "")
	if e.Type == contact.TypeDuplicateAbsorbed {
		m.members.Absorb(rows, ev.ContactID, ev.DuplicateID, e.OccurredAt.UnixMicro())
	}
	return nil
}

// contactKinds are the kinds of the contact events other than the tasks'.
var contactKinds = map[string]string{
	contact.TypeCreated:            KindContact,
	contact.TypeDetailsChanged:     KindContact,
	contact.TypeTouchpointRecorded: KindTouchpoint,
	contact.TypeNoteAdded:          KindNote,
	contact.TypePurchaseRecorded:   KindPurchase,
	contact.TypeSurveyRecorded:     KindSurvey,
	contact.TypePhaseChanged:       KindPhase,
	contact.TypeOwnerChanged:       KindOwner,
	contact.TypeAccountLinked:      KindAccount,
	contact.TypeAccountUnlinked:    KindAccount,
	contact.TypeOptedOut:           KindConsent,
	contact.TypeMergedInto:         KindMerge,
	contact.TypeDuplicateAbsorbed:  KindMerge,
}

// contactEvent holds the fields of the contact events that the entries need: the contact and
// the id of what the event recorded.
type contactEvent struct {
	ContactID    string `json:"contact_id"`
	TouchpointID string `json:"touchpoint_id"`
	NoteID       string `json:"note_id"`
	PurchaseID   string `json:"purchase_id"`
	SurveyID     string `json:"survey_id"`
	DuplicateID  string `json:"duplicate_id"`
}

func (ev *contactEvent) subject() string {
	for _, id := range []string{ev.TouchpointID, ev.NoteID, ev.PurchaseID, ev.SurveyID} {
		if id != "" {
			return id
		}
	}
	return ""
}

// add records the entry of event e.
func (m *model) add(rows *readmodel.Rows, e *readmodel.Event, kind, contactID, subject, title string) {
	m.entries.Insert(rows, entryRow{position: e.Position, contactID: contactID, occurredAt: e.OccurredAt.UnixMicro(),
		kind: kind, event: e.Type, actor: e.Actor, subject: subject, title: title, data: string(e.Data())})
}

func isTaskEvent(t string) bool {
	switch t {
	case contact.TypeTaskScheduled, contact.TypeTaskCompleted, contact.TypeTaskRescheduled,
		contact.TypeTaskReassigned, contact.TypeTaskCancelled:
		return true
	}
	return false
}

// taskEvent holds the fields of the task events the fold reads.
type taskEvent struct {
	ContactID string `json:"contact_id"`
	TaskID    string `json:"task_id"`
	Title     string `json:"title"`
	Due       string `json:"due"`
	To        string `json:"to"`
}

// foldTask keeps the task's current state and records the entry with its title.
func (m *model) foldTask(e *readmodel.Event, rows *readmodel.Rows) error {
	ev, err := readmodel.Decode[taskEvent](e)
	if err != nil {
		return err
	}
	if e.Type == contact.TypeTaskScheduled {
		m.tasks.Upsert(rows, taskRow{taskID: ev.TaskID, contactID: ev.ContactID, title: ev.Title, due: ev.Due, status: StatusOpen})
		m.add(rows, e, KindTask, ev.ContactID, ev.TaskID, ev.Title)
		return nil
	}
	t, err := m.tasks.Need(rows, ev.TaskID)
	if err != nil {
		return err
	}
	switch e.Type {
	case contact.TypeTaskCompleted:
		t.status = StatusDone
	case contact.TypeTaskCancelled:
		t.status = StatusCancelled
	case contact.TypeTaskRescheduled:
		t.due = ev.To
	}
	m.tasks.Upsert(rows, t)
	m.add(rows, e, KindTask, t.contactID, t.taskID, t.title)
	return nil
}

func isDealEvent(t string) bool {
	switch t {
	case deal.TypeOpened, deal.TypeStageChanged, deal.TypeWon, deal.TypeLost, deal.TypeReopened,
		deal.TypeTitleChanged, deal.TypeAmountChanged, deal.TypeExpectedCloseChanged, deal.TypeOwnerChanged:
		return true
	}
	return false
}

// dealEvent holds the fields of the deal events the fold reads.
type dealEvent struct {
	DealID    string `json:"deal_id"`
	ContactID string `json:"contact_id"`
	Title     string `json:"title"`
}

// foldDeal records a deal's event on its contact's timeline.
func (m *model) foldDeal(e *readmodel.Event, rows *readmodel.Rows) error {
	ev, err := readmodel.Decode[dealEvent](e)
	if err != nil {
		return err
	}
	if e.Type == deal.TypeOpened {
		m.deals.Upsert(rows, dealRow{dealID: ev.DealID, contactID: ev.ContactID, title: ev.Title})
		m.add(rows, e, KindDeal, ev.ContactID, ev.DealID, ev.Title)
		return nil
	}
	d, err := m.deals.Need(rows, ev.DealID)
	if err != nil {
		return err
	}
	if e.Type == deal.TypeTitleChanged {
		tc, err := readmodel.Decode[deal.TitleChanged](e)
		if err != nil {
			return err
		}
		d.title = tc.To
		m.deals.Upsert(rows, d)
	}
	m.add(rows, e, KindDeal, d.contactID, d.dealID, d.title)
	return nil
}
