package commands

import (
	"context"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/domain/deal"
	"github.com/eventcrm/crm/eventstore/codec"
)

// CreateContact captures a new lead.
type CreateContact struct {
	Name    string `json:"name"`
	Email   string `json:"email,omitempty"`
	Phone   string `json:"phone,omitempty"`
	Company string `json:"company,omitempty"`
	Title   string `json:"title,omitempty"`
	Channel string `json:"channel"`
	Owner   string `json:"owner,omitempty"`
	Segment string `json:"segment,omitempty"`
	// The name in parts with readings (furigana), instead of name.
	FamilyName        string `json:"family_name,omitempty"`
	GivenName         string `json:"given_name,omitempty"`
	FamilyNameReading string `json:"family_name_reading,omitempty"`
	GivenNameReading  string `json:"given_name_reading,omitempty"`
}

// CreateContact creates a contact in phase lead. The owner defaults to the actor.
func (h *Handler) CreateContact(ctx context.Context, m Meta, cmd CreateContact) (Result, error) {
	cmdIDs := newIDs(m)
	id := cmdIDs.aggregate()
	if m.IdempotencyKey == "" {
		// The id derives from a random command id: nothing can hold a key of it yet, so the
		// codec takes one without asking the key store (a round trip on PostgreSQL). An id
		// derived from an idempotency key may come again, after an erasure even: not that one.
		ctx = codec.WithNewSubject(ctx, id)
	}
	owner := orDefault(cmd.Owner, m.Actor)
	return execute(ctx, h, m, plan[*contact.Contact]{
		name: "CreateContact", body: cmd, id: id, stream: contact.StreamName(id), fresh: newContact, creates: true,
		subject: func(*contact.Contact) string { return id },
		decide: func(c *contact.Contact) ([]domain.Event, error) {
			return c.Create(contact.Create{ContactID: id, Name: cmd.Name, Email: cmd.Email, Phone: cmd.Phone,
				Company: cmd.Company, Title: cmd.Title, Channel: cmd.Channel, Owner: owner, Segment: cmd.Segment,
				Parts: contact.PersonName{Family: cmd.FamilyName, Given: cmd.GivenName,
					FamilyReading: cmd.FamilyNameReading, GivenReading: cmd.GivenNameReading}})
		},
	}, cmdIDs)
}

// UpdateContact changes details and/or owner; nil fields stay as they are.
type UpdateContact struct {
	ContactID string  `json:"-"`
	Name      *string `json:"name,omitempty"`
	Email     *string `json:"email,omitempty"`
	Phone     *string `json:"phone,omitempty"`
	Company   *string `json:"company,omitempty"`
	Title     *string `json:"title,omitempty"`
	Segment   *string `json:"segment,omitempty"`
	Owner     *string `json:"owner,omitempty"`
	// Parts of the name, instead of name; the parts not given stay.
	FamilyName        *string `json:"family_name,omitempty"`
	GivenName         *string `json:"given_name,omitempty"`
	FamilyNameReading *string `json:"family_name_reading,omitempty"`
	GivenNameReading  *string `json:"given_name_reading,omitempty"`
}

// UpdateContact records changed details and owner.
func (h *Handler) UpdateContact(ctx context.Context, m Meta, cmd UpdateContact) (Result, error) {
	return onContact(ctx, h, m, "UpdateContact", cmd.ContactID, cmd, func(c *contact.Contact, _ ids) ([]domain.Event, error) {
		return c.Update(contact.Update{Name: cmd.Name, Email: cmd.Email, Phone: cmd.Phone, Company: cmd.Company,
			Title: cmd.Title, Segment: cmd.Segment, Owner: cmd.Owner, FamilyName: cmd.FamilyName, GivenName: cmd.GivenName,
			FamilyNameReading: cmd.FamilyNameReading, GivenNameReading: cmd.GivenNameReading})
	})
}

// ChangePhase moves a contact in its lifecycle.
type ChangePhase struct {
	ContactID string `json:"-"`
	Phase     string `json:"phase"`
	Reason    string `json:"reason,omitempty"`
}

// ChangePhase moves a contact under the written transition rules.
func (h *Handler) ChangePhase(ctx context.Context, m Meta, cmd ChangePhase) (Result, error) {
	if m.Reason == "" {
		m.Reason = cmd.Reason
	}
	return onContact(ctx, h, m, "ChangePhase", cmd.ContactID, cmd, func(c *contact.Contact, _ ids) ([]domain.Event, error) {
		return c.ChangePhase(cmd.Phase, cmd.Reason)
	})
}

// RecordTouchpoint records an activity with a contact.
type RecordTouchpoint struct {
	ContactID string `json:"-"`
	Kind      string `json:"kind"`
	Note      string `json:"note,omitempty"`
}

// RecordTouchpoint records an activity; Result.EntityID is the touchpoint id. A touchpoint by
// a channel the contact opted out of before its business time is refused.
func (h *Handler) RecordTouchpoint(ctx context.Context, m Meta, cmd RecordTouchpoint) (Result, error) {
	occurredAt := h.businessTime(m)
	return onContact(ctx, h, m, "RecordTouchpoint", cmd.ContactID, cmd, func(c *contact.Contact, i ids) ([]domain.Event, error) {
		return c.RecordTouchpoint(i.entity(), cmd.Kind, cmd.Note, occurredAt)
	})
}

// RecordPurchase records an order.
type RecordPurchase struct {
	ContactID string `json:"-"`
	Amount    int64  `json:"amount"`
	Currency  string `json:"currency"`
	Product   string `json:"product"`
	Plan      string `json:"plan,omitempty"`
}

// RecordPurchase records an order; Result.EntityID is the purchase id.
func (h *Handler) RecordPurchase(ctx context.Context, m Meta, cmd RecordPurchase) (Result, error) {
	return onContact(ctx, h, m, "RecordPurchase", cmd.ContactID, cmd, func(c *contact.Contact, i ids) ([]domain.Event, error) {
		return c.RecordPurchase(i.entity(), cmd.Amount, cmd.Currency, cmd.Product, cmd.Plan)
	})
}

// RecordSurvey records an NPS answer.
type RecordSurvey struct {
	ContactID string `json:"-"`
	NPS       int    `json:"nps"`
	Comment   string `json:"comment,omitempty"`
}

// RecordSurvey records an NPS answer; Result.EntityID is the survey id.
func (h *Handler) RecordSurvey(ctx context.Context, m Meta, cmd RecordSurvey) (Result, error) {
	return onContact(ctx, h, m, "RecordSurvey", cmd.ContactID, cmd, func(c *contact.Contact, i ids) ([]domain.Event, error) {
		return c.RecordSurvey(i.entity(), cmd.NPS, cmd.Comment)
	})
}

// ReportUsage records plan usage.
type ReportUsage struct {
	ContactID      string `json:"-"`
	PercentOfLimit int    `json:"percent_of_limit"`
}

// ReportUsage records plan usage as a percentage of the plan limit.
func (h *Handler) ReportUsage(ctx context.Context, m Meta, cmd ReportUsage) (Result, error) {
	return onContact(ctx, h, m, "ReportUsage", cmd.ContactID, cmd, func(c *contact.Contact, _ ids) ([]domain.Event, error) {
		return c.ReportUsage(cmd.PercentOfLimit)
	})
}

// ScheduleTask creates a follow-up task.
type ScheduleTask struct {
	ContactID string `json:"-"`
	Title     string `json:"title"`
	Due       string `json:"due"`
	Assignee  string `json:"assignee,omitempty"`
}

// ScheduleTask creates a follow-up task; Result.EntityID is the task id.
func (h *Handler) ScheduleTask(ctx context.Context, m Meta, cmd ScheduleTask) (Result, error) {
	return onContact(ctx, h, m, "ScheduleTask", cmd.ContactID, cmd, func(c *contact.Contact, i ids) ([]domain.Event, error) {
		return c.ScheduleTask(i.entity(), cmd.Title, cmd.Due, cmd.Assignee)
	})
}

// CompleteTask marks a follow-up task done.
type CompleteTask struct {
	ContactID string `json:"-"`
	TaskID    string `json:"task_id"`
}

// CompleteTask marks a follow-up task done.
func (h *Handler) CompleteTask(ctx context.Context, m Meta, cmd CompleteTask) (Result, error) {
	return onContact(ctx, h, m, "CompleteTask", cmd.ContactID, cmd, func(c *contact.Contact, _ ids) ([]domain.Event, error) {
		return c.CompleteTask(cmd.TaskID)
	})
}

// OptOut withdraws consent for a channel.
type OptOut struct {
	ContactID string `json:"-"`
	Channel   string `json:"channel"`
}

// OptOut withdraws consent for a channel.
func (h *Handler) OptOut(ctx context.Context, m Meta, cmd OptOut) (Result, error) {
	return onContact(ctx, h, m, "OptOut", cmd.ContactID, cmd, func(c *contact.Contact, _ ids) ([]domain.Event, error) {
		return c.OptOut(cmd.Channel)
	})
}

func newContact() *contact.Contact { return &contact.Contact{} }

// onContact runs a command on an existing contact.
func onContact(ctx context.Context, h *Handler, m Meta, name, id string, body any,
	decide func(*contact.Contact, ids) ([]domain.Event, error)) (Result, error) {
	if id == "" {
		return Result{}, domain.NotFound("contact not found")
	}
	cmdIDs := newIDs(m)
	p := plan[*contact.Contact]{
		name: name, body: body, id: id, stream: contact.StreamName(id), fresh: newContact,
		entity: entityFor(name, cmdIDs),
		decide: func(c *contact.Contact) ([]domain.Event, error) { return decide(c, cmdIDs) },
	}
	if holdsPersonalData(name) {
		p.subject = func(*contact.Contact) string { return id }
	}
	return execute(ctx, h, m, p, cmdIDs)
}

// holdsPersonalData tells whether the body of the command may hold personal data, which the
// codec seals in its events (a contact's name, email and phone, the notes of touchpoints,
// the comments of surveys, the texts of notes, the titles of tasks, the notes of lost deals):
// its request hash is then keyed by the contact's key.
func holdsPersonalData(name string) bool {
	switch name {
	case "CreateContact", "UpdateContact", "RecordTouchpoint", "RecordSurvey", "AddNote", "ScheduleTask", "LoseDeal":
		return true
	default:
		return false
	}
}

// mayHaveRecorded tells whether an event of type eventType can be the first one the command
// name records: after an erasure it, not the request hash, tells a retry of a command whose
// body held personal data from another command under its key.
func mayHaveRecorded(name, eventType string) bool {
	switch name {
	case "CreateContact":
		return eventType == contact.TypeCreated || eventType == contact.TypeCreatedV1
	case "UpdateContact":
		return eventType == contact.TypeDetailsChanged || eventType == contact.TypeDetailsChangedV1 ||
			eventType == contact.TypeOwnerChanged
	case "RecordTouchpoint":
		return eventType == contact.TypeTouchpointRecorded
	case "RecordSurvey":
		return eventType == contact.TypeSurveyRecorded
	case "AddNote":
		return eventType == contact.TypeNoteAdded
	case "ScheduleTask":
		return eventType == contact.TypeTaskScheduled
	case "LoseDeal":
		return eventType == deal.TypeLost
	default:
		return false
	}
}

// entityFor is the id of the entity a command creates inside its aggregate, if it creates one.
func entityFor(name string, cmdIDs ids) string {
	switch name {
	case "RecordTouchpoint", "RecordPurchase", "RecordSurvey", "ScheduleTask", "AddNote":
		return cmdIDs.entity()
	default:
		return ""
	}
}
