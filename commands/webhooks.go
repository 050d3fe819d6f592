package commands

import (
	"context"
	"fmt"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/webhook"
)

// CreateWebhook subscribes a URL to event types. The URL and the event types are checked by
// the caller (package webhooks): what is acceptable depends on the configuration.
type CreateWebhook struct {
	URL         string   `json:"url"`
	EventTypes  []string `json:"event_types"`
	Description string   `json:"description,omitempty"`
}

// CreateWebhook records a new subscription; Result.ID is its id.
func (h *Handler) CreateWebhook(ctx context.Context, m Meta, cmd CreateWebhook) (Result, error) {
	cmdIDs := newIDs(m)
	id := cmdIDs.aggregate()
	return execute(ctx, h, m, plan[*webhook.Subscription]{
		name: "CreateWebhook", body: cmd, id: id, stream: webhook.StreamName(id), fresh: newWebhook, creates: true,
		decide: func(s *webhook.Subscription) ([]domain.Event, error) {
			return s.Create(id, webhook.Settings{URL: cmd.URL, EventTypes: cmd.EventTypes, Description: cmd.Description})
		},
	}, cmdIDs)
}

// ChangeWebhook changes a subscription's settings; nil fields stay as they are.
type ChangeWebhook struct {
	SubscriptionID string    `json:"-"`
	URL            *string   `json:"url,omitempty"`
	EventTypes     *[]string `json:"event_types,omitempty"`
	Description    *string   `json:"description,omitempty"`
}

// ChangeWebhook records the settings that really change.
func (h *Handler) ChangeWebhook(ctx context.Context, m Meta, cmd ChangeWebhook) (Result, error) {
	return onWebhook(ctx, h, m, "ChangeWebhook", cmd.SubscriptionID, cmd, func(s *webhook.Subscription) ([]domain.Event, error) {
		return s.Change(webhook.Change{URL: cmd.URL, EventTypes: cmd.EventTypes, Description: cmd.Description})
	})
}

// SwitchWebhook enables or disables a subscription; Automatic marks the delivery's own
// disabling of a subscription that failed too long (the reason is the metadata's).
type SwitchWebhook struct {
	SubscriptionID string `json:"-"`
	Enabled        bool   `json:"enabled"`
	Automatic      bool   `json:"-"`
}

// SwitchWebhook records that a subscription was enabled or disabled.
func (h *Handler) SwitchWebhook(ctx context.Context, m Meta, cmd SwitchWebhook) (Result, error) {
	return onWebhook(ctx, h, m, "SwitchWebhook", cmd.SubscriptionID, cmd, func(s *webhook.Subscription) ([]domain.Event, error) {
		if cmd.Enabled {
			return s.Enable()
		}
		reason := m.Reason
		if reason == "" {
			reason = "disabled by " + m.Actor
		}
		return s.Disable(cmd.Automatic, reason)
	})
}

// DeleteWebhook ends a subscription.
type DeleteWebhook struct {
	SubscriptionID string `json:"-"`
}

// DeleteWebhook records that a subscription was deleted.
func (h *Handler) DeleteWebhook(ctx context.Context, m Meta, cmd DeleteWebhook) (Result, error) {
	return onWebhook(ctx, h, m, "DeleteWebhook", cmd.SubscriptionID, cmd, func(s *webhook.Subscription) ([]domain.Event, error) {
		return s.Delete()
	})
}

// WebhookState is a subscription as its stream says, with what its first event's record
// adds: who created it and where in the log (delivery starts after that position).
type WebhookState struct {
	webhook.Subscription
	CreatedBy     string
	StartPosition int64
}

// Webhook returns a subscription as its stream says, with its version.
func (h *Handler) Webhook(ctx context.Context, id string) (WebhookState, error) {
	if id == "" {
		return WebhookState{}, domain.NotFound("webhook subscription not found")
	}
	stream := webhook.StreamName(id)
	s, version, err := load(ctx, h, stream, newWebhook(), nil)
	if err != nil {
		return WebhookState{}, err
	}
	if !s.Exists() {
		return WebhookState{}, domain.NotFound("webhook subscription not found")
	}
	s.Version = version
	first, err := h.store.ReadStream(ctx, stream, 1, 1)
	if err != nil {
		return WebhookState{}, fmt.Errorf("read %s: %w", stream, err)
	}
	if len(first) == 0 {
		return WebhookState{}, fmt.Errorf("read %s: no first event", stream)
	}
	return WebhookState{Subscription: *s, CreatedBy: first[0].Metadata.Actor, StartPosition: first[0].Position}, nil
}

func onWebhook(ctx context.Context, h *Handler, m Meta, name, id string, body any,
	decide func(*webhook.Subscription) ([]domain.Event, error)) (Result, error) {
	if id == "" {
		return Result{}, domain.NotFound("webhook subscription not found")
	}
	cmdIDs := newIDs(m)
	return execute(ctx, h, m, plan[*webhook.Subscription]{
		name: name, body: body, id: id, stream: webhook.StreamName(id), fresh: newWebhook, decide: decide,
	}, cmdIDs)
}

func newWebhook() *webhook.Subscription { return &webhook.Subscription{} }
