package journey

import (
	"context"

	"github.com/eventcrm/crm/projections"
)

// QueryVisits answers as Query does, from the visits of every contact even about now: what
// the kept map must equal.
func QueryVisits(ctx context.Context, db *projections.DB, t projections.Tables, params Params) (Answer, error) {
	return ask(ctx, db, t, params, false)
}
