package board

import (
	"context"

	"github.com/eventcrm/crm/projections"
)

// QueryIntervals answers as Query does, from the intervals even about now: what the kept
// totals and lengths must equal.
func QueryIntervals(ctx context.Context, db *projections.DB, t projections.Tables, params Params) (Answer, error) {
	return ask(ctx, db, t, params, false)
}
