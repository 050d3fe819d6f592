package commands

import (
	"context"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/account"
	"github.com/eventcrm/crm/domain/contact"
)

// CreateAccount creates a company account.
type CreateAccount struct {
	Name     string           `json:"name"`
	Domain   string           `json:"domain,omitempty"`
	Industry string           `json:"industry,omitempty"`
	Size     string           `json:"size,omitempty"`
	Address  *account.Address `json:"address,omitempty"`
}

// CreateAccount creates an account; Result.ID is its id.
func (h *Handler) CreateAccount(ctx context.Context, m Meta, cmd CreateAccount) (Result, error) {
	cmdIDs := newIDs(m)
	id := cmdIDs.aggregate()
	return execute(ctx, h, m, plan[*account.Account]{
		name: "CreateAccount", body: cmd, id: id, stream: account.StreamName(id), fresh: newAccount, creates: true,
		decide: func(a *account.Account) ([]domain.Event, error) {
			return a.Create(id, account.Details{Name: cmd.Name, Domain: cmd.Domain, Industry: cmd.Industry, Size: cmd.Size, Address: cmd.Address})
		},
	}, cmdIDs)
}

// UpdateAccount changes account details; nil fields stay as they are.
type UpdateAccount struct {
	AccountID string           `json:"-"`
	Name      *string          `json:"name,omitempty"`
	Domain    *string          `json:"domain,omitempty"`
	Industry  *string          `json:"industry,omitempty"`
	Size      *string          `json:"size,omitempty"`
	Address   *account.Address `json:"address,omitempty"`
}

// UpdateAccount records the details that really change.
func (h *Handler) UpdateAccount(ctx context.Context, m Meta, cmd UpdateAccount) (Result, error) {
	if cmd.AccountID == "" {
		return Result{}, domain.NotFound("account not found")
	}
	cmdIDs := newIDs(m)
	return execute(ctx, h, m, plan[*account.Account]{
		name: "UpdateAccount", body: cmd, id: cmd.AccountID, stream: account.StreamName(cmd.AccountID), fresh: newAccount,
		decide: func(a *account.Account) ([]domain.Event, error) {
			return a.Update(account.Update{Name: cmd.Name, Domain: cmd.Domain, Industry: cmd.Industry, Size: cmd.Size, Address: cmd.Address})
		},
	}, cmdIDs)
}

// LinkContactToAccount puts a contact in an account, moving it from the one it is in.
type LinkContactToAccount struct {
	ContactID string `json:"-"`
	AccountID string `json:"account_id"`
}

// LinkContactToAccount records on the contact's stream that it belongs to the account (see
// contact.LinkAccount for why there). The account must exist.
func (h *Handler) LinkContactToAccount(ctx context.Context, m Meta, cmd LinkContactToAccount) (Result, error) {
	return onContact(ctx, h, m, "LinkContactToAccount", cmd.ContactID, cmd, func(c *contact.Contact, _ ids) ([]domain.Event, error) {
		if err := h.mustHaveAccount(ctx, cmd.AccountID); err != nil {
			return nil, err
		}
		return c.LinkAccount(cmd.AccountID)
	})
}

// UnlinkContactFromAccount takes a contact out of the account it is in.
type UnlinkContactFromAccount struct {
	ContactID string `json:"-"`
	AccountID string `json:"account_id"`
}

// UnlinkContactFromAccount records that the contact no longer belongs to the account.
func (h *Handler) UnlinkContactFromAccount(ctx context.Context, m Meta, cmd UnlinkContactFromAccount) (Result, error) {
	return onContact(ctx, h, m, "UnlinkContactFromAccount", cmd.ContactID, cmd, func(c *contact.Contact, _ ids) ([]domain.Event, error) {
		return c.UnlinkAccount(cmd.AccountID)
	})
}

// mustHaveAccount reports a missing account as a bad account_id, as OpenDeal does a contact.
func (h *Handler) mustHaveAccount(ctx context.Context, id string) error {
	if id == "" {
		return domain.Invalid("account_id", "is required")
	}
	_, err := h.Account(ctx, id, At{})
	if domain.ErrorCode(err) == domain.CodeNotFound {
		return domain.Invalid("account_id", "account %s does not exist", id)
	}
	return err
}

// Account returns an account's state, now or at a past point.
func (h *Handler) Account(ctx context.Context, id string, at At) (*account.Account, error) {
	a, _, err := load(ctx, h, account.StreamName(id), &account.Account{}, &at)
	if err != nil {
		return nil, err
	}
	if !a.Exists() {
		return nil, domain.NotFound("account %s not found", id)
	}
	return a, nil
}

func newAccount() *account.Account { return &account.Account{} }
