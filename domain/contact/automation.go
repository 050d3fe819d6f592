package contact

import (
	"time"

	"github.com/eventcrm/crm/domain"
)

// Persisted names of the facts the system records by itself (process managers and
// time-driven triggers).
const (
	TypeBecameHot     = "contact.became_hot.v1"
	TypeReminderFired = "contact.reminder_fired.v1"
)

// BecameHot: a touchpoint took the contact's lead score from below the hot threshold to at
// or above it (DOMAIN "Lead score at time T"). Score is the score just after the touchpoint,
// rounded to 2 decimals.
type BecameHot struct {
	ContactID    string  `json:"contact_id"`
	TouchpointID string  `json:"touchpoint_id"`
	Score        float64 `json:"score"`
	Threshold    float64 `json:"threshold"`
}

// Kinds of reminder.
const (
	// ReminderTaskDue: an open task's due date began.
	ReminderTaskDue = "task_due"
	// ReminderTaskOverdue: a day later, the task is still open: escalated to the owner.
	ReminderTaskOverdue = "task_overdue"
	// ReminderDormant: the contact has had no touchpoint for the dormancy period; a
	// reactivation task is scheduled with it.
	ReminderDormant = "dormant"
)

// ReminderFired: a time-driven trigger fired at FireAt: for a task (TaskID, Due) or for the
// contact's dormancy (LastTouchpointAt, the touchpoint it is measured from). Times are texts
// (RFC 3339, UTC), as every time in event data.
type ReminderFired struct {
	ContactID        string      `json:"contact_id"`
	Kind             string      `json:"kind"`
	TaskID           string      `json:"task_id,omitempty"`
	Due              domain.Date `json:"due,omitempty"`
	Assignee         string      `json:"assignee,omitempty"`
	LastTouchpointAt string      `json:"last_touchpoint_at,omitempty"` // RFC 3339, UTC
	FireAt           string      `json:"fire_at"`                      // RFC 3339, UTC
}

// EventType implementations.
func (*BecameHot) EventType() string     { return TypeBecameHot }
func (*ReminderFired) EventType() string { return TypeReminderFired }

// BecomeHot decides the record that the touchpoint made the contact hot.
func (c *Contact) BecomeHot(touchpointID string, score, threshold float64) ([]domain.Event, error) {
	if err := c.mustExist(); err != nil {
		return nil, err
	}
	if score < threshold {
		return nil, domain.Refused("a score of %.2f is below the hot threshold %.2f", score, threshold)
	}
	return []domain.Event{&BecameHot{ContactID: c.ID, TouchpointID: touchpointID, Score: score, Threshold: threshold}}, nil
}

// FireTaskReminder decides a task reminder of kind ReminderTaskDue or ReminderTaskOverdue for
// the task as due: refused when the task is done or cancelled, or due on another date now
// (the schedule that fired was stale).
func (c *Contact) FireTaskReminder(kind, taskID string, due domain.Date, fireAt time.Time) ([]domain.Event, error) {
	if err := c.mustExist(); err != nil {
		return nil, err
	}
	if kind != ReminderTaskDue && kind != ReminderTaskOverdue {
		return nil, domain.Invalid("kind", "%q is not a task reminder", kind)
	}
	t, err := c.openTask(taskID)
	if err != nil {
		return nil, err
	}
	if t.Due != due {
		return nil, domain.Refused("task %s is due %s now, not %s", taskID, t.Due, due)
	}
	return []domain.Event{&ReminderFired{ContactID: c.ID, Kind: kind, TaskID: taskID, Due: due, Assignee: t.Assignee, FireAt: rfc3339(fireAt)}}, nil
}

// FireDormancy decides that the contact is dormant since its last touchpoint (at
// lastTouchpoint) and schedules a reactivation task for its owner, due on the business date
// due: refused when a later touchpoint was recorded (the schedule that fired was stale) or
// the contact left the funnel (lost, churned) or was merged.
func (c *Contact) FireDormancy(lastTouchpoint, fireAt time.Time, taskID, title string, due domain.Date) ([]domain.Event, error) {
	if err := c.mustExist(); err != nil {
		return nil, err
	}
	if c.LastTouchpointAt == nil || !c.LastTouchpointAt.Equal(lastTouchpoint) {
		return nil, domain.Refused("contact %s has a touchpoint after %s", c.ID, lastTouchpoint.Format(time.RFC3339))
	}
	if c.Phase.IsExit() {
		return nil, domain.Refused("contact %s is %s", c.ID, c.Phase)
	}
	return []domain.Event{
		&ReminderFired{ContactID: c.ID, Kind: ReminderDormant, LastTouchpointAt: rfc3339(lastTouchpoint), Assignee: c.Owner, FireAt: rfc3339(fireAt)},
		&TaskScheduled{ContactID: c.ID, TaskID: taskID, Title: title, Due: due, Assignee: c.Owner},
	}, nil
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
