package webhooks

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/webhook"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/codec"
	"github.com/eventcrm/crm/projections"
)

// Run delivers until ctx ends: it starts a worker for every enabled subscription, and for
// every one created or enabled later, and waits for them when ctx ends. Idle workers wait for
// an append (see follow), the dispatcher for a change of the subscriptions, each at most
// PollInterval.
func (s *Service) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	// Every append after the head now wakes the workers, which all read after it. The first
	// list waits for the read model to reach the head: it may lag the log.
	head, err := projections.LogHead(ctx, s.cfg.Store)
	if err != nil && ctx.Err() == nil {
		s.cfg.Log.Warn("webhooks: reading the log's head failed", zap.Error(err))
	}
	s.changedAt.Store(head)
	wg.Go(func() { s.follow(ctx, head) })
	for {
		changed := s.changed.Wait()
		subs, err := s.listCaughtUp(ctx)
		if err != nil && ctx.Err() == nil {
			s.cfg.Log.Warn("webhooks: reading the subscriptions failed", zap.Error(err))
		}
		if err == nil && s.cfg.Observer != nil {
			enabled := 0
			for _, sub := range subs {
				if sub.Enabled {
					enabled++
				}
			}
			s.cfg.Observer.Subscriptions(enabled, len(subs)-enabled)
		}
		for _, sub := range subs {
			if sub.Enabled && s.claim(sub.ID) {
				wg.Go(func() {
					defer s.release(sub.ID)
					s.work(ctx, sub.ID)
				})
			}
		}
		if !wait(ctx, changed, s.cfg.PollInterval) {
			return
		}
	}
}

// follow wakes the workers whenever events are appended after position after: it follows the
// log with the store's subscription, which the store wakes on its appends (and, on PostgreSQL,
// on other servers' by LISTEN/NOTIFY). Events of the webhook subscriptions' stream wake the
// dispatcher too. A subscription that fails is opened again after a pause; the workers'
// PollInterval covers the gap.
func (s *Service) follow(ctx context.Context, after int64) {
	for ctx.Err() == nil {
		err := s.wakeOnAppends(ctx, &after)
		if err != nil && ctx.Err() == nil {
			s.cfg.Log.Warn("webhooks: following the log failed", zap.Error(err))
		}
		if !sleep(ctx, time.Second) {
			return
		}
	}
}

// wakeOnAppends wakes on the events after *after, moving it on, until the subscription ends.
func (s *Service) wakeOnAppends(ctx context.Context, after *int64) error {
	sub, err := s.cfg.Store.Subscribe(ctx, *after)
	if err != nil {
		return fmt.Errorf("subscribe after %d: %w", *after, err)
	}
	defer sub.Close()
	events := sub.Events()
	for e := range events {
		*after = e.Position
		changed := isSubscriptionEvent(e.Type)
		// One wake-up for what came together.
		for more := true; more; {
			select {
			case next, ok := <-events:
				if !ok {
					more = false
					break
				}
				*after, e = next.Position, next
				changed = changed || isSubscriptionEvent(next.Type)
			default:
				more = false
			}
		}
		s.appended.Notify()
		if changed {
			s.changedAt.Store(e.Position) // at least: the read model must have reached it
			s.changed.Notify()
		}
	}
	return sub.Err()
}

// isSubscriptionEvent tells whether an event changes a webhook subscription.
func isSubscriptionEvent(eventType string) bool { return webhook.IsEvent(eventType) }

// listCaughtUp lists the subscriptions once their read model has applied the latest
// subscription event follow saw (it lags the log a little).
func (s *Service) listCaughtUp(ctx context.Context) ([]Subscription, error) {
	for want := s.changedAt.Load(); want > 0; {
		t, err := s.cfg.Tables(ctx)
		if err != nil {
			return nil, err
		}
		at, err := s.cfg.DB.Checkpoint(ctx, t)
		if err != nil {
			return nil, err
		}
		if at >= want || !sleep(ctx, 20*time.Millisecond) {
			break
		}
	}
	return s.List(ctx)
}

func (s *Service) claim(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running[id] {
		return false
	}
	s.running[id] = true
	return true
}

func (s *Service) release(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.running, id)
}

// work delivers one subscription's events in log order until it is disabled or deleted, or
// ctx ends.
func (s *Service) work(ctx context.Context, id string) {
	secret := ""
	// checked is the latest subscription event after which the worker read its subscription's
	// stream: none yet, so the first delivery reads it.
	checked := int64(-1)
	for ctx.Err() == nil {
		appended := s.appended.Wait() // before reading: an append from now on wakes it
		sub, err := s.get(ctx, id)
		if errors.Is(err, ErrNotFound) {
			s.forgetDeleted(ctx, id)
			return
		}
		if err == nil && !sub.Enabled {
			return
		}
		if err == nil && secret == "" {
			secret, err = s.secret(ctx, id, false)
		}
		if err == nil {
			sub.secret = secret
			var idle bool
			idle, err = s.step(ctx, sub, &checked)
			if err == nil && !idle {
				continue
			}
		}
		if errors.Is(err, errDeleted) {
			s.forgetDeleted(ctx, id)
			return
		}
		if errors.Is(err, errStopped) {
			return
		}
		if de := (*disabledError)(nil); errors.As(err, &de) {
			// Hold the subscription until its read model says so, lest the dispatcher,
			// reading it before, start it again.
			s.awaitDisabled(ctx, id, de.position)
			return
		}
		if err != nil && ctx.Err() == nil {
			s.cfg.Log.Warn("webhooks: delivery interrupted", zap.String("subscription", id), zap.Error(err))
			if !sleep(ctx, s.cfg.MinBackoff) {
				return
			}
			continue
		}
		if !wait(ctx, appended, s.cfg.PollInterval) {
			return
		}
	}
}

// step reads the events after the subscription's position and delivers those of its types,
// each until the receiver takes it; idle is true when there was nothing to read. Before each
// event it looks whether the subscription changed (see current): errStopped when it was
// disabled or deleted meanwhile.
func (s *Service) step(ctx context.Context, sub Subscription, checked *int64) (idle bool, err error) {
	events, err := s.cfg.Store.ReadAll(ctx, sub.Position, readBatch)
	if err != nil || len(events) == 0 {
		return true, err
	}
	passed := sub.Position
	for _, e := range events {
		if err := s.current(ctx, &sub, checked); err != nil {
			// Disabled: it resumes after passed anyway; deleted: nothing is kept of it.
			return false, err
		}
		if !matches(sub.EventTypes, e.Type) {
			passed = e.Position
			continue
		}
		delivered, err := s.deliver(ctx, &sub, e)
		if errors.Is(err, errStopped) {
			return false, err
		}
		if err != nil || !delivered {
			// The events passed before it are done; this one is tried again.
			return false, errors.Join(err, s.store.advance(ctx, sub.ID, passed))
		}
		passed = e.Position
		if err := s.store.advance(ctx, sub.ID, passed); err != nil {
			return false, err
		}
	}
	return false, s.store.advance(ctx, sub.ID, passed)
}

// errStopped: the subscription was disabled or deleted while its worker was delivering;
// errDeleted, deleted.
var (
	errStopped = errors.New("the subscription was disabled or deleted")
	errDeleted = fmt.Errorf("%w: deleted", errStopped)
)

// forgetDeleted removes the delivery state of the deleted subscription id once more, as its
// worker stops: what the worker recorded after the deletion removed it (an attempt that was on
// its way then, the position past it) is kept of nothing. Its stream, not the read model,
// says it is deleted: a subscription's position is never lost on the read model's word.
func (s *Service) forgetDeleted(ctx context.Context, id string) {
	if _, err := s.Get(ctx, id); domain.ErrorCode(err) != domain.CodeNotFound {
		return
	}
	if err := s.store.remove(ctx, id); err != nil && ctx.Err() == nil {
		s.cfg.Log.Warn("webhooks: delivery state of a deleted subscription not removed", zap.String("subscription", id), zap.Error(err))
	}
}

// current brings sub up to date with its stream when a subscription event was appended since
// the worker last read it (*checked): its URL and event types, or errStopped when it was
// disabled or deleted. The stream, not the read model, which may not have the change yet: a
// worker in the middle of a batch sends nothing more once an admin stopped the subscription.
func (s *Service) current(ctx context.Context, sub *Subscription, checked *int64) error {
	at := s.changedAt.Load()
	if at <= *checked {
		return nil
	}
	fresh, err := s.Get(ctx, sub.ID)
	switch {
	case domain.ErrorCode(err) == domain.CodeNotFound:
		return errDeleted
	case err != nil:
		return err
	case !fresh.Enabled:
		return errStopped
	}
	*checked = at
	sub.URL, sub.EventTypes = fresh.URL, fresh.EventTypes
	return nil
}

// deliver sends e to the subscription until it is taken (true), the subscription is
// disabled (false), or ctx ends.
func (s *Service) deliver(ctx context.Context, sub *Subscription, e eventstore.Event) (bool, error) {
	d := Delivery{ID: deliveryID(sub.ID, e.ID), SubscriptionID: sub.ID, Position: e.Position, EventID: e.ID, EventType: e.Type,
		CreatedAt: s.cfg.Now()}
	if err := s.store.ensureDelivery(ctx, d); err != nil {
		return false, err
	}
	_, stored := e.Stored()
	personal := codec.IsSealed(stored)
	for attempt := 0; ; attempt++ {
		// An event with personal data, and any event tried again, is read again: the person
		// may have been erased since it was read (while the events ahead of it, or this one,
		// were retried), and each attempt carries the event as it reads now.
		var (
			body []byte
			err  error
		)
		if attempt > 0 || personal {
			body, err = s.freshPayload(ctx, e.ID)
		} else {
			body, err = payload(e)
		}
		if err != nil {
			return false, err
		}
		code, sendErr := s.send(ctx, *sub, d.ID, body)
		now := s.cfg.Now()
		if ctx.Err() != nil {
			return false, ctx.Err() // cut off by a shutdown: not the receiver's failure
		}
		if s.cfg.Observer != nil {
			s.cfg.Observer.Attempt(sendErr == nil, now.Sub(e.RecordedAt))
		}
		if sendErr == nil {
			return true, s.store.attempted(ctx, d.ID, StatusDelivered, "", code, now)
		}
		if err := s.store.attempted(ctx, d.ID, StatusPending, errText(sendErr), code, now); err != nil {
			return false, err
		}
		if sub.FailingSince == nil {
			sub.FailingSince = &now
			if err := s.store.failing(ctx, sub.ID, sub.Position, now); err != nil {
				return false, err
			}
		} else if now.Sub(*sub.FailingSince) >= s.cfg.DisableAfter {
			reason := "failing since " + sub.FailingSince.UTC().Format(time.RFC3339) + ": " + errText(sendErr)
			s.cfg.Log.Warn("webhooks: subscription disabled after failing too long", zap.String("subscription", sub.ID),
				zap.Time("failing_since", *sub.FailingSince))
			// The delivery first: whoever sees the subscription disabled sees why.
			if err := s.store.setStatus(ctx, d.ID, StatusFailed); err != nil {
				return false, err
			}
			position, err := s.disable(ctx, sub.ID, reason)
			if err != nil {
				// Not recorded: the next attempt, failing too, disables it again.
				return false, err
			}
			return false, &disabledError{position: position}
		}
		if !sleep(ctx, s.backoff(attempt)) {
			return false, ctx.Err()
		}
		// An admin may have disabled it, or changed its URL, meanwhile.
		fresh, err := s.get(ctx, sub.ID)
		if errors.Is(err, ErrNotFound) {
			return false, errDeleted // nothing is kept of it
		}
		if err != nil {
			return false, err
		}
		if !fresh.Enabled {
			return false, nil
		}
		fresh.secret = sub.secret
		*sub = fresh
	}
}

// disable records that the delivery gave up on a subscription and returns the log position of
// the event that disabled it (0 when an admin disabled it meanwhile: then nothing is
// recorded).
func (s *Service) disable(ctx context.Context, id, reason string) (int64, error) {
	res, err := s.cfg.Commands.SwitchWebhook(ctx, commands.Meta{Actor: Actor, Reason: reason},
		commands.SwitchWebhook{SubscriptionID: id, Automatic: true})
	if domain.ErrorCode(err) == domain.CodeRefused {
		return 0, nil
	}
	return res.Position, err
}

// awaitDisabled waits until the read model has taken in the disabling: it reached position
// (the disabling event's), or it shows the subscription disabled or gone. An admin may enable
// it again at once: a worker waiting to see it disabled would then wait for ever, holding its
// subscription, and the dispatcher would start none for it.
func (s *Service) awaitDisabled(ctx context.Context, id string, position int64) {
	for {
		sub, err := s.get(ctx, id)
		if errors.Is(err, ErrNotFound) || (err == nil && !sub.Enabled) {
			return
		}
		if position > 0 {
			if t, err := s.cfg.Tables(ctx); err == nil {
				if at, err := s.cfg.DB.Checkpoint(ctx, t); err == nil && at >= position {
					return
				}
			}
		}
		if !sleep(ctx, 20*time.Millisecond) {
			return
		}
	}
}

// disabledError: the delivery disabled the subscription it was delivering to, by the event at
// position (0: an admin disabled it first).
type disabledError struct{ position int64 }

func (e *disabledError) Error() string { return "subscription disabled after failing too long" }

// Actor is the actor of the events the delivery records itself.
const Actor = "webhook-delivery"

// wait waits for woken to close, at most d; false when ctx ended.
func wait(ctx context.Context, woken <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-woken:
		return true
	case <-t.C:
		return true
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// freshPayload is the body of the event id as the store reads it now.
func (s *Service) freshPayload(ctx context.Context, id string) ([]byte, error) {
	e, err := s.cfg.Store.EventByID(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("event %s: %w", id, err)
	}
	return payload(e)
}
