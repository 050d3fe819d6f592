package analytics

import (
	"context"

	"github.com/eventcrm/crm/projections"
)

// QueryKPIsFromParts answers from the parts even where the kept counts would.
func QueryKPIsFromParts(ctx context.Context, db *projections.DB, t projections.Tables, p KPIParams) (any, error) {
	p.fromParts = true
	return QueryKPIs(ctx, db, t, p)
}

// QueryNPSFromParts answers from the parts even where the kept counts would.
func QueryNPSFromParts(ctx context.Context, db *projections.DB, t projections.Tables, p NPSParams) (any, error) {
	p.fromParts = true
	return QueryNPS(ctx, db, t, p)
}

// NPSScore exposes npsScore.
var NPSScore = npsScore
