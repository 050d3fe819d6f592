package deal

import (
	"strings"
	"unicode/utf8"

	"github.com/eventcrm/crm/domain"
)

// Update edits an open deal; nil fields stay as they are.
type Update struct {
	Title *string
	// Amount is the new expected amount; Currency, when set, its currency (default: the
	// deal's). A currency is never given without an amount: the CRM converts no money.
	Amount   *int64
	Currency *string
	// ExpectedClose is YYYY-MM-DD, or "" to clear it.
	ExpectedClose *string
	Owner         *string
}

// Update decides the edits of an open deal: one event per field that really changes, in the
// order title, amount, expected close, owner. A command that changes nothing is refused, as is
// any edit of a won or lost deal (reopen it first: a won deal's amount is its contract's).
//
// Currency rule: the currency may change only while the deal is in qualification or
// needs_analysis. From proposal on, the customer has a quote in that currency, and amounts
// summed per currency on the board and the forecast must not jump between currencies; a deal
// moved back before proposal is being requalified and may change currency again.
func (d *Deal) Update(cmd Update) ([]domain.Event, error) {
	if err := d.mustExist(); err != nil {
		return nil, err
	}
	if !d.IsOpen() {
		return nil, domain.Refused("deal is %s: reopen it before editing it", d.Stage)
	}
	steps := []func(Update) (domain.Event, error){d.titleChange, d.amountChange, d.expectedCloseChange, d.ownerChange}
	var events []domain.Event
	for _, step := range steps {
		e, err := step(cmd)
		if err != nil {
			return nil, err
		}
		if e != nil {
			events = append(events, e)
		}
	}
	if len(events) == 0 {
		return nil, domain.Refused("the update changes nothing")
	}
	return events, nil
}

func (d *Deal) titleChange(cmd Update) (domain.Event, error) {
	if cmd.Title == nil {
		return nil, nil
	}
	title := strings.TrimSpace(*cmd.Title)
	if title == "" {
		return nil, domain.Invalid("title", "must not be empty")
	}
	if utf8.RuneCountInString(title) > 500 {
		return nil, domain.Invalid("title", "is longer than 500 characters")
	}
	if title == d.Title {
		return nil, nil
	}
	return &TitleChanged{DealID: d.ID, From: d.Title, To: title}, nil
}

func (d *Deal) amountChange(cmd Update) (domain.Event, error) {
	if cmd.Amount == nil {
		if cmd.Currency != nil {
			return nil, domain.Invalid("currency", "is changed only together with the amount in that currency")
		}
		return nil, nil
	}
	currency := d.Amount.Currency
	if cmd.Currency != nil {
		currency = *cmd.Currency
		if err := domain.ValidateCurrency("currency", currency); err != nil {
			return nil, err
		}
	}
	to, err := domain.NewMoney("amount", *cmd.Amount, currency)
	if err != nil {
		return nil, err
	}
	if to.Currency != d.Amount.Currency && d.Stage != StageQualification && d.Stage != StageNeedsAnalysis {
		return nil, domain.Refused("the deal's currency is %s and is fixed from stage proposal on (the deal is in %s)", d.Amount.Currency, d.Stage)
	}
	if to == d.Amount {
		return nil, nil
	}
	return &AmountChanged{DealID: d.ID, From: d.Amount, To: to}, nil
}

func (d *Deal) expectedCloseChange(cmd Update) (domain.Event, error) {
	if cmd.ExpectedClose == nil {
		return nil, nil
	}
	var to domain.Date
	if *cmd.ExpectedClose != "" {
		var err error
		if to, err = domain.ParseDate("expected_close", *cmd.ExpectedClose); err != nil {
			return nil, err
		}
	}
	if to == d.ExpectedClose {
		return nil, nil
	}
	return &ExpectedCloseChanged{DealID: d.ID, From: d.ExpectedClose, To: to}, nil
}

func (d *Deal) ownerChange(cmd Update) (domain.Event, error) {
	if cmd.Owner == nil {
		return nil, nil
	}
	owner := strings.TrimSpace(*cmd.Owner)
	if owner == "" {
		return nil, domain.Invalid("owner", "must not be empty")
	}
	if owner == d.Owner {
		return nil, nil
	}
	return &OwnerChanged{DealID: d.ID, From: d.Owner, To: owner}, nil
}
