package esdb

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"go.uber.org/zap"

	"github.com/eventcrm/crm/eventstore"
)

// Subscribe implements eventstore.Store with a catch-up subscription to $all after the given
// position (a first read settles it to a record's position, see cursor). System events are
// filtered out by the server (esdb.ExcludeSystemEventsFilter), event id index records by the
// subscription. When the subscription drops for a transient reason (node restart, leader
// election, network), it subscribes again after the last record it received, with backoff.
func (s *Store) Subscribe(ctx context.Context, after int64) (eventstore.Subscription, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	sub := &subscription{
		events: make(chan eventstore.Event, s.cfg.subscriptionBuffer),
		cancel: cancel,
		done:   make(chan struct{}),
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		cancel(nil)
		return nil, eventstore.ErrClosed
	}
	s.subs[sub] = struct{}{}
	s.mu.Unlock()
	go s.run(ctx, sub, after)
	return sub, nil
}

type subscription struct {
	events chan eventstore.Event
	cancel context.CancelCauseFunc
	done   chan struct{}

	mu  sync.Mutex
	err error
}

func (sub *subscription) Events() <-chan eventstore.Event { return sub.events }

func (sub *subscription) Err() error {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	return sub.err
}

func (sub *subscription) Close() error {
	sub.cancel(nil)
	<-sub.done
	return nil
}

func (s *Store) run(ctx context.Context, sub *subscription, after int64) {
	defer close(sub.done)
	defer close(sub.events)
	defer func() {
		s.mu.Lock()
		delete(s.subs, sub)
		s.mu.Unlock()
	}()
	err := s.follow(ctx, sub, after)
	if ctx.Err() != nil {
		// Ended by its context or Close: no error, unless the store was closed.
		err = nil
		if cause := context.Cause(ctx); errors.Is(cause, eventstore.ErrClosed) {
			err = cause
		}
	}
	sub.mu.Lock()
	sub.err = err
	sub.mu.Unlock()
}

// follow subscribes again and again until ctx is done or a failure is not transient.
func (s *Store) follow(ctx context.Context, sub *subscription, after int64) error {
	c := cursor{floor: after}
	deliver := func(e eventstore.Event) bool {
		select {
		case sub.events <- e:
			return true
		case <-ctx.Done():
			return false
		}
	}
	failures := 0
	for {
		retry, err := s.stream(ctx, &c, deliver, &failures)
		if ctx.Err() != nil {
			return nil
		}
		if !retry {
			return err
		}
		failures++
		if s.cfg.maxReconnects > 0 && failures > s.cfg.maxReconnects {
			return fmt.Errorf("subscription gave up after %d reconnects: %w", s.cfg.maxReconnects, err)
		}
		delay := s.cfg.reconnectDelay(failures)
		s.cfg.logger.Warn("esdb subscription failed, subscribing again",
			zap.Error(err), zap.Int64("after", c.floor), zap.Int("failures", failures), zap.Duration("delay", delay))
		if !sleep(ctx, delay) {
			return nil
		}
	}
}

// stream runs one subscription to $all after the cursor until it drops and reports whether
// subscribing again may help. Progress resets failures.
func (s *Store) stream(ctx context.Context, c *cursor, deliver func(eventstore.Event) bool, failures *int) (retry bool, err error) {
	if c.from == nil {
		// A subscription starts after the position of a record: a first read finds one.
		if _, err := s.readPage(ctx, c, 1, deliver); err != nil {
			return retryable(err), fmt.Errorf("read $all after %d: %w", c.floor, err)
		}
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
	}
	from := c.from
	if from == nil { // $all has no record at or before the floor
		from = esdbclient.Start{}
	}
	var es *esdbclient.Subscription
	err = s.do(ctx, func(ctx context.Context, client *esdbclient.Client) (err error) {
		es, err = client.SubscribeToAll(ctx, esdbclient.SubscribeToAllOptions{
			From:   from,
			Filter: esdbclient.ExcludeSystemEventsFilter(),
		})
		return err
	})
	if err != nil {
		return retryable(err), fmt.Errorf("subscribe to $all after %d: %w", c.floor, err)
	}
	// The subscription's stream lives on after do: Recv does not wait on the client's internal
	// channel, and Close ends subscriptions before it closes the client.
	defer es.Close()
	for {
		msg := es.Recv()
		switch {
		case msg.SubscriptionDropped != nil:
			err := translateError(ctx, msg.SubscriptionDropped.Error)
			return retryable(err), fmt.Errorf("subscription to $all dropped after %d: %w", c.floor, err)
		case msg.CheckPointReached != nil:
			*failures = 0
		case msg.EventAppeared != nil:
			*failures = 0
			rec := msg.EventAppeared.OriginalEvent()
			if rec == nil {
				continue
			}
			c.from = rec.Position
			e, ok, err := c.accept(rec)
			if err != nil {
				return false, fmt.Errorf("subscription to $all: %w", err)
			}
			if ok && !deliver(e) {
				return false, ctx.Err()
			}
		}
	}
}

// sleep waits for d and reports false when ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
