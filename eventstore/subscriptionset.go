package eventstore

import (
	"context"
	"sync"
	"sync/atomic"
)

// SubscriptionSet keeps track of the open subscriptions of a store so that closing the store
// ends them with ErrClosed, as Store.Close promises, without every backend writing that
// bookkeeping again. The zero value is ready to use.
type SubscriptionSet struct {
	mu     sync.Mutex
	closed bool
	subs   map[*trackedSubscription]struct{}
}

// Start starts a subscription with start, passing it a context that CloseAll also cancels.
// It returns ErrClosed once CloseAll has been called.
func (g *SubscriptionSet) Start(ctx context.Context, start func(ctx context.Context) (Subscription, error)) (Subscription, error) {
	if g.isClosed() {
		return nil, ErrClosed
	}
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	inner, err := start(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	s := &trackedSubscription{Subscription: inner, parent: parent, cancel: cancel, set: g}
	g.mu.Lock()
	if g.closed { // CloseAll ran while start was running
		g.mu.Unlock()
		cancel()
		_ = inner.Close()
		return nil, ErrClosed
	}
	if g.subs == nil {
		g.subs = make(map[*trackedSubscription]struct{})
	}
	g.subs[s] = struct{}{}
	g.mu.Unlock()
	// A subscription ended by its own context must not stay in the set until the store closes.
	s.stopForget = context.AfterFunc(parent, func() { g.forget(s) })
	return s, nil
}

// CloseAll ends every open subscription with ErrClosed, waits for them to stop, and makes
// Start refuse new ones.
func (g *SubscriptionSet) CloseAll() {
	g.mu.Lock()
	g.closed = true
	subs := g.subs
	g.subs = nil
	g.mu.Unlock()
	for s := range subs {
		// A subscription whose own context already ended keeps its nil Err.
		if s.parent.Err() == nil {
			s.storeClosed.Store(true)
		}
		s.cancel()
	}
	for s := range subs {
		_ = s.Subscription.Close()
	}
}

func (g *SubscriptionSet) isClosed() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closed
}

func (g *SubscriptionSet) forget(s *trackedSubscription) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.subs, s)
}

type trackedSubscription struct {
	Subscription
	parent      context.Context
	cancel      context.CancelFunc
	set         *SubscriptionSet
	stopForget  func() bool
	storeClosed atomic.Bool
}

func (s *trackedSubscription) Err() error {
	if err := s.Subscription.Err(); err != nil {
		return err
	}
	if s.storeClosed.Load() {
		return ErrClosed
	}
	return nil
}

func (s *trackedSubscription) Close() error {
	s.stopForget()
	s.set.forget(s)
	s.cancel()
	return s.Subscription.Close()
}
