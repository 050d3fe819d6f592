package churn

import (
	"context"

	"github.com/eventcrm/crm/projections"
)

// QueryVisits answers as Query does, from the visits of every contact even about now: what
// the kept counts must equal.
func QueryVisits(ctx context.Context, db *projections.DB, t projections.Tables, params Params) (Answer, error) {
	return ask(ctx, db, t, params, false)
}

// ChurnsPage is the statement of the first page of the churns of a question.
func ChurnsPage(db *projections.DB, t projections.Tables, params Params) (string, []any, error) {
	_, cohort, err := params.check()
	if err != nil {
		return "", nil, err
	}
	pg, err := params.page()
	if err != nil {
		return "", nil, err
	}
	q := query{db: db, t: t, asOf: params.AsOf.UnixMicro(), cohort: cohort, page: pg}
	stmt, args := q.churnsPage()
	return stmt, args, nil
}
