package contact

import (
	"strings"
	"unicode/utf8"

	"github.com/eventcrm/crm/domain"
)

// openTask returns the task a command changes, refused unless it is still open: a done or
// cancelled task is closed for good, so the tasks read models never see it change again.
func (c *Contact) openTask(taskID string) (Task, error) {
	if err := c.mustExist(); err != nil {
		return Task{}, err
	}
	i := c.taskIndex(taskID)
	if i < 0 {
		return Task{}, domain.NotFound("task %s not found", taskID)
	}
	switch t := c.Tasks[i]; {
	case t.Done:
		return Task{}, domain.Refused("task %s is already done", taskID)
	case t.Cancelled:
		return Task{}, domain.Refused("task %s was cancelled (%s)", taskID, t.CancelReason)
	default:
		return t, nil
	}
}

// CompleteTask decides that an open task is done.
func (c *Contact) CompleteTask(taskID string) ([]domain.Event, error) {
	if _, err := c.openTask(taskID); err != nil {
		return nil, err
	}
	return []domain.Event{&TaskCompleted{ContactID: c.ID, TaskID: taskID}}, nil
}

// RescheduleTask decides a new due date of an open task; the same date changes nothing and is
// refused.
func (c *Contact) RescheduleTask(taskID, due string) ([]domain.Event, error) {
	t, err := c.openTask(taskID)
	if err != nil {
		return nil, err
	}
	d, err := domain.ParseDate("due", due)
	if err != nil {
		return nil, err
	}
	if d == t.Due {
		return nil, domain.Refused("task %s is already due on %s", taskID, d)
	}
	return []domain.Event{&TaskRescheduled{ContactID: c.ID, TaskID: taskID, From: t.Due, To: d}}, nil
}

// ReassignTask decides a new assignee of an open task; the same assignee is refused.
func (c *Contact) ReassignTask(taskID, assignee string) ([]domain.Event, error) {
	t, err := c.openTask(taskID)
	if err != nil {
		return nil, err
	}
	if assignee = strings.TrimSpace(assignee); assignee == "" {
		return nil, domain.Invalid("assignee", "is required")
	}
	if utf8.RuneCountInString(assignee) > 500 {
		return nil, domain.Invalid("assignee", "is longer than 500 characters")
	}
	if assignee == t.Assignee {
		return nil, domain.Refused("task %s is already assigned to %s", taskID, assignee)
	}
	return []domain.Event{&TaskReassigned{ContactID: c.ID, TaskID: taskID, From: t.Assignee, To: assignee}}, nil
}

// CancelTask decides that an open task will not be done; the reason is required.
func (c *Contact) CancelTask(taskID, reason string) ([]domain.Event, error) {
	if _, err := c.openTask(taskID); err != nil {
		return nil, err
	}
	if reason = strings.TrimSpace(reason); reason == "" {
		return nil, domain.Invalid("reason", "is required")
	}
	if utf8.RuneCountInString(reason) > 1000 {
		return nil, domain.Invalid("reason", "is longer than 1000 characters")
	}
	return []domain.Event{&TaskCancelled{ContactID: c.ID, TaskID: taskID, Reason: reason}}, nil
}
