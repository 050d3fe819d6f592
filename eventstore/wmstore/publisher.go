package wmstore

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/eventcrm/crm/eventstore"
)

var (
	// ErrPublisherClosed is returned by Publish after Close.
	ErrPublisherClosed = errors.New("publisher closed")
	// ErrPublishToAll is returned by Publish to AllTopic: the global log is written only
	// through its streams.
	ErrPublishToAll = errors.New("cannot publish to " + AllTopic)
)

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	// DefaultType is the event type of a message without KeyType metadata. Default
	// DefaultEventType.
	DefaultType string
}

func (c *PublisherConfig) setDefaults() {
	if c.DefaultType == "" {
		c.DefaultType = DefaultEventType
	}
}

// Publisher appends Watermill messages to the streams of an eventstore.Store. It does not own
// the store: Close leaves it open.
type Publisher struct {
	store  eventstore.Store
	config PublisherConfig
	closed atomic.Bool
}

var _ message.Publisher = (*Publisher)(nil)

// NewPublisher returns a Publisher that appends to store.
func NewPublisher(store eventstore.Store, config PublisherConfig) (*Publisher, error) {
	if store == nil {
		return nil, errors.New("new publisher: no store")
	}
	config.setDefaults()
	return &Publisher{store: store, config: config}, nil
}

// Publish appends msgs, in order, to the stream named topic, in one atomic append with
// eventstore.AnyVersion, and returns once they are stored. It runs with the context of the
// first message, canceled as soon as the context of any message is done.
//
// Publishing messages again (same UUIDs, same topic, same order) is an idempotent retry. It
// returns ErrPublishToAll for AllTopic, ErrPublisherClosed after Close, and the store's
// errors otherwise: eventstore.ErrDuplicateEventID when a UUID is already stored in this
// stream outside an exact retry, eventstore.ErrInvalidAppend for a message without UUID.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	if p.closed.Load() {
		return ErrPublisherClosed
	}
	if topic == AllTopic {
		return ErrPublishToAll
	}
	if len(msgs) == 0 {
		return nil
	}
	events := make([]eventstore.EventData, len(msgs))
	for i, msg := range msgs {
		e, err := eventData(msg, p.config.DefaultType)
		if err != nil {
			return fmt.Errorf("publish to %s: %w", topic, err)
		}
		events[i] = e
	}
	ctx, cancel := publishContext(msgs)
	defer cancel()
	_, err := p.store.Append(ctx, topic, eventstore.AnyVersion, events)
	if errors.Is(err, eventstore.ErrDuplicateEventID) {
		var derived bool
		events, derived, err = p.deriveIDs(ctx, topic, events, err)
		if derived {
			_, err = p.store.Append(ctx, topic, eventstore.AnyVersion, events)
		}
	}
	if err != nil {
		return fmt.Errorf("publish to %s: %w", topic, err)
	}
	return nil
}

// deriveIDs gives a derived ID to every event whose ID is already stored in another stream
// than topic, after an append failed with dupErr. It reports whether it derived any; when
// not, it returns dupErr: the duplicate is within topic, and no other ID would be right.
func (p *Publisher) deriveIDs(ctx context.Context, topic string, events []eventstore.EventData, dupErr error) ([]eventstore.EventData, bool, error) {
	out := make([]eventstore.EventData, len(events))
	derived := false
	for i, e := range events {
		out[i] = e
		stored, err := p.store.EventByID(ctx, e.ID)
		if errors.Is(err, eventstore.ErrEventNotFound) || (err == nil && stored.Stream == topic) {
			continue
		}
		if err != nil {
			return nil, false, err
		}
		if out[i], err = withDerivedID(e, topic); err != nil {
			return nil, false, err
		}
		derived = true
	}
	if !derived {
		return nil, false, dupErr
	}
	return out, true, nil
}

// publishContext returns the context of the first message, canceled when the context of any
// message is done: Watermill passes a context per message, an append takes one.
func publishContext(msgs []*message.Message) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(msgs[0].Context())
	seen := map[<-chan struct{}]bool{msgs[0].Context().Done(): true}
	var stops []func() bool
	for _, m := range msgs[1:] {
		mctx := m.Context()
		done := mctx.Done()
		if done == nil || seen[done] { // never canceled, or already watched
			continue
		}
		seen[done] = true
		if mctx.Err() != nil { // AfterFunc would cancel later, from another goroutine
			cancel()
			break
		}
		stops = append(stops, context.AfterFunc(mctx, cancel))
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel()
	}
}

// Close makes later Publish calls fail. It does not close the store.
func (p *Publisher) Close() error {
	p.closed.Store(true)
	return nil
}
