// Package dealchange reads, for the read models that keep a deal's attributes, the events that
// change one attribute of a deal and nothing else: its stage, amount, expected close date or
// owner. Each read model then records the change on its own row of the deal.
package dealchange

import (
	"fmt"

	"github.com/eventcrm/crm/domain/deal"
	"github.com/eventcrm/crm/projections/readmodel"
)

// Deal points at the attributes a read model keeps of a deal.
type Deal struct {
	Stage, ExpectedClose, Owner *string
	Amount                      *int64
	Currency                    *string
}

// Read decodes e, a deal's StageChanged, AmountChanged, ExpectedCloseChanged or OwnerChanged
// event: the id of the deal it changes, and the change,
// which sets the new value of the attribute on a Deal.
func Read(e *readmodel.Event) (dealID string, change func(Deal), err error) {
	switch e.Type {
	case deal.TypeStageChanged:
		ev, err := readmodel.Decode[deal.StageChanged](e)
		if err != nil {
			return "", nil, err
		}
		return ev.DealID, func(d Deal) { *d.Stage = string(ev.To) }, nil
	case deal.TypeAmountChanged:
		ev, err := readmodel.Decode[deal.AmountChanged](e)
		if err != nil {
			return "", nil, err
		}
		return ev.DealID, func(d Deal) { *d.Amount, *d.Currency = ev.To.Amount, ev.To.Currency }, nil
	case deal.TypeExpectedCloseChanged:
		ev, err := readmodel.Decode[deal.ExpectedCloseChanged](e)
		if err != nil {
			return "", nil, err
		}
		return ev.DealID, func(d Deal) { *d.ExpectedClose = string(ev.To) }, nil
	case deal.TypeOwnerChanged:
		ev, err := readmodel.Decode[deal.OwnerChanged](e)
		if err != nil {
			return "", nil, err
		}
		return ev.DealID, func(d Deal) { *d.Owner = ev.To }, nil
	}
	return "", nil, fmt.Errorf("dealchange: %s is not an event that changes one attribute of a deal", e.Type)
}

// Fold reads e as Read does and records the change on the row of the deal with change: the
// read model's own edit of that row in rows (read by id, changed, written back), given what
// to change on it. attributes points at the attributes of a row.
func Fold[R any](e *readmodel.Event, rows *readmodel.Rows, attributes func(*R) Deal,
	change func(rows *readmodel.Rows, dealID string, set func(*R)) error) error {
	id, set, err := Read(e)
	if err != nil {
		return err
	}
	return change(rows, id, func(r *R) { set(attributes(r)) })
}
