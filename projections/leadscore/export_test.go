package leadscore

import (
	"context"

	"github.com/eventcrm/crm/projections"
)

// QueryLeadsFound answers as QueryLeads does, reading every contact found even about now:
// what the counted answer must equal.
func QueryLeadsFound(ctx context.Context, db *projections.DB, t projections.Tables, params LeadParams) (Leads, error) {
	return queryLeads(ctx, db, t, params, false)
}
