package contact

import (
	"slices"

	"github.com/eventcrm/crm/domain"
)

// A merge is two facts on two streams: the duplicate records MergedInto (and from then on
// refuses every command, naming the survivor), then the survivor records DuplicateAbsorbed.
// The duplicate's half is decided first because it is the one that must hold exactly once:
// its expected version makes two concurrent merges of one duplicate impossible. The
// survivor's half only adds a fact and can be completed later if the first attempt stopped
// between the two appends.

// MergeInto decides that the contact, a duplicate, is merged into intoID. survivor is the
// state of intoID, nil when it does not exist. Merging across accounts (both contacts in an
// account, not the same one) is refused unless allowCrossAccount is set.
func (c *Contact) MergeInto(intoID string, survivor *Contact, allowCrossAccount bool) ([]domain.Event, error) {
	if err := c.mustExist(); err != nil {
		return nil, err
	}
	if intoID == "" {
		return nil, domain.Invalid("into", "is required")
	}
	if intoID == c.ID {
		return nil, domain.Refused("a contact cannot be merged into itself")
	}
	if survivor == nil || !survivor.Exists() {
		return nil, domain.Invalid("into", "contact %s does not exist", intoID)
	}
	if survivor.MergedInto != "" {
		return nil, domain.Refused("contact %s was itself merged into %s: merge into that one", intoID, survivor.MergedInto)
	}
	cross := c.AccountID != "" && survivor.AccountID != "" && c.AccountID != survivor.AccountID
	if cross && !allowCrossAccount {
		return nil, domain.Refused("contact %s belongs to account %s and %s to account %s: set allow_cross_account to merge across accounts",
			c.ID, c.AccountID, intoID, survivor.AccountID)
	}
	return []domain.Event{&MergedInto{ContactID: c.ID, Into: intoID, CrossAccount: cross}}, nil
}

// AbsorbDuplicate decides the survivor's half of a merge: duplicate (which already records
// that it was merged into this contact) now belongs to this contact's history. It is decided
// even if this contact was merged on in the meantime, since the duplicate's half is already a
// fact; a duplicate absorbed before is a conflict, so a completed merge is never recorded twice.
func (c *Contact) AbsorbDuplicate(duplicate *Contact) ([]domain.Event, error) {
	if !c.Exists() {
		return nil, domain.NotFound("contact not found")
	}
	if duplicate == nil || duplicate.MergedInto != c.ID {
		return nil, domain.Refused("only a contact merged into %s can be absorbed by it", c.ID)
	}
	if slices.Contains(c.Absorbed, duplicate.ID) {
		return nil, domain.Conflict("contact %s has already absorbed %s", c.ID, duplicate.ID)
	}
	return []domain.Event{&DuplicateAbsorbed{ContactID: c.ID, DuplicateID: duplicate.ID}}, nil
}
