package board

import (
	"context"
	"time"

	"github.com/eventcrm/crm/domain/deal"

	"github.com/eventcrm/crm/projections"
)

// QueryIntervals answers as Query does, from the intervals even about now: what the kept
// totals and lengths must equal.
func QueryIntervals(ctx context.Context, db *projections.DB, t projections.Tables, params Params) (Answer, error) {
	return ask(ctx, db, t, params, false)
}

// CardsPage is the statement of the first page of the cards of a stage, of one owner's deals
// when owner is set, on the board now (present) or as of asOf.
func CardsPage(t projections.Tables, owner, stage string, present bool, asOf time.Time) (string, []any) {
	q := query{t: t, owner: owner, present: present, asOf: asOf.UnixMicro()}
	return q.cardsPage(deal.Stage(stage), DefaultLimit, nil)
}
