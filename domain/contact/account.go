package contact

import "github.com/eventcrm/crm/domain"

// Membership of an account is recorded on the contact's stream, not the account's: the rule
// "a contact belongs to at most one account at a time" is about one contact, and the contact
// stream's expected version makes it hold under concurrent links. Recorded on the accounts,
// a move would be two appends to two streams that nothing orders, and two concurrent links
// of one contact could both succeed. An account's members are a read model of these events.

// LinkAccount decides that the contact belongs to accountID. That the account exists is
// checked by the caller, which can read it. A contact in another account moves: one event
// names both accounts.
func (c *Contact) LinkAccount(accountID string) ([]domain.Event, error) {
	if err := c.mustExist(); err != nil {
		return nil, err
	}
	if accountID == "" {
		return nil, domain.Invalid("account_id", "is required")
	}
	if c.AccountID == accountID {
		return nil, domain.Refused("contact already belongs to account %s", accountID)
	}
	return []domain.Event{&AccountLinked{ContactID: c.ID, AccountID: accountID, FromAccountID: c.AccountID}}, nil
}

// UnlinkAccount decides that the contact no longer belongs to accountID, the account it is in.
func (c *Contact) UnlinkAccount(accountID string) ([]domain.Event, error) {
	if err := c.mustExist(); err != nil {
		return nil, err
	}
	if accountID == "" {
		return nil, domain.Invalid("account_id", "is required")
	}
	switch c.AccountID {
	case accountID:
		return []domain.Event{&AccountUnlinked{ContactID: c.ID, AccountID: accountID}}, nil
	case "":
		return nil, domain.Refused("contact belongs to no account")
	default:
		return nil, domain.Refused("contact belongs to account %s, not %s", c.AccountID, accountID)
	}
}
