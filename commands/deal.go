package commands

import (
	"context"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/deal"
)

// OpenDeal creates a deal for an existing contact.
type OpenDeal struct {
	ContactID     string `json:"contact_id"`
	Title         string `json:"title"`
	Amount        int64  `json:"amount"`
	Currency      string `json:"currency"`
	Owner         string `json:"owner,omitempty"`
	ExpectedClose string `json:"expected_close,omitempty"`
}

// OpenDeal creates a deal in qualification. The owner defaults to the contact's owner.
func (h *Handler) OpenDeal(ctx context.Context, m Meta, cmd OpenDeal) (Result, error) {
	cmdIDs := newIDs(m)
	id := cmdIDs.aggregate()
	return execute(ctx, h, m, plan[*deal.Deal]{
		name: "OpenDeal", body: cmd, id: id, stream: deal.StreamName(id), fresh: newDeal, creates: true,
		decide: func(d *deal.Deal) ([]domain.Event, error) {
			owner := cmd.Owner
			if cmd.ContactID != "" {
				c, err := h.Contact(ctx, cmd.ContactID, At{})
				if domain.ErrorCode(err) == domain.CodeNotFound {
					return nil, domain.Invalid("contact_id", "contact %s does not exist", cmd.ContactID)
				}
				if err != nil {
					return nil, err
				}
				if c.MergedInto != "" {
					merged := domain.Merged("contact", c.ID, c.MergedInto)
					merged.Field = "contact_id"
					return nil, merged
				}
				owner = orDefault(owner, c.Owner)
			}
			return d.Open(deal.Open{DealID: id, ContactID: cmd.ContactID, Title: cmd.Title, Amount: cmd.Amount,
				Currency: cmd.Currency, Owner: owner, ExpectedClose: cmd.ExpectedClose})
		},
	}, cmdIDs)
}

// ChangeDealStage moves an open deal to another open stage.
type ChangeDealStage struct {
	DealID string `json:"-"`
	Stage  string `json:"stage"`
}

// ChangeDealStage moves an open deal to another open stage.
func (h *Handler) ChangeDealStage(ctx context.Context, m Meta, cmd ChangeDealStage) (Result, error) {
	return onDeal(ctx, h, m, "ChangeDealStage", cmd.DealID, cmd, func(d *deal.Deal) ([]domain.Event, error) {
		return d.ChangeStage(cmd.Stage)
	})
}

// WinDeal closes a deal as won.
type WinDeal struct {
	DealID   string `json:"-"`
	Amount   *int64 `json:"amount,omitempty"`
	ClosedAt string `json:"closed_at,omitempty"`
}

// WinDeal closes a deal as won; the contract date defaults to the business date of the command.
func (h *Handler) WinDeal(ctx context.Context, m Meta, cmd WinDeal) (Result, error) {
	occurred := m.OccurredAt
	if occurred.IsZero() {
		occurred = h.now()
	}
	return onDeal(ctx, h, m, "WinDeal", cmd.DealID, cmd, func(d *deal.Deal) ([]domain.Event, error) {
		return d.Win(cmd.Amount, cmd.ClosedAt, domain.DateOf(occurred))
	})
}

// LoseDeal closes a deal as lost.
type LoseDeal struct {
	DealID string `json:"-"`
	Reason string `json:"reason"`
	Note   string `json:"note,omitempty"`
}

// LoseDeal closes a deal as lost, with a reason from the list.
func (h *Handler) LoseDeal(ctx context.Context, m Meta, cmd LoseDeal) (Result, error) {
	if m.Reason == "" {
		m.Reason = cmd.Reason
	}
	if err := h.checkLostReason(ctx, cmd.Reason); err != nil {
		return Result{}, err
	}
	return onDeal(ctx, h, m, "LoseDeal", cmd.DealID, cmd, func(d *deal.Deal) ([]domain.Event, error) {
		return d.Lose(cmd.Reason, cmd.Note)
	})
}

// ReopenDeal opens a won or lost deal again.
type ReopenDeal struct {
	DealID string `json:"-"`
}

// ReopenDeal opens a won or lost deal again, in the stage it was closed from.
func (h *Handler) ReopenDeal(ctx context.Context, m Meta, cmd ReopenDeal) (Result, error) {
	return onDeal(ctx, h, m, "ReopenDeal", cmd.DealID, cmd, func(d *deal.Deal) ([]domain.Event, error) {
		return d.Reopen()
	})
}

// UpdateDeal edits an open deal; nil fields stay as they are.
type UpdateDeal struct {
	DealID        string  `json:"-"`
	Title         *string `json:"title,omitempty"`
	Amount        *int64  `json:"amount,omitempty"`
	Currency      *string `json:"currency,omitempty"`
	ExpectedClose *string `json:"expected_close,omitempty"`
	Owner         *string `json:"owner,omitempty"`
}

// UpdateDeal records the real changes of an open deal's title, amount (and currency, before a
// proposal), expected close and owner, one event each.
func (h *Handler) UpdateDeal(ctx context.Context, m Meta, cmd UpdateDeal) (Result, error) {
	return onDeal(ctx, h, m, "UpdateDeal", cmd.DealID, cmd, func(d *deal.Deal) ([]domain.Event, error) {
		return d.Update(deal.Update{Title: cmd.Title, Amount: cmd.Amount, Currency: cmd.Currency,
			ExpectedClose: cmd.ExpectedClose, Owner: cmd.Owner})
	})
}

func newDeal() *deal.Deal { return &deal.Deal{} }

func onDeal(ctx context.Context, h *Handler, m Meta, name, id string, body any,
	decide func(*deal.Deal) ([]domain.Event, error)) (Result, error) {
	if id == "" {
		return Result{}, domain.NotFound("deal not found")
	}
	cmdIDs := newIDs(m)
	p := plan[*deal.Deal]{name: name, body: body, id: id, stream: deal.StreamName(id), fresh: newDeal, decide: decide}
	if holdsPersonalData(name) {
		p.subject = func(d *deal.Deal) string { return d.ContactID }
	}
	return execute(ctx, h, m, p, cmdIDs)
}
