package commands

import (
	"context"
	"slices"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/contact"
)

// MergeContact merges a duplicate contact (ContactID) into the contact that survives (Into).
type MergeContact struct {
	ContactID string `json:"-"`
	Into      string `json:"into"`
	// AllowCrossAccount allows merging two contacts that belong to different accounts.
	AllowCrossAccount bool `json:"allow_cross_account,omitempty"`
}

// MergeContact records contact.merged_into.v1 on the duplicate's stream, then
// contact.duplicate_absorbed.v1 on the survivor's, under one command id. Result is the
// duplicate's new version, and the position of the survivor's event.
//
// The two appends are not one transaction. A merge that stopped between them is completed by
// the same command sent again (with its idempotency key, or without one: a duplicate merged
// into Into that Into has not absorbed yet). A merge that is complete refuses a repeat like
// any other command on the duplicate, with a CodeMerged error naming the survivor.
func (h *Handler) MergeContact(ctx context.Context, m Meta, cmd MergeContact) (Result, error) {
	if cmd.ContactID == "" {
		return Result{}, domain.NotFound("contact not found")
	}
	cmdIDs := newIDs(m)
	merged, err := h.mergeDuplicate(ctx, m, cmd, cmdIDs)
	if err != nil {
		return Result{}, err
	}
	absorbed, err := h.absorbDuplicate(ctx, m, cmd, cmdIDs.scoped("survivor"))
	if domain.ErrorCode(err) == domain.CodeConflict {
		// Absorbed already: a concurrent completion of the same merge won.
		return merged, nil
	}
	if err != nil {
		return Result{}, err
	}
	merged.Position = max(merged.Position, absorbed.Position)
	merged.Replayed = merged.Replayed && absorbed.Replayed
	return merged, nil
}

// mergeDuplicate appends the duplicate's half, or finds it appended by an earlier attempt
// whose survivor's half is missing.
func (h *Handler) mergeDuplicate(ctx context.Context, m Meta, cmd MergeContact, cmdIDs ids) (Result, error) {
	res, err := execute(ctx, h, m, plan[*contact.Contact]{
		name: "MergeContact", body: cmd, id: cmd.ContactID, stream: contact.StreamName(cmd.ContactID), fresh: newContact,
		decide: func(c *contact.Contact) ([]domain.Event, error) {
			survivor, err := h.existingContact(ctx, cmd.Into)
			if err != nil {
				return nil, err
			}
			return c.MergeInto(cmd.Into, survivor, cmd.AllowCrossAccount)
		},
	}, cmdIDs)
	if into, merged := domain.MergedInto(err); !merged || into != cmd.Into {
		return res, err
	}
	survivor, lerr := h.Contact(ctx, cmd.Into, At{})
	if lerr != nil {
		return Result{}, lerr
	}
	if slices.Contains(survivor.Absorbed, cmd.ContactID) {
		return Result{}, err
	}
	_, version, lerr := load(ctx, h, contact.StreamName(cmd.ContactID), newContact(), nil)
	if lerr != nil {
		return Result{}, lerr
	}
	return Result{ID: cmd.ContactID, Version: version}, nil
}

// absorbDuplicate appends the survivor's half. The client's expected version is the
// duplicate's, so it does not apply here.
func (h *Handler) absorbDuplicate(ctx context.Context, m Meta, cmd MergeContact, cmdIDs ids) (Result, error) {
	m.ExpectedVersion = nil
	return execute(ctx, h, m, plan[*contact.Contact]{
		name: "MergeContact/survivor", body: cmd, id: cmd.Into, stream: contact.StreamName(cmd.Into), fresh: newContact,
		decide: func(s *contact.Contact) ([]domain.Event, error) {
			duplicate, err := h.Contact(ctx, cmd.ContactID, At{})
			if err != nil {
				return nil, err
			}
			return s.AbsorbDuplicate(duplicate)
		},
	}, cmdIDs)
}

// existingContact returns a contact's state, nil when there is no such contact.
func (h *Handler) existingContact(ctx context.Context, id string) (*contact.Contact, error) {
	if id == "" {
		return nil, nil
	}
	c, err := h.Contact(ctx, id, At{})
	if domain.ErrorCode(err) == domain.CodeNotFound {
		return nil, nil
	}
	return c, err
}
