// Package webhooks delivers the events of the log to the subscribers' URLs, signed as the
// Standard Webhooks specification says (webhook-id, webhook-timestamp, webhook-signature).
//
// Each subscription has a position in the log and a worker of its own: the worker reads the
// events after the position, sends each event of the subscribed types and moves the position
// past it only once the receiver answered 2xx, so delivery is at least once and in log order
// per subscription, and a restart resumes with the event being sent. A failed attempt is tried
// again after a backoff with jitter; a subscription that has failed for DisableAfter (a day)
// is disabled until an admin enables it again (it then resumes with the same event). One slow
// or failing receiver holds up only its own subscription: every attempt has a timeout.
//
// Subscriptions are events (package domain/webhook: created, changed, disabled, enabled,
// deleted, each with its actor and reason) on a stream of their own, recorded through the
// command handler; the delivery reads them from their read model (package projections/hooks).
// A subscription's signing secret never enters the log: it is the key of the subject
// webhook.SecretSubject(id) in the key store, and deleting the subscription destroys it. How
// far each subscription got and every attempt are operational state in two tables of the
// read-model database (webhook_positions, webhook_deliveries) that no rebuild touches.
package webhooks

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/domain/catalog"
	"github.com/eventcrm/crm/domain/webhook"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/keys"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/hooks"
)

// Defaults of Config.
const (
	DefaultTimeout      = 10 * time.Second
	DefaultMinBackoff   = time.Second
	DefaultMaxBackoff   = 10 * time.Minute
	DefaultDisableAfter = 24 * time.Hour
	DefaultPollInterval = 10 * time.Second
	readBatch           = 100
)

// Config configures the webhooks.
type Config struct {
	DB    *projections.DB
	Store eventstore.Store
	// Commands records the subscription events.
	Commands *commands.Handler
	// Keys holds the signing secrets.
	Keys keys.Keys
	// Tables resolves the table set of the subscriptions' read model (projections/hooks)
	// in service.
	Tables func(ctx context.Context) (projections.Tables, error)
	// AllowPrivate allows URLs of private, loopback and link-local addresses
	// (CRM_WEBHOOK_ALLOW_PRIVATE).
	AllowPrivate bool
	// Timeout bounds one attempt, connection to answer.
	Timeout time.Duration
	// MinBackoff is the pause after a first failure; it doubles to MaxBackoff, with jitter.
	MinBackoff, MaxBackoff time.Duration
	// DisableAfter: a subscription failing for this long is disabled.
	DisableAfter time.Duration
	// PollInterval is the safety net: how often a caught-up worker looks for new events, and
	// the dispatcher for new or enabled subscriptions, when nothing woke them. They are woken
	// by the appends (the store's subscription: the writer's wake-up on SQLite,
	// LISTEN/NOTIFY on PostgreSQL) and by the subscriptions changed through this Service.
	PollInterval time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	Log *zap.Logger
	// Observer, when set, is told every attempt of the delivery and the subscriptions the
	// dispatcher reads (nil: nothing is reported).
	Observer Observer
}

// Observer is told what the delivery does.
type Observer interface {
	// Attempt is one attempt of a delivery (not a redelivery asked for by an admin):
	// delivered when the receiver answered 2xx, and then latency is the time from the event's
	// append to that answer.
	Attempt(delivered bool, latency time.Duration)
	// Subscriptions are how many subscriptions are enabled and disabled, each time the
	// dispatcher reads them (on the server that delivers).
	Subscriptions(enabled, disabled int)
}

// Service manages the subscriptions and delivers to them.
type Service struct {
	cfg    Config
	store  store
	client *http.Client
	known  map[string]bool // event types of the catalog

	// appended wakes the workers when events were appended; changed wakes the dispatcher
	// when subscriptions may have changed.
	appended, changed *eventstore.Notifier
	// changedAt is the position of the latest subscription event seen in the log.
	changedAt atomic.Int64

	mu      sync.Mutex
	running map[string]bool
}

// New returns the service, creating its tables when they do not exist.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.DB == nil || cfg.Store == nil || cfg.Commands == nil || cfg.Keys == nil || cfg.Tables == nil {
		return nil, errors.New("webhooks: a database, a store, the commands, the keys and the subscriptions' tables are required")
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&cfg.Timeout, DefaultTimeout}, {&cfg.MinBackoff, DefaultMinBackoff}, {&cfg.MaxBackoff, DefaultMaxBackoff},
		{&cfg.DisableAfter, DefaultDisableAfter}, {&cfg.PollInterval, DefaultPollInterval}} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	s := &Service{cfg: cfg, store: store{db: cfg.DB, statements: &atomic.Int64{}}, known: map[string]bool{}, running: map[string]bool{},
		appended: eventstore.NewNotifier(), changed: eventstore.NewNotifier()}
	for _, name := range catalog.Registry().Names() {
		s.known[name] = true
	}
	s.client = &http.Client{
		Timeout:   cfg.Timeout,
		Transport: &http.Transport{DialContext: dialContext(cfg.AllowPrivate), MaxIdleConnsPerHost: 4, IdleConnTimeout: 90 * time.Second},
		// A redirect is an answer that is not 2xx: a failure, never followed to another host.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	if err := s.store.init(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// CreateRequest is what an admin gives to subscribe.
type CreateRequest struct {
	URL         string   `json:"url"`
	EventTypes  []string `json:"event_types"`
	Description string   `json:"description"`
}

// Create subscribes a URL to event types from the end of the log on; the answer holds the
// signing secret, shown this once.
func (s *Service) Create(ctx context.Context, m commands.Meta, req CreateRequest) (Subscription, error) {
	if err := s.check(req.URL, req.EventTypes); err != nil {
		return Subscription{}, err
	}
	res, err := s.cfg.Commands.CreateWebhook(ctx, m, commands.CreateWebhook{URL: req.URL, EventTypes: req.EventTypes, Description: req.Description})
	if err != nil {
		return Subscription{}, err
	}
	secret, err := s.secret(ctx, res.ID, true)
	if err != nil {
		return Subscription{}, err
	}
	sub, err := s.Get(ctx, res.ID)
	if err != nil {
		return Subscription{}, err
	}
	s.changed.Notify()
	sub.Secret = secret
	return sub, nil
}

// secret is the signing secret of a subscription: its key in the key store, made at creation.
func (s *Service) secret(ctx context.Context, id string, make bool) (string, error) {
	var (
		key []byte
		err error
	)
	if make {
		key, err = s.cfg.Keys.Secret(ctx, webhook.SecretSubject(id))
	} else {
		key, err = s.cfg.Keys.Lookup(ctx, webhook.SecretSubject(id), "")
	}
	if err != nil {
		return "", fmt.Errorf("signing secret of %s: %w", id, err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(key), nil
}

func (s *Service) check(url string, types []string) error {
	if err := checkURL(url, s.cfg.AllowPrivate); err != nil {
		return err
	}
	if len(types) == 0 {
		return invalid("event_types", `give at least one event type ("*" for all, "contact.*" for a stream's)`)
	}
	for _, t := range types {
		if webhook.IsEvent(t) || t == "webhook.*" {
			return invalid("event_types", "%q: the webhook subscriptions' own events are not delivered", t)
		}
		if t == "*" || s.known[t] {
			continue
		}
		if prefix, ok := strings.CutSuffix(t, ".*"); ok && slices.ContainsFunc(catalog.Registry().Names(), func(n string) bool {
			return strings.HasPrefix(n, prefix+".")
		}) {
			continue
		}
		return invalid("event_types", "%q is not an event type", t)
	}
	return nil
}

// Get returns a subscription as its stream says now (not its read model, which may lag
// behind a change just made), with how far its delivery got.
func (s *Service) Get(ctx context.Context, id string) (Subscription, error) {
	ws, err := s.cfg.Commands.Webhook(ctx, id)
	if err != nil {
		return Subscription{}, err
	}
	sub := Subscription{ID: ws.ID, URL: ws.URL, EventTypes: ws.EventTypes, Description: ws.Description, Enabled: ws.Enabled,
		CreatedAt: ws.CreatedAt, CreatedBy: ws.CreatedBy, Version: ws.Version, Position: ws.StartPosition}
	if !ws.Enabled {
		sub.DisabledReason = ws.DisabledReason
	}
	progress, err := s.store.progressOf(ctx, id)
	if err != nil {
		return Subscription{}, err
	}
	if p, ok := progress[id]; ok {
		sub.Position, sub.FailingSince = max(p.position, sub.Position), p.failing
	}
	return sub, nil
}

// List returns every subscription, from their read model.
func (s *Service) List(ctx context.Context) ([]Subscription, error) { return s.subscriptions(ctx, "") }

// subscriptions reads the subscriptions (or one, id set) from their read model, with how far
// their delivery got.
func (s *Service) subscriptions(ctx context.Context, id string) ([]Subscription, error) {
	t, err := s.cfg.Tables(ctx)
	if err != nil {
		return nil, err
	}
	s.store.statements.Add(1)
	rows, err := hooks.List(ctx, s.cfg.DB, t, id)
	if err != nil {
		return nil, err
	}
	progress, err := s.store.progressOf(ctx, id)
	if err != nil {
		return nil, err
	}
	list := make([]Subscription, 0, len(rows))
	for _, r := range rows {
		sub := Subscription{ID: r.ID, URL: r.URL, EventTypes: r.EventTypes, Description: r.Description, Enabled: r.Enabled,
			DisabledReason: r.DisabledReason, Position: r.StartPosition, CreatedAt: r.CreatedAt, CreatedBy: r.CreatedBy}
		if p, ok := progress[r.ID]; ok {
			sub.Position, sub.FailingSince = max(p.position, sub.Position), p.failing
		}
		list = append(list, sub)
	}
	return list, nil
}

// get is one subscription from the read model, for the delivery.
func (s *Service) get(ctx context.Context, id string) (Subscription, error) {
	list, err := s.subscriptions(ctx, id)
	if err != nil {
		return Subscription{}, err
	}
	if len(list) == 0 {
		return Subscription{}, ErrNotFound
	}
	return list[0], nil
}

// Patch changes a subscription; Enabled true enables a disabled one (it resumes with the event
// it could not deliver), false disables it.
type Patch struct {
	URL         *string   `json:"url"`
	EventTypes  *[]string `json:"event_types"`
	Description *string   `json:"description"`
	Enabled     *bool     `json:"enabled"`
}

// Update applies a patch: a change of the settings and a switch, each an event when it
// changes something.
func (s *Service) Update(ctx context.Context, m commands.Meta, id string, p Patch) (Subscription, error) {
	sub, err := s.Get(ctx, id)
	if err != nil {
		return Subscription{}, err
	}
	url, types := sub.URL, sub.EventTypes
	if p.URL != nil {
		url = *p.URL
	}
	if p.EventTypes != nil {
		types = *p.EventTypes
	}
	if err := s.check(url, types); err != nil {
		return Subscription{}, err
	}
	change := commands.ChangeWebhook{SubscriptionID: id}
	if p.URL != nil && *p.URL != sub.URL {
		change.URL = p.URL
	}
	if p.EventTypes != nil && !slices.Equal(*p.EventTypes, sub.EventTypes) {
		change.EventTypes = p.EventTypes
	}
	if p.Description != nil && *p.Description != sub.Description {
		change.Description = p.Description
	}
	if change.URL != nil || change.EventTypes != nil || change.Description != nil {
		if _, err := s.cfg.Commands.ChangeWebhook(ctx, m, change); err != nil {
			return Subscription{}, err
		}
		m.ExpectedVersion = nil // the If-Match held for the first event
	}
	if p.Enabled != nil && *p.Enabled != sub.Enabled {
		if m.IdempotencyKey != "" && (p.URL != nil || p.EventTypes != nil || p.Description != nil) {
			// A second command of the same request: a key of its own, derived from the
			// request's alone (whether the change was recorded or not, here or by an earlier
			// attempt), so that a retry meets each of the two.
			m.IdempotencyKey += "\x00switch"
		}
		if _, err := s.cfg.Commands.SwitchWebhook(ctx, m, commands.SwitchWebhook{SubscriptionID: id, Enabled: *p.Enabled}); err != nil {
			return Subscription{}, err
		}
		if *p.Enabled {
			if err := s.store.recovered(ctx, id); err != nil {
				return Subscription{}, err
			}
		}
	}
	s.changed.Notify()
	return s.Get(ctx, id)
}

// Delete records the end of a subscription, destroys its signing secret and forgets its
// delivery state.
func (s *Service) Delete(ctx context.Context, m commands.Meta, id string) error {
	if _, err := s.cfg.Commands.DeleteWebhook(ctx, m, commands.DeleteWebhook{SubscriptionID: id}); err != nil {
		return err
	}
	if err := s.cfg.Keys.Destroy(ctx, webhook.SecretSubject(id)); err != nil {
		return fmt.Errorf("signing secret of %s: %w", id, err)
	}
	s.changed.Notify()
	return s.store.remove(ctx, id)
}

// Deliveries lists a subscription's latest deliveries.
func (s *Service) Deliveries(ctx context.Context, id string, limit int) ([]Delivery, error) {
	if _, err := s.cfg.Commands.Webhook(ctx, id); err != nil {
		return nil, err
	}
	if limit == 0 {
		limit = 100
	}
	if limit < 1 || limit > 1000 {
		return nil, invalid("limit", "%d is outside 1..1000", limit)
	}
	return s.store.deliveries(ctx, id, limit)
}

// Redeliver sends one delivery again now, whatever its status, and answers it as it then is.
func (s *Service) Redeliver(ctx context.Context, id, deliveryID string) (Delivery, error) {
	sub, err := s.Get(ctx, id)
	if err != nil {
		return Delivery{}, err
	}
	if sub.secret, err = s.secret(ctx, id, false); err != nil {
		return Delivery{}, err
	}
	d, err := s.store.delivery(ctx, id, deliveryID)
	if err != nil {
		return Delivery{}, err
	}
	body, err := s.freshPayload(ctx, d.EventID)
	if err != nil {
		return Delivery{}, err
	}
	code, sendErr := s.send(ctx, sub, d.ID, body)
	status := StatusDelivered
	if sendErr != nil {
		// It stays what it was: one delivered before was taken then (and nothing sends it
		// again by itself), one pending or failed is still so.
		status = d.Status
	}
	if err := s.store.attempted(ctx, d.ID, status, errText(sendErr), code, s.cfg.Now()); err != nil {
		return Delivery{}, err
	}
	return s.store.delivery(ctx, id, deliveryID)
}

// message is the JSON body of a delivery (the Standard Webhooks payload shape).
type message struct {
	Type      string      `json:"type"`
	Timestamp time.Time   `json:"timestamp"`
	Data      messageData `json:"data"`
}

type messageData struct {
	ID          string          `json:"id"`
	Stream      string          `json:"stream"`
	Version     int64           `json:"version"`
	Position    int64           `json:"position"`
	OccurredAt  time.Time       `json:"occurred_at"`
	RecordedAt  time.Time       `json:"recorded_at"`
	Actor       string          `json:"actor,omitempty"`
	Correlation string          `json:"correlation_id,omitempty"`
	Causation   string          `json:"causation_id,omitempty"`
	Reason      string          `json:"reason,omitempty"`
	Event       json.RawMessage `json:"event"`
}

func payload(e eventstore.Event) ([]byte, error) {
	b, err := json.Marshal(message{Type: e.Type, Timestamp: e.RecordedAt, Data: messageData{
		ID: e.ID, Stream: e.Stream, Version: e.Version, Position: e.Position, OccurredAt: e.OccurredAt, RecordedAt: e.RecordedAt,
		Actor: e.Metadata.Actor, Correlation: e.Metadata.CorrelationID, Causation: e.Metadata.CausationID, Reason: e.Metadata.Reason,
		Event: json.RawMessage(e.Data)}})
	if err != nil {
		return nil, fmt.Errorf("payload of %s: %w", e.ID, err)
	}
	return b, nil
}

// deliveryID is the webhook-id of an event sent to a subscription: the same for every attempt.
func deliveryID(subscriptionID, eventID string) string {
	return "msg_" + strings.ReplaceAll(uuid.NewSHA1(uuid.MustParse("0b8a4c1e-2f3d-4e5a-8b6c-7d8e9f0a1b2c"), []byte(subscriptionID+"/"+eventID)).String(), "-", "")
}

// send makes one attempt; it answers the response code (0 when none came).
func (s *Service) send(ctx context.Context, sub Subscription, id string, body []byte) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	now := s.cfg.Now()
	sig, err := Sign(sub.secret, id, now, body)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sub.URL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "crm-webhooks/1")
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", fmt.Sprint(now.Unix()))
	req.Header.Set("webhook-signature", sig)
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("the receiver answered %d", resp.StatusCode)
	}
	return resp.StatusCode, nil
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	if len(msg) > 500 {
		msg = msg[:500]
	}
	return msg
}

// backoff is the pause after the attempt-th failure (from 0): doubling from MinBackoff to
// MaxBackoff, the upper half of it at random (equal jitter).
func (s *Service) backoff(attempt int) time.Duration {
	d := s.cfg.MaxBackoff
	if attempt < 40 {
		d = min(s.cfg.MinBackoff<<attempt, s.cfg.MaxBackoff)
	}
	return d/2 + rand.N(d/2+1)
}

// matches tells whether a subscription to types hears about eventType. The subscriptions'
// own events are never delivered: they name other subscribers' URLs.
func matches(types []string, eventType string) bool {
	if webhook.IsEvent(eventType) {
		return false
	}
	for _, t := range types {
		if t == "*" || t == eventType {
			return true
		}
		if prefix, ok := strings.CutSuffix(t, "*"); ok && strings.HasPrefix(eventType, prefix) {
			return true
		}
	}
	return false
}
