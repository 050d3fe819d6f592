package commands

import (
	"context"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/contact"
)

// System issues the commands only the system itself issues (process managers, time-driven
// triggers): they record facts it computed, so they have no HTTP route.
type System struct{ h *Handler }

// System returns the handler's system commands.
func (h *Handler) System() System { return System{h: h} }

// RecordBecameHot records that a touchpoint made a contact hot.
type RecordBecameHot struct {
	ContactID    string  `json:"contact_id"`
	TouchpointID string  `json:"touchpoint_id"`
	Score        float64 `json:"score"`
	Threshold    float64 `json:"threshold"`
}

// RecordBecameHot appends contact.became_hot.
func (s System) RecordBecameHot(ctx context.Context, m Meta, cmd RecordBecameHot) (Result, error) {
	return onContact(ctx, s.h, m, "RecordBecameHot", cmd.ContactID, cmd, func(c *contact.Contact, _ ids) ([]domain.Event, error) {
		return c.BecomeHot(cmd.TouchpointID, cmd.Score, cmd.Threshold)
	})
}

// FireTaskReminder fires a reminder (task_due) or an escalation (task_overdue) of a task.
type FireTaskReminder struct {
	ContactID string      `json:"contact_id"`
	Kind      string      `json:"kind"`
	TaskID    string      `json:"task_id"`
	Due       domain.Date `json:"due"`
	FireAt    time.Time   `json:"fire_at"`
}

// FireTaskReminder appends contact.reminder_fired; a task done or cancelled, or due on
// another date now, is refused.
func (s System) FireTaskReminder(ctx context.Context, m Meta, cmd FireTaskReminder) (Result, error) {
	return onContact(ctx, s.h, m, "FireTaskReminder", cmd.ContactID, cmd, func(c *contact.Contact, _ ids) ([]domain.Event, error) {
		return c.FireTaskReminder(cmd.Kind, cmd.TaskID, cmd.Due, cmd.FireAt)
	})
}

// FireDormancy records that a contact is dormant and schedules its reactivation task.
type FireDormancy struct {
	ContactID        string      `json:"contact_id"`
	LastTouchpointAt time.Time   `json:"last_touchpoint_at"`
	FireAt           time.Time   `json:"fire_at"`
	Title            string      `json:"title"`
	Due              domain.Date `json:"due"`
}

// FireDormancy appends contact.reminder_fired (dormant) and the reactivation task. Refused
// when a later touchpoint was recorded.
func (s System) FireDormancy(ctx context.Context, m Meta, cmd FireDormancy) (Result, error) {
	return onContact(ctx, s.h, m, "FireDormancy", cmd.ContactID, cmd, func(c *contact.Contact, i ids) ([]domain.Event, error) {
		return c.FireDormancy(cmd.LastTouchpointAt, cmd.FireAt, i.entity(), cmd.Title, cmd.Due)
	})
}
