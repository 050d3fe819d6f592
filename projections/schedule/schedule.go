// Package schedule is the durable schedule of the time-driven triggers (projection
// "schedule"): for every open task its reminder (task_due, at ReminderHour business time on
// its due date) and its escalation (task_overdue, a day later), and for every contact in the
// funnel its dormancy deadline (dormant, its latest touchpoint plus the dormancy period).
//
// The fold only keeps the deadlines: a deadline leaves the schedule when its task is done or
// cancelled, or its contact is merged into another or erased, moves when the task is rescheduled or the contact touched again, and is marked
// fired when the log records contact.reminder_fired for it. The scheduler (package
// commands/reminders) reads the deadlines that are due by its clock and records their firing
// through the command handler, with an idempotency key per deadline, so a deadline fires
// once: a rebuilt schedule holds the fired marks again, because they come from the log.
//
// Tables (prefix from projections.Tables):
//
//	entries  kind (task_due, task_overdue, dormant), subject (task id or contact id),
//	         contact_id, due (a task's due date), last_touch_at (dormant: the touchpoint it
//	         counts from, microseconds), fire_at (microseconds), fired (0 or 1)
//	tasks    contact_id, task_id: the tasks that have deadlines, by contact (a contact merged
//	         into another or erased takes no more commands: its deadlines leave the schedule)
//	config   name ('dormant_days'), value
package schedule

import (
	"fmt"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/domain/settings"
	"github.com/eventcrm/crm/projections/readmodel"
)

// Name is the persisted name of the projection.
const Name = "schedule"

// ReminderHour is the business hour of a task's due date at which its reminder fires; the
// escalation fires 24 hours later, when the task has been overdue since the day began.
const ReminderHour = 9

// Base names of the tables.
const (
	tableEntries = "entries"
	tableTasks   = "tasks"
	tableConfig  = "config"
)

const configDormantDays = "dormant_days"

type entryRow struct {
	kind, subject, contactID, due string
	lastTouchAt, fireAt, fired    int64
}

type taskRow struct{ contactID, taskID string }

type configRow struct {
	name  string
	value int64
}

type model struct {
	zone    *time.Location
	entries *readmodel.Table[entryRow]
	tasks   *readmodel.Table[taskRow]
	config  *readmodel.Table[configRow]
}

// Projection returns the schedule; zone is the business time zone of the due dates (nil:
// UTC).
func Projection(zone *time.Location) *readmodel.Model {
	if zone == nil {
		zone = time.UTC
	}
	type (
		e = entryRow
		k = taskRow
		c = configRow
	)
	m := &model{zone: zone}
	m.entries = readmodel.NewTable(tableEntries, 2,
		readmodel.Text("kind", func(r *e) *string { return &r.kind }),
		readmodel.Text("subject", func(r *e) *string { return &r.subject }),
		readmodel.Text("contact_id", func(r *e) *string { return &r.contactID }),
		readmodel.Text("due", func(r *e) *string { return &r.due }),
		readmodel.BigInt("last_touch_at", func(r *e) *int64 { return &r.lastTouchAt }),
		readmodel.BigInt("fire_at", func(r *e) *int64 { return &r.fireAt }),
		readmodel.Integer("fired", func(r *e) *int64 { return &r.fired })).
		// The deadlines not fired in the order the scheduler reads them: the reminders of
		// every task due on one date fire at the same time, and a page of them is read in
		// order, not all of them sorted.
		WithIndexes(readmodel.Index{Name: "pending", Columns: "fire_at, kind, subject", Where: "fired = 0"})
	m.tasks = readmodel.NewTable(tableTasks, 2,
		readmodel.Text("contact_id", func(r *k) *string { return &r.contactID }),
		readmodel.Text("task_id", func(r *k) *string { return &r.taskID })).
		Clustered()
	m.config = readmodel.NewTable(tableConfig, 1,
		readmodel.Text("name", func(r *c) *string { return &r.name }),
		readmodel.BigInt("value", func(r *c) *int64 { return &r.value }))
	return readmodel.Define(readmodel.Spec{
		Name: Name,
		// The zone decides the fire times: another zone is another schedule. 2: the
		// deadlines not fired indexed in the order they are read. 3: no deadline of a contact
		// merged into another or erased.
		Version: 3,
		Tables:  []readmodel.AnyTable{m.entries, m.tasks, m.config},
		Fold:    m.fold,
	})
}

// ReminderAt is when the reminder of a task due on due fires.
func ReminderAt(due domain.Date, zone *time.Location) time.Time {
	d := due.Time()
	return time.Date(d.Year(), d.Month(), d.Day(), ReminderHour, 0, 0, 0, zone).UTC()
}

func (m *model) fold(e *readmodel.Event, rows *readmodel.Rows) error {
	switch e.Type {
	case contact.TypeTaskScheduled:
		ev, err := readmodel.Decode[contact.TaskScheduled](e)
		if err != nil {
			return err
		}
		m.scheduleTask(rows, ev.ContactID, ev.TaskID, ev.Due)
	case contact.TypeTaskRescheduled:
		ev, err := readmodel.Decode[contact.TaskRescheduled](e)
		if err != nil {
			return err
		}
		m.scheduleTask(rows, ev.ContactID, ev.TaskID, ev.To)
	case contact.TypeTaskCompleted:
		ev, err := readmodel.Decode[contact.TaskCompleted](e)
		if err != nil {
			return err
		}
		m.dropTask(rows, ev.ContactID, ev.TaskID)
	case contact.TypeTaskCancelled:
		ev, err := readmodel.Decode[contact.TaskCancelled](e)
		if err != nil {
			return err
		}
		m.dropTask(rows, ev.ContactID, ev.TaskID)
	case contact.TypeTouchpointRecorded:
		ev, err := readmodel.Decode[contact.TouchpointRecorded](e)
		if err != nil {
			return err
		}
		return m.touched(rows, ev.ContactID, e.OccurredAt.UnixMicro())
	case contact.TypePhaseChanged:
		ev, err := readmodel.Decode[contact.PhaseChanged](e)
		if err != nil {
			return err
		}
		if ev.To.IsExit() {
			m.entries.Delete(rows, contact.ReminderDormant, ev.ContactID)
		}
	case contact.TypeMergedInto:
		ev, err := readmodel.Decode[contact.MergedInto](e)
		if err != nil {
			return err
		}
		m.dropContact(rows, ev.ContactID)
	case contact.TypeErased:
		ev, err := readmodel.Decode[contact.Erased](e)
		if err != nil {
			return err
		}
		m.dropContact(rows, ev.ContactID)
	case contact.TypeReminderFired:
		return m.fired(e, rows)
	case settings.TypeProcessesChanged:
		ev, err := readmodel.Decode[settings.ProcessesChanged](e)
		if err != nil {
			return err
		}
		return m.dormantDays(rows, int64(ev.DormantDays))
	}
	return nil
}

// scheduleTask sets the task's two deadlines for its due date, not fired.
func (m *model) scheduleTask(rows *readmodel.Rows, contactID, taskID string, due domain.Date) {
	at := ReminderAt(due, m.zone)
	m.entries.Upsert(rows, entryRow{kind: contact.ReminderTaskDue, subject: taskID, contactID: contactID, due: string(due), fireAt: at.UnixMicro()})
	m.entries.Upsert(rows, entryRow{kind: contact.ReminderTaskOverdue, subject: taskID, contactID: contactID, due: string(due),
		fireAt: at.Add(24 * time.Hour).UnixMicro()})
	m.tasks.Upsert(rows, taskRow{contactID: contactID, taskID: taskID})
}

func (m *model) dropTask(rows *readmodel.Rows, contactID, taskID string) {
	m.entries.Delete(rows, contact.ReminderTaskDue, taskID)
	m.entries.Delete(rows, contact.ReminderTaskOverdue, taskID)
	m.tasks.Delete(rows, contactID, taskID)
}

// dropContact drops every deadline of a contact that takes no more commands (merged into
// another, or erased): none of them could fire.
func (m *model) dropContact(rows *readmodel.Rows, contactID string) {
	for _, t := range m.tasks.Group(rows, contactID) {
		m.dropTask(rows, contactID, t.taskID)
	}
	m.entries.Delete(rows, contact.ReminderDormant, contactID)
}

// touched moves the contact's dormancy deadline to its latest touchpoint plus the period.
func (m *model) touched(rows *readmodel.Rows, contactID string, at int64) error {
	r, ok := m.entries.Get(rows, contact.ReminderDormant, contactID)
	if ok && r.lastTouchAt >= at {
		return nil // a back-dated touchpoint: the latest one still counts
	}
	days, err := m.days(rows)
	if err != nil {
		return err
	}
	m.entries.Upsert(rows, entryRow{kind: contact.ReminderDormant, subject: contactID, contactID: contactID,
		lastTouchAt: at, fireAt: at + days*24*time.Hour.Microseconds()})
	return nil
}

// fired marks the deadline the event fired, when it is still the same deadline.
func (m *model) fired(e *readmodel.Event, rows *readmodel.Rows) error {
	ev, err := readmodel.Decode[contact.ReminderFired](e)
	if err != nil {
		return err
	}
	subject := ev.TaskID
	if ev.Kind == contact.ReminderDormant {
		subject = ev.ContactID
	}
	r, ok := m.entries.Get(rows, ev.Kind, subject)
	if !ok {
		return nil
	}
	if ev.Kind == contact.ReminderDormant {
		last, err := time.Parse(time.RFC3339Nano, ev.LastTouchpointAt)
		if err != nil {
			return fmt.Errorf("reminder_fired last_touchpoint_at: %w", err)
		}
		if last.UnixMicro() != r.lastTouchAt {
			return nil
		}
	} else if string(ev.Due) != r.due {
		return nil
	}
	r.fired = 1
	m.entries.Upsert(rows, r)
	return nil
}

func (m *model) days(rows *readmodel.Rows) (int64, error) {
	c, ok := m.config.Get(rows, configDormantDays)
	if !ok {
		return int64(settings.Defaults().Processes.DormantDays), nil
	}
	return c.value, nil
}

// dormantDays records a new dormancy period and moves every pending dormancy deadline.
func (m *model) dormantDays(rows *readmodel.Rows, days int64) error {
	old, err := m.days(rows)
	if err != nil || old == days {
		return err
	}
	m.config.Upsert(rows, configRow{name: configDormantDays, value: days})
	for _, r := range m.entries.Group(rows, contact.ReminderDormant) {
		if r.fired == 0 {
			r.fireAt = r.lastTouchAt + days*24*time.Hour.Microseconds()
			m.entries.Upsert(rows, r)
		}
	}
	return nil
}
