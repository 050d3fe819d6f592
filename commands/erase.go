package commands

import (
	"context"
	"errors"
	"fmt"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/codec"
)

// Shredder destroys a data subject's key (codec.Codec does, through its key store).
type Shredder interface {
	Destroy(ctx context.Context, subject string) error
}

// WithShredder lets the handler erase contacts by destroying their keys.
func WithShredder(s Shredder) Option { return func(h *Handler) { h.shredder = s } }

// EraseContact erases a contact's personal data.
type EraseContact struct {
	ContactID string `json:"-"`
	Reason    string `json:"reason"`
}

// EraseContact destroys the contact's key, then records contact.erased.v1 (the reason is also
// the event's metadata reason unless the request gave one; neither may name the person). A retry after a failure between
// the two records the erasure. A contact whose data was stored before sealing existed is
// refused: its personal data is in the log in clear, and destroying a key would erase nothing.
func (h *Handler) EraseContact(ctx context.Context, m Meta, cmd EraseContact) (Result, error) {
	if h.shredder == nil {
		return Result{}, errors.New("erase contact: this server seals no personal data (no key store)")
	}
	if m.Reason == "" {
		m.Reason = cmd.Reason
	}
	if err := h.mustBeSealed(ctx, cmd.ContactID); err != nil {
		return Result{}, err
	}
	return onContact(ctx, h, m, "EraseContact", cmd.ContactID, cmd, func(c *contact.Contact, _ ids) ([]domain.Event, error) {
		events, err := c.Erase(cmd.Reason)
		if err != nil {
			return nil, err
		}
		// The metadata reason (X-Reason) is kept in clear beside the event.
		if err := c.CheckReasonNamesNobody(m.Reason); err != nil {
			return nil, err
		}
		if err := h.shredder.Destroy(ctx, c.ID); err != nil {
			return nil, fmt.Errorf("destroy key of contact %s: %w", c.ID, err)
		}
		return events, nil
	})
}

// mustBeSealed refuses a contact created before sealing existed: every event about a contact
// created since is sealed, so its first event tells.
func (h *Handler) mustBeSealed(ctx context.Context, id string) error {
	first, err := h.store.ReadStream(ctx, contact.StreamName(id), 1, 1)
	if errors.Is(err, eventstore.ErrStreamNotFound) || (err == nil && len(first) == 0) {
		return domain.NotFound("contact not found")
	}
	if err != nil {
		return fmt.Errorf("read contact %s: %w", id, err)
	}
	if _, data := first[0].Stored(); !codec.IsSealed(data) {
		return domain.Refused("contact %s was recorded before personal data was sealed: its name and "+
			"details are in the log in clear, and the log is never rewritten, so destroying a key would "+
			"erase nothing (see the README, Erasure)", id)
	}
	return nil
}

// DropCache empties the handler's cache of decoded streams, which may hold personal data that
// was erased since it was read.
func (h *Handler) DropCache() { h.cache.clear() }
