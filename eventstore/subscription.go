package eventstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// PollConfig configures a subscription built on ReadAll.
type PollConfig struct {
	// Wake, when not nil, returns a channel that is closed when new events may be visible.
	// It is asked for a fresh channel before every read. Without it, or when it stays silent,
	// the subscription polls every Interval.
	Wake func() <-chan struct{}
	// Interval is the polling fallback. Default 200ms.
	Interval time.Duration
	// BatchSize is the ReadAll limit. Default 1000.
	BatchSize int
	// Buffer is the capacity of the Events channel. Default 1024.
	Buffer int
}

// PollSubscribe implements Store.Subscribe for any backend whose ReadAll never skips an event
// that becomes visible later: it reads the log after position, delivers it, and waits for
// Wake or Interval when it has caught up.
func PollSubscribe(ctx context.Context, read func(ctx context.Context, after int64, limit int) ([]Event, error), after int64, cfg PollConfig) Subscription {
	if cfg.Interval <= 0 {
		cfg.Interval = 200 * time.Millisecond
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 1000
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = 1024
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &pollSubscription{events: make(chan Event, cfg.Buffer), cancel: cancel, done: make(chan struct{})}
	go s.run(ctx, read, after, cfg)
	return s
}

type pollSubscription struct {
	events chan Event
	cancel context.CancelFunc
	done   chan struct{}

	mu  sync.Mutex
	err error
}

func (s *pollSubscription) Events() <-chan Event { return s.events }

func (s *pollSubscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *pollSubscription) Close() error {
	s.cancel()
	<-s.done
	return nil
}

func (s *pollSubscription) run(ctx context.Context, read func(context.Context, int64, int) ([]Event, error), after int64, cfg PollConfig) {
	defer close(s.done)
	defer close(s.events)
	timer := time.NewTimer(cfg.Interval)
	defer timer.Stop()
	for {
		var wake <-chan struct{}
		if cfg.Wake != nil {
			wake = cfg.Wake()
		}
		batch, err := read(ctx, after, cfg.BatchSize)
		if err != nil {
			if ctx.Err() == nil {
				s.fail(fmt.Errorf("subscription read after %d: %w", after, err))
			}
			return
		}
		for _, e := range batch {
			select {
			case s.events <- e:
				after = e.Position
			case <-ctx.Done():
				return
			}
		}
		if len(batch) == cfg.BatchSize {
			continue
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(cfg.Interval)
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-timer.C:
		}
	}
}

func (s *pollSubscription) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !errors.Is(err, context.Canceled) {
		s.err = err
	}
}

// Notifier wakes subscriptions when a backend has committed new events. The zero value is
// not usable; use NewNotifier.
type Notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

// NewNotifier returns a notifier with no pending wake-up.
func NewNotifier() *Notifier { return &Notifier{ch: make(chan struct{})} }

// Wait returns a channel closed by the next Notify.
func (n *Notifier) Wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ch
}

// Notify wakes every current waiter.
func (n *Notifier) Notify() {
	n.mu.Lock()
	defer n.mu.Unlock()
	close(n.ch)
	n.ch = make(chan struct{})
}
