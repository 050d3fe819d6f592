package commands

import (
	"context"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/contact"
)

// RescheduleTask gives an open task a new due date.
type RescheduleTask struct {
	ContactID string `json:"-"`
	TaskID    string `json:"task_id"`
	Due       string `json:"due"`
}

// RescheduleTask gives an open task a new due date; a done or cancelled task is refused.
func (h *Handler) RescheduleTask(ctx context.Context, m Meta, cmd RescheduleTask) (Result, error) {
	return onContact(ctx, h, m, "RescheduleTask", cmd.ContactID, cmd, func(c *contact.Contact, _ ids) ([]domain.Event, error) {
		return c.RescheduleTask(cmd.TaskID, cmd.Due)
	})
}

// ReassignTask hands an open task to another assignee.
type ReassignTask struct {
	ContactID string `json:"-"`
	TaskID    string `json:"task_id"`
	Assignee  string `json:"assignee"`
}

// ReassignTask hands an open task to another assignee; a done or cancelled task is refused.
func (h *Handler) ReassignTask(ctx context.Context, m Meta, cmd ReassignTask) (Result, error) {
	return onContact(ctx, h, m, "ReassignTask", cmd.ContactID, cmd, func(c *contact.Contact, _ ids) ([]domain.Event, error) {
		return c.ReassignTask(cmd.TaskID, cmd.Assignee)
	})
}

// CancelTask closes an open task without doing it.
type CancelTask struct {
	ContactID string `json:"-"`
	TaskID    string `json:"task_id"`
	Reason    string `json:"reason"`
}

// CancelTask closes an open task for a reason, which is also the events' metadata reason
// unless the request gave one.
func (h *Handler) CancelTask(ctx context.Context, m Meta, cmd CancelTask) (Result, error) {
	if m.Reason == "" {
		m.Reason = cmd.Reason
	}
	return onContact(ctx, h, m, "CancelTask", cmd.ContactID, cmd, func(c *contact.Contact, _ ids) ([]domain.Event, error) {
		return c.CancelTask(cmd.TaskID, cmd.Reason)
	})
}

// AddNote writes a note about a contact.
type AddNote struct {
	ContactID string `json:"-"`
	Text      string `json:"text"`
}

// AddNote writes a note about a contact; its author is the actor. Result.EntityID is the
// note id.
func (h *Handler) AddNote(ctx context.Context, m Meta, cmd AddNote) (Result, error) {
	return onContact(ctx, h, m, "AddNote", cmd.ContactID, cmd, func(c *contact.Contact, i ids) ([]domain.Event, error) {
		return c.AddNote(i.entity(), cmd.Text, m.Actor)
	})
}
