package deal

import "github.com/eventcrm/crm/domain"

// Persisted event names of the deal stream. Never change one: add a new version instead.
const (
	TypeOpened       = "deal.opened.v1"
	TypeStageChanged = "deal.stage_changed.v1"
	TypeWon          = "deal.won.v1"
	TypeLost         = "deal.lost.v1"
	TypeReopened     = "deal.reopened.v1"
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

func (*Opened) EventType() string       { return TypeOpened }
func (*StageChanged) EventType() string { return TypeStageChanged }
func (*Won) EventType() string          { return TypeWon }
func (*Lost) EventType() string         { return TypeLost }
func (*Reopened) EventType() string     { return TypeReopened }

// Events returns a prototype of every deal event, for the registry.
func Events() []domain.Event {
	return []domain.Event{&Opened{}, &StageChanged{}, &Won{}, &Lost{}, &Reopened{}}
}
