package value

import (
	"context"

	"github.com/eventcrm/crm/projections"
)

// DetailOnly makes the questions asked with the context read the detail tables even about
// now: what the kept rows must agree with.
func DetailOnly(ctx context.Context) context.Context {
	return context.WithValue(ctx, detailOnly{}, true)
}

// MedianDays is the median of lengths in microseconds (sorted), as the answers show it.
var MedianDays = medianDays

// CountingStatements makes the questions asked with the returned context count the
// statements they send to the database in *n.
func CountingStatements(ctx context.Context) (context.Context, *int) {
	n := new(int)
	return context.WithValue(ctx, statementCount{}, n), n
}

// UpsellPage is the statement of a page of the upsell candidates about now.
func UpsellPage(t projections.Tables, after string, limit int) (string, []any) {
	return upsellPage(t, after, limit)
}

// Hundredths is a length in microseconds in days to 2 decimals half up, times 100.
var Hundredths = hundredths
