package commands

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/domain/deal"
	"github.com/eventcrm/crm/eventstore"
)

// At selects a past state of an aggregate. The zero value is the current state.
type At struct {
	// AsOf, when not zero, keeps only events that occurred at or before it (business time).
	AsOf time.Time
	// Version, when > 0, keeps only the first Version events of the stream.
	Version int64
}

const readBatch = 1000

// streamEvents returns the decoded events of stream (events[i] has version i+1). With trust, a
// cached copy is used as it is (the append's version check catches a stale one); otherwise
// the cached copy is brought up to date with the events after it, or the stream is read whole.
func (h *Handler) streamEvents(ctx context.Context, stream string, trust bool) (events []recorded, fromCache bool, err error) {
	cached, ok := h.cache.get(stream)
	if ok && trust {
		return cached, true, nil
	}
	events, err = h.readStream(ctx, stream, cached)
	return events, false, err
}

// readStream decodes the events of stream after those already known, and caches the result.
func (h *Handler) readStream(ctx context.Context, stream string, cached []recorded) ([]recorded, error) {
	events := cached
	for {
		batch, err := h.store.ReadStream(ctx, stream, int64(len(events))+1, readBatch)
		if errors.Is(err, eventstore.ErrStreamNotFound) {
			if len(events) > 0 {
				return nil, fmt.Errorf("read %s: stream vanished after version %d", stream, len(events))
			}
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", stream, err)
		}
		if len(batch) > 0 && len(events) == len(cached) {
			events = slices.Clip(events) // never append into the cached array
		}
		for _, e := range batch {
			if e.Version != int64(len(events))+1 {
				return nil, fmt.Errorf("read %s: version %d follows %d", stream, e.Version, len(events))
			}
			de, err := h.registry.Decode(e.Type, e.Data)
			if err != nil {
				return nil, fmt.Errorf("%s version %d: %w", stream, e.Version, err)
			}
			events = append(events, recorded{event: de, occurredAt: e.OccurredAt})
		}
		if len(batch) < readBatch {
			break
		}
	}
	h.cache.put(stream, events)
	return events, nil
}

// fold applies events to state, keeping only those selected by at (nil keeps all). It returns
// the version of the last event applied, 0 when none was.
func fold[A aggregate](state A, events []recorded, at *At) (A, int64) {
	var version int64
	for i, e := range events {
		v := int64(i) + 1
		if at != nil && ((at.Version > 0 && v > at.Version) || (!at.AsOf.IsZero() && e.occurredAt.After(at.AsOf))) {
			continue
		}
		state.Apply(e.event, e.occurredAt)
		version = v
	}
	return state, version
}

// load folds the current state of a stream, read fresh from the store.
func load[A aggregate](ctx context.Context, h *Handler, stream string, state A, at *At) (A, int64, error) {
	cached, _ := h.cache.get(stream)
	events, err := h.readStream(ctx, stream, cached)
	if err != nil {
		return state, 0, err
	}
	state, version := fold(state, events, at)
	return state, version, nil
}

// Contact returns a contact's state, now or at a past point. A contact that does not exist
// (or did not exist yet at that point) is a domain not-found error.
func (h *Handler) Contact(ctx context.Context, id string, at At) (*contact.Contact, error) {
	c, _, err := load(ctx, h, contact.StreamName(id), &contact.Contact{}, &at)
	if err != nil {
		return nil, err
	}
	if !c.Exists() {
		return nil, domain.NotFound("contact %s not found", id)
	}
	return c, nil
}

// Deal returns a deal's state, now or at a past point.
func (h *Handler) Deal(ctx context.Context, id string, at At) (*deal.Deal, error) {
	d, _, err := load(ctx, h, deal.StreamName(id), &deal.Deal{}, &at)
	if err != nil {
		return nil, err
	}
	if !d.Exists() {
		return nil, domain.NotFound("deal %s not found", id)
	}
	return d, nil
}

// History returns every event of a stream, in version order.
func (h *Handler) History(ctx context.Context, stream string) ([]eventstore.Event, error) {
	var all []eventstore.Event
	for from := int64(1); ; {
		batch, err := h.store.ReadStream(ctx, stream, from, readBatch)
		if errors.Is(err, eventstore.ErrStreamNotFound) {
			return nil, domain.NotFound("stream %s not found", stream)
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", stream, err)
		}
		all = append(all, batch...)
		if len(batch) < readBatch {
			return all, nil
		}
		from = batch[len(batch)-1].Version + 1
	}
}
