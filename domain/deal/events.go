package deal

import "github.com/eventcrm/crm/domain"

// Persisted event names of the deal stream. Never change one: add a new version instead.
const (
	TypeOpened       = "deal.opened.v1"
	TypeStageChanged = "deal.stage_changed.v1"
	TypeWon          = "deal.won.v1"
	TypeLost         = "deal.lost.v1"
	TypeReopened     = "deal.reopened.v1"
	// Edits of an open deal: one event per kind of change, each with both values, so the
	// board and the forecast move a deal's amount or owner at the change's business time
	// without folding the deal again.
	TypeTitleChanged         = "deal.title_changed.v1"
	TypeAmountChanged        = "deal.amount_changed.v1"
	TypeExpectedCloseChanged = "deal.expected_close_changed.v1"
	TypeOwnerChanged         = "deal.owner_changed.v1"
)

// Opened: a deal was created for a contact; it starts in qualification.
type Opened struct {
	DealID        string       `json:"deal_id"`
	ContactID     string       `json:"contact_id"`
	Title         string       `json:"title"`
	Amount        domain.Money `json:"amount"`
	Owner         string       `json:"owner"`
	ExpectedClose domain.Date  `json:"expected_close,omitempty"`
	Stage         Stage        `json:"stage"`
}

// StageChanged: an open deal moved to another open stage.
type StageChanged struct {
	DealID string `json:"deal_id"`
	From   Stage  `json:"from"`
	To     Stage  `json:"to"`
}

// Won: the contract was signed, for the final amount on the contract date.
type Won struct {
	DealID    string       `json:"deal_id"`
	ContactID string       `json:"contact_id"`
	FromStage Stage        `json:"from_stage"`
	Amount    domain.Money `json:"amount"`
	ClosedAt  domain.Date  `json:"closed_at"`
}

// Lost: the deal was lost, for a reason.
type Lost struct {
	DealID    string       `json:"deal_id"`
	ContactID string       `json:"contact_id"`
	FromStage Stage        `json:"from_stage"`
	Reason    LostReason   `json:"reason"`
	Note      string       `json:"note,omitempty"`
	Amount    domain.Money `json:"amount"`
}

// Reopened: a won or lost deal was opened again, in the stage it was closed from.
type Reopened struct {
	DealID string `json:"deal_id"`
	From   Stage  `json:"from"`
	To     Stage  `json:"to"`
}

// TitleChanged: the deal was renamed.
type TitleChanged struct {
	DealID string `json:"deal_id"`
	From   string `json:"from"`
	To     string `json:"to"`
}

// AmountChanged: the expected amount of an open deal changed (in another currency only
// before a proposal, see Update).
type AmountChanged struct {
	DealID string       `json:"deal_id"`
	From   domain.Money `json:"from"`
	To     domain.Money `json:"to"`
}

// ExpectedCloseChanged: the expected close date moved; an empty date means none.
type ExpectedCloseChanged struct {
	DealID string      `json:"deal_id"`
	From   domain.Date `json:"from,omitempty"`
	To     domain.Date `json:"to,omitempty"`
}

// OwnerChanged: the deal was handed to another sales rep.
type OwnerChanged struct {
	DealID string `json:"deal_id"`
	From   string `json:"from"`
	To     string `json:"to"`
}

func (*Opened) EventType() string               { return TypeOpened }
func (*StageChanged) EventType() string         { return TypeStageChanged }
func (*Won) EventType() string                  { return TypeWon }
func (*Lost) EventType() string                 { return TypeLost }
func (*Reopened) EventType() string             { return TypeReopened }
func (*TitleChanged) EventType() string         { return TypeTitleChanged }
func (*AmountChanged) EventType() string        { return TypeAmountChanged }
func (*ExpectedCloseChanged) EventType() string { return TypeExpectedCloseChanged }
func (*OwnerChanged) EventType() string         { return TypeOwnerChanged }

// Events returns a prototype of every deal event, for the registry.
func Events() []domain.Event {
	return []domain.Event{&Opened{}, &StageChanged{}, &Won{}, &Lost{}, &Reopened{},
		&TitleChanged{}, &AmountChanged{}, &ExpectedCloseChanged{}, &OwnerChanged{}}
}
