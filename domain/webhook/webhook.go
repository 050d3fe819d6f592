// Package webhook is the webhook subscription aggregate: a URL that hears about events of some
// types. One subscription is one event stream (StreamName); who changed it, when and why is in
// the metadata of its events, as for every aggregate. The signing secret is not part of it:
// it never enters the log (it is kept in the key store, under the subject SecretSubject).
//
// Which URLs are acceptable (scheme, private addresses) and which event types exist are for
// the caller to check: they depend on configuration and on the catalog, not on the domain.
package webhook

import (
	"slices"
	"strings"
	"time"

	"github.com/eventcrm/crm/domain"
)

// Persisted event names. Never change one: add a new version instead.
const (
	TypeCreated  = "webhook.subscription_created.v1"
	TypeChanged  = "webhook.subscription_changed.v1"
	TypeDisabled = "webhook.subscription_disabled.v1"
	TypeEnabled  = "webhook.subscription_enabled.v1"
	TypeDeleted  = "webhook.subscription_deleted.v1"
)

// StreamPrefix starts the name of every subscription's stream.
const StreamPrefix = "webhook-"

// StreamName is the stream of subscription id.
func StreamName(id string) string { return StreamPrefix + id }

// SecretSubject is the key-store subject whose key is the subscription's signing secret.
func SecretSubject(id string) string { return "webhook:" + id }

// IsEvent tells whether an event type is one of this package's.
func IsEvent(eventType string) bool { return strings.HasPrefix(eventType, "webhook.") }

// Created: an admin subscribed a URL to event types, from the end of the log at the time on
// (the position of this event).
type Created struct {
	SubscriptionID string   `json:"subscription_id"`
	URL            string   `json:"url"`
	EventTypes     []string `json:"event_types"`
	Description    string   `json:"description,omitempty"`
}

// Changed: an admin changed the URL, the event types or the description; only the changed
// fields are set.
type Changed struct {
	SubscriptionID string    `json:"subscription_id"`
	URL            *string   `json:"url,omitempty"`
	EventTypes     *[]string `json:"event_types,omitempty"`
	Description    *string   `json:"description,omitempty"`
}

// Disabled: delivery stopped, by an admin or after failing too long (Automatic); Reason is
// what an admin reads on the subscription (also the event's metadata reason).
type Disabled struct {
	SubscriptionID string `json:"subscription_id"`
	Automatic      bool   `json:"automatic,omitempty"`
	Reason         string `json:"reason,omitempty"`
}

// Enabled: an admin enabled a disabled subscription: it resumes with the event it could not
// deliver.
type Enabled struct {
	SubscriptionID string `json:"subscription_id"`
}

// Deleted: an admin deleted the subscription; its stream ends here.
type Deleted struct {
	SubscriptionID string `json:"subscription_id"`
}

// EventType implementations.
func (*Created) EventType() string  { return TypeCreated }
func (*Changed) EventType() string  { return TypeChanged }
func (*Disabled) EventType() string { return TypeDisabled }
func (*Enabled) EventType() string  { return TypeEnabled }
func (*Deleted) EventType() string  { return TypeDeleted }

// Events lists a prototype of every webhook event, for the registry.
func Events() []domain.Event {
	return []domain.Event{&Created{}, &Changed{}, &Disabled{}, &Enabled{}, &Deleted{}}
}

// Subscription is the state of one subscription, folded from its events.
type Subscription struct {
	ID          string   `json:"id"`
	Version     int64    `json:"version"`
	URL         string   `json:"url"`
	EventTypes  []string `json:"event_types"`
	Description string   `json:"description,omitempty"`
	Enabled     bool     `json:"enabled"`
	// DisabledReason is the reason of the latest disabling, while disabled.
	DisabledReason string    `json:"disabled_reason,omitempty"`
	Deleted        bool      `json:"deleted"`
	CreatedAt      time.Time `json:"created_at"`
}

// Exists reports whether the subscription was created and not deleted.
func (s *Subscription) Exists() bool { return s.Version > 0 && !s.Deleted }

// Apply folds one event into the state; occurredAt is the event's business time.
func (s *Subscription) Apply(e domain.Event, occurredAt time.Time) {
	s.Version++
	switch e := e.(type) {
	case *Created:
		s.ID, s.URL, s.EventTypes, s.Description, s.Enabled, s.CreatedAt = e.SubscriptionID, e.URL, e.EventTypes, e.Description, true, occurredAt
	case *Changed:
		if e.URL != nil {
			s.URL = *e.URL
		}
		if e.EventTypes != nil {
			s.EventTypes = *e.EventTypes
		}
		if e.Description != nil {
			s.Description = *e.Description
		}
	case *Disabled:
		s.Enabled, s.DisabledReason = false, e.Reason
	case *Enabled:
		s.Enabled, s.DisabledReason = true, ""
	case *Deleted:
		s.Deleted = true
	}
}

// Settings are what an admin gives when subscribing.
type Settings struct {
	URL         string
	EventTypes  []string
	Description string
}

// Create decides a new subscription.
func (s *Subscription) Create(id string, st Settings) ([]domain.Event, error) {
	if s.Version > 0 {
		return nil, domain.Conflict("webhook subscription %s exists already", id)
	}
	if id == "" {
		return nil, domain.Invalid("id", "is required")
	}
	if err := st.check(); err != nil {
		return nil, err
	}
	return []domain.Event{&Created{SubscriptionID: id, URL: st.URL, EventTypes: st.EventTypes, Description: st.Description}}, nil
}

func (st Settings) check() error {
	if strings.TrimSpace(st.URL) == "" {
		return domain.Invalid("url", "is required")
	}
	if len(st.EventTypes) == 0 {
		return domain.Invalid("event_types", `give at least one event type ("*" for all, "contact.*" for a stream's)`)
	}
	return nil
}

// Change is a change of settings; nil fields stay as they are.
type Change struct {
	URL         *string
	EventTypes  *[]string
	Description *string
}

// Change decides a change of settings: only the fields that really change are recorded; none
// is refused.
func (s *Subscription) Change(c Change) ([]domain.Event, error) {
	if !s.Exists() {
		return nil, domain.NotFound("webhook subscription not found")
	}
	changed := &Changed{SubscriptionID: s.ID}
	next := Settings{URL: s.URL, EventTypes: s.EventTypes, Description: s.Description}
	if c.URL != nil && *c.URL != s.URL {
		changed.URL, next.URL = c.URL, *c.URL
	}
	if c.EventTypes != nil && !slices.Equal(*c.EventTypes, s.EventTypes) {
		changed.EventTypes, next.EventTypes = c.EventTypes, *c.EventTypes
	}
	if c.Description != nil && *c.Description != s.Description {
		changed.Description, next.Description = c.Description, *c.Description
	}
	if changed.URL == nil && changed.EventTypes == nil && changed.Description == nil {
		return nil, domain.Refused("the change changes nothing")
	}
	if err := next.check(); err != nil {
		return nil, err
	}
	return []domain.Event{changed}, nil
}

// Disable decides to stop delivery; automatic when the delivery gives up on a failing URL.
func (s *Subscription) Disable(automatic bool, reason string) ([]domain.Event, error) {
	if !s.Exists() {
		return nil, domain.NotFound("webhook subscription not found")
	}
	if !s.Enabled {
		return nil, domain.Refused("the subscription is disabled already")
	}
	return []domain.Event{&Disabled{SubscriptionID: s.ID, Automatic: automatic, Reason: reason}}, nil
}

// Enable decides to resume delivery.
func (s *Subscription) Enable() ([]domain.Event, error) {
	if !s.Exists() {
		return nil, domain.NotFound("webhook subscription not found")
	}
	if s.Enabled {
		return nil, domain.Refused("the subscription is enabled already")
	}
	return []domain.Event{&Enabled{SubscriptionID: s.ID}}, nil
}

// Delete decides to delete the subscription.
func (s *Subscription) Delete() ([]domain.Event, error) {
	if !s.Exists() {
		return nil, domain.NotFound("webhook subscription not found")
	}
	return []domain.Event{&Deleted{SubscriptionID: s.ID}}, nil
}
