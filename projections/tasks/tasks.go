// Package tasks is the tasks read model (projection "tasks"): the follow-up tasks of every
// contact, by assignee, contact, status and due date, as of any business time, with counts
// per assignee.
//
// Each task is kept as the states it went through: scheduled (open), every reschedule or
// reassignment (open again, with the new due date or assignee), then done or cancelled, each
// from the business time of the event that started it until the next one. So the question
// "as of D" reads the state that contains D: whom the task was assigned to then, its due date
// then, and whether it was done or cancelled by D. Overdue is never stored: a task open at D
// is overdue when its due date is before D's business date (contact.Overdue).
//
// The counts per assignee of open, done and cancelled tasks now are kept by the fold, and so
// are the open tasks now per assignee and due date: overdue depends on the time asked about,
// and is the sum of the latter over the due dates before its business date, a row per date
// rather than a row per task.
//
// Tables (prefix from projections.Tables):
//
//	tasks    task_id, contact_id (the contact it was scheduled for), title, last_seq (its
//	         current state)
//	states   task_id, seq (1, 2, ... per task), contact_id, assignee, due, status (open, done,
//	         cancelled), from_at, to_at (NULL for the current state; done and cancelled are
//	         final), reason (a cancellation's)
//	counts   assignee, open, done, cancelled: the current states per assignee
//	due_counts  assignee, due, open: the tasks open now per assignee and due date (rows
//	         that came back to 0 stay)
//	members  survivor, member, merged_at: every contact merged into survivor, directly or
//	         through another merge, whose tasks count for the survivor
//
// Times are BIGINT microseconds since the Unix epoch, UTC; due dates are YYYY-MM-DD texts.
package tasks

import (
	"database/sql"
	"fmt"

	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/projections/members"
	"github.com/eventcrm/crm/projections/readmodel"
)

// Name is the persisted name of the projection.
const Name = "tasks"

// Projection returns the tasks read model: its tables and its fold.
func Projection() *readmodel.Model {
	m := newModel()
	return readmodel.Define(readmodel.Spec{
		Name: Name,
		// 2: the open tasks counted per due date, and an index of the open tasks by due date.
		Version: 2,
		Tables:  []readmodel.AnyTable{m.tasks, m.states, m.counts, m.dueCounts, m.members.Declared()},
		Fold:    m.fold,
	})
}

// Base names of the tables.
const (
	tableTasks  = "tasks"
	tableStates = "states"
	tableCounts = "counts"
	tableDue    = "due_counts"
)

// Statuses of a task.
const (
	StatusOpen      = "open"
	StatusDone      = "done"
	StatusCancelled = "cancelled"
	// StatusOverdue is asked for, never stored: open, and due before the business date.
	StatusOverdue = "overdue"
)

type taskRow struct {
	taskID, contactID, title string
	lastSeq                  int64
}

type stateRow struct {
	taskID                           string
	seq                              int64
	contactID, assignee, due, status string
	fromAt                           int64
	toAt                             sql.NullInt64
	reason                           string
}

type countRow struct {
	assignee              string
	open, done, cancelled int64
}

type dueRow struct {
	assignee, due string
	open          int64
}

// model holds the declarations of the tables the fold writes.
type model struct {
	tasks     *readmodel.Table[taskRow]
	states    *readmodel.Table[stateRow]
	counts    *readmodel.Table[countRow]
	dueCounts *readmodel.Table[dueRow]
	members   *members.Table
}

func newModel() *model {
	type (
		t = taskRow
		s = stateRow
		c = countRow
		d = dueRow
	)
	m := &model{}
	m.states = readmodel.NewTable(tableStates, 2,
		readmodel.Text("task_id", func(r *s) *string { return &r.taskID }),
		readmodel.Integer("seq", func(r *s) *int64 { return &r.seq }),
		readmodel.Text("contact_id", func(r *s) *string { return &r.contactID }),
		readmodel.Text("assignee", func(r *s) *string { return &r.assignee }),
		readmodel.Text("due", func(r *s) *string { return &r.due }),
		readmodel.Text("status", func(r *s) *string { return &r.status }),
		readmodel.BigInt("from_at", func(r *s) *int64 { return &r.fromAt }),
		readmodel.NullBigInt("to_at", func(r *s) *sql.NullInt64 { return &r.toAt }),
		readmodel.Text("reason", func(r *s) *string { return &r.reason })).
		WithIndexes(
			// Overdue now per assignee, and one assignee's open tasks by due date.
			readmodel.Index{Name: "open_due", Columns: "assignee, due, task_id", Where: "to_at IS NULL AND status = 'open'"},
			// Every task now, by due date.
			readmodel.Index{Name: "current_due", Columns: "due, task_id", Where: "to_at IS NULL"},
			// The overdue tasks now, by due date: the current states of tasks done or
			// cancelled long ago, most of the tasks, are not in it.
			readmodel.Index{Name: "open_by_due", Columns: "due, task_id", Where: "to_at IS NULL AND status = 'open'"},
			readmodel.Index{Name: "contact", Columns: "contact_id"},
			// The latest business time (is the question about now?), and the states of a past D.
			readmodel.Index{Name: "from", Columns: "from_at"},
			readmodel.Index{Name: "assignee_from", Columns: "assignee, from_at"},
		)
	m.tasks = readmodel.NewTable(tableTasks, 1,
		readmodel.Text("task_id", func(r *t) *string { return &r.taskID }),
		readmodel.Text("contact_id", func(r *t) *string { return &r.contactID }),
		readmodel.Text("title", func(r *t) *string { return &r.title }),
		readmodel.Integer("last_seq", func(r *t) *int64 { return &r.lastSeq })).
		// Every change reads the task's current state after the task.
		Then(m.states, func(r *t) []any { return []any{r.taskID, r.lastSeq} })
	m.counts = readmodel.NewTable(tableCounts, 1,
		readmodel.Text("assignee", func(r *c) *string { return &r.assignee }),
		readmodel.Integer("open", func(r *c) *int64 { return &r.open }),
		readmodel.Integer("done", func(r *c) *int64 { return &r.done }),
		readmodel.Integer("cancelled", func(r *c) *int64 { return &r.cancelled }))
	m.dueCounts = readmodel.NewTable(tableDue, 2,
		readmodel.Text("assignee", func(r *d) *string { return &r.assignee }),
		readmodel.Text("due", func(r *d) *string { return &r.due }),
		readmodel.Integer("open", func(r *d) *int64 { return &r.open })).
		Clustered()
	m.members = members.NewTable()
	return m
}

// fold folds one event into the rows. Events of other types are ignored.
func (m *model) fold(e *readmodel.Event, rows *readmodel.Rows) error {
	at := e.OccurredAt.UnixMicro()
	switch e.Type {
	case contact.TypeTaskScheduled:
		ev, err := readmodel.Decode[contact.TaskScheduled](e)
		if err != nil {
			return err
		}
		m.tasks.Upsert(rows, taskRow{taskID: ev.TaskID, contactID: ev.ContactID, title: ev.Title, lastSeq: 1})
		m.states.Upsert(rows, stateRow{taskID: ev.TaskID, seq: 1, contactID: ev.ContactID, assignee: ev.Assignee,
			due: string(ev.Due), status: StatusOpen, fromAt: at})
		m.count(rows, ev.Assignee, string(ev.Due), StatusOpen, 1)
	case contact.TypeTaskRescheduled:
		ev, err := readmodel.Decode[contact.TaskRescheduled](e)
		if err != nil {
			return err
		}
		return m.change(rows, ev.TaskID, at, func(s *stateRow) { s.due = string(ev.To) })
	case contact.TypeTaskReassigned:
		ev, err := readmodel.Decode[contact.TaskReassigned](e)
		if err != nil {
			return err
		}
		return m.change(rows, ev.TaskID, at, func(s *stateRow) { s.assignee = ev.To })
	case contact.TypeTaskCompleted:
		ev, err := readmodel.Decode[contact.TaskCompleted](e)
		if err != nil {
			return err
		}
		return m.change(rows, ev.TaskID, at, func(s *stateRow) { s.status = StatusDone })
	case contact.TypeTaskCancelled:
		ev, err := readmodel.Decode[contact.TaskCancelled](e)
		if err != nil {
			return err
		}
		return m.change(rows, ev.TaskID, at, func(s *stateRow) { s.status, s.reason = StatusCancelled, ev.Reason })
	case contact.TypeDuplicateAbsorbed:
		ev, err := readmodel.Decode[contact.DuplicateAbsorbed](e)
		if err != nil {
			return err
		}
		m.members.Absorb(rows, ev.ContactID, ev.DuplicateID, at)
	}
	return nil
}

// change ends the open task's current state at at and starts the next one, as edit makes it,
// moving the task between the counts.
func (m *model) change(rows *readmodel.Rows, taskID string, at int64, edit func(*stateRow)) error {
	t, err := m.tasks.Need(rows, taskID)
	if err != nil {
		return err
	}
	cur, ok := m.states.Get(rows, taskID, t.lastSeq)
	if !ok || cur.status != StatusOpen {
		return fmt.Errorf("task %s is not open", taskID)
	}
	next := cur
	cur.toAt = sql.NullInt64{Int64: at, Valid: true}
	m.states.Upsert(rows, cur)
	t.lastSeq++
	next.seq, next.fromAt = t.lastSeq, at
	edit(&next)
	m.states.Upsert(rows, next)
	m.tasks.Upsert(rows, t)
	m.count(rows, cur.assignee, cur.due, cur.status, -1)
	m.count(rows, next.assignee, next.due, next.status, 1)
	return nil
}

// count adds delta to the assignee's count of status, and to the open tasks of the assignee
// due on due.
func (m *model) count(rows *readmodel.Rows, assignee, due, status string, delta int64) {
	if status == StatusOpen {
		m.dueCounts.Add(rows, dueRow{assignee: assignee, due: due, open: delta})
	}
	c, _ := m.counts.Get(rows, assignee)
	c.assignee = assignee
	switch status {
	case StatusOpen:
		c.open += delta
	case StatusDone:
		c.done += delta
	case StatusCancelled:
		c.cancelled += delta
	}
	m.counts.Upsert(rows, c)
}
