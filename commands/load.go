package commands

import (
	"context"
	"errors"
	"fmt"
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

func (a *At) keeps(e eventstore.Event) bool {
	if a == nil {
		return true
	}
	if a.Version > 0 && e.Version > a.Version {
		return false
	}
	return a.AsOf.IsZero() || !e.OccurredAt.After(a.AsOf)
}

const readBatch = 1000

// load folds a stream into state. It returns the version of the last event folded, 0 when the
// stream has none (a missing stream is not an error here: the domain decides what that means).
func load[A aggregate](ctx context.Context, h *Handler, stream string, state A, at *At) (A, int64, error) {
	var version int64
	for from := int64(1); ; {
		batch, err := h.store.ReadStream(ctx, stream, from, readBatch)
		if errors.Is(err, eventstore.ErrStreamNotFound) {
			return state, 0, nil
		}
		if err != nil {
			return state, 0, fmt.Errorf("read %s: %w", stream, err)
		}
		for _, e := range batch {
			if !at.keeps(e) {
				continue
			}
			de, err := h.registry.Decode(e.Type, e.Data)
			if err != nil {
				return state, 0, fmt.Errorf("%s version %d: %w", stream, e.Version, err)
			}
			state.Apply(de, e.OccurredAt)
			version = e.Version
		}
		if len(batch) < readBatch {
			return state, version, nil
		}
		from = batch[len(batch)-1].Version + 1
	}
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
