package codec

import (
	"context"
	"fmt"
	"sync"

	"github.com/eventcrm/crm/eventstore"
)

// Store is an eventstore.Store read and written through a Codec: Append seals, every read
// opens and upcasts. It also passes on eventstore.Checkpoints when the store it wraps has it.
type Store struct {
	inner eventstore.Store
	codec *Codec
}

// NewStore wraps inner.
func NewStore(inner eventstore.Store, c *Codec) *Store { return &Store{inner: inner, codec: c} }

// Codec returns the store's codec.
func (s *Store) Codec() *Codec { return s.codec }

// Unwrap returns the wrapped store: what verification reads.
func (s *Store) Unwrap() eventstore.Store { return s.inner }

// Append implements eventstore.Store: personal members are sealed before the inner append.
func (s *Store) Append(ctx context.Context, stream string, expected int64, events []eventstore.EventData) (eventstore.AppendResult, error) {
	sealed := events
	for i, e := range events {
		if !s.codec.Personal(e.Type) {
			continue
		}
		data, err := s.codec.Seal(ctx, e.ID, e.Type, e.Data)
		if err != nil {
			return eventstore.AppendResult{}, fmt.Errorf("append to %s: %w", stream, err)
		}
		if &sealed[0] == &events[0] {
			sealed = append([]eventstore.EventData(nil), events...) // never change the caller's slice
		}
		sealed[i].Data = data
	}
	return s.inner.Append(ctx, stream, expected, sealed)
}

// openAll opens events in place.
func (s *Store) openAll(ctx context.Context, events []eventstore.Event, err error) ([]eventstore.Event, error) {
	if err != nil {
		return events, err
	}
	for i := range events {
		if events[i], err = s.codec.Open(ctx, events[i]); err != nil {
			return nil, err
		}
	}
	return events, nil
}

// ReadStream implements eventstore.Store.
func (s *Store) ReadStream(ctx context.Context, stream string, from int64, limit int) ([]eventstore.Event, error) {
	events, err := s.inner.ReadStream(ctx, stream, from, limit)
	return s.openAll(ctx, events, err)
}

// ReadAll implements eventstore.Store.
func (s *Store) ReadAll(ctx context.Context, after int64, limit int) ([]eventstore.Event, error) {
	events, err := s.inner.ReadAll(ctx, after, limit)
	return s.openAll(ctx, events, err)
}

// EventByID implements eventstore.Store.
func (s *Store) EventByID(ctx context.Context, id string) (eventstore.Event, error) {
	e, err := s.inner.EventByID(ctx, id)
	if err != nil {
		return e, err
	}
	return s.codec.Open(ctx, e)
}

// Close implements eventstore.Store; it closes the wrapped store.
func (s *Store) Close() error { return s.inner.Close() }

// LoadCheckpoint passes on to the wrapped store's eventstore.Checkpoints.
func (s *Store) LoadCheckpoint(ctx context.Context, name string) (int64, error) {
	cps, ok := s.inner.(eventstore.Checkpoints)
	if !ok {
		return 0, fmt.Errorf("store keeps no checkpoints")
	}
	return cps.LoadCheckpoint(ctx, name)
}

// SaveCheckpoint passes on to the wrapped store's eventstore.Checkpoints.
func (s *Store) SaveCheckpoint(ctx context.Context, name string, position int64) error {
	cps, ok := s.inner.(eventstore.Checkpoints)
	if !ok {
		return fmt.Errorf("store keeps no checkpoints")
	}
	return cps.SaveCheckpoint(ctx, name, position)
}

// Subscribe implements eventstore.Store: the events delivered are opened. An event that does
// not open ends the subscription with its error.
func (s *Store) Subscribe(ctx context.Context, after int64) (eventstore.Subscription, error) {
	inner, err := s.inner.Subscribe(ctx, after)
	if err != nil {
		return nil, err
	}
	sub := &subscription{inner: inner, events: make(chan eventstore.Event), done: make(chan struct{})}
	go sub.run(ctx, s.codec)
	return sub, nil
}

type subscription struct {
	inner  eventstore.Subscription
	events chan eventstore.Event
	done   chan struct{}
	once   sync.Once
	mu     sync.Mutex
	err    error
}

func (s *subscription) run(ctx context.Context, c *Codec) {
	defer close(s.events)
	for e := range s.inner.Events() {
		opened, err := c.Open(ctx, e)
		if err != nil {
			s.mu.Lock()
			s.err = err
			s.mu.Unlock()
			_ = s.inner.Close()
			return
		}
		select {
		case s.events <- opened:
		case <-s.done:
			return
		case <-ctx.Done():
			return
		}
	}
}

func (s *subscription) Events() <-chan eventstore.Event { return s.events }

func (s *subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	return s.inner.Err()
}

func (s *subscription) Close() error {
	s.once.Do(func() { close(s.done) })
	err := s.inner.Close()
	for range s.events { // wait for run to stop
	}
	return err
}
