package value

import (
	"time"

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

// DormantPage is the statement of the first page of the contacts dormant now.
func DormantPage(t projections.Tables, params DormantParams) (string, []any, error) {
	_, cutoff, err := params.check()
	if err != nil {
		return "", nil, err
	}
	stmt, args := dormantPage(t, params, cutoff, nil, 50)
	return stmt, args, nil
}

// CustomersPage is the statement of the first chunk of a page of the customers now, with the
// score thresholds of the tables.
func CustomersPage(ctx context.Context, db *projections.DB, t projections.Tables, params CustomersParams) (string, []any, error) {
	var (
		stmt string
		args []any
	)
	err := askScoring(ctx, db, t, time.UTC, endOfTime, func(q *query) error {
		ls, err := q.keptLadders(ctx)
		if err != nil {
			return err
		}
		where, whereArgs := segmentWhere(params.Segment, ls)
		stmt, args = chunkStatement(db.Dialect, t, sorts[params.Sort], nil, 51, where, whereArgs)
		return nil
	})
	return stmt, args, err
}
