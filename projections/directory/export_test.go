package directory

import (
	"context"
	"database/sql"

	"github.com/eventcrm/crm/projections"
)

// ContactStatements are the statements of a contacts question with no search of the postings
// (none, or one longer than three characters): its page, and its total counted row by row
// ("" when the total is read from a kept count).
func ContactStatements(d projections.Dialect, t projections.Tables, p ContactParams) (page string, pageArgs []any, total string, totalArgs []any, err error) {
	return statementsOf(p, d, t)
}

// DealStatements are the statements of a deals question with no search of the postings (none,
// or one longer than three characters): its page, and its total counted row by row ("" when
// the total is read from a kept count).
func DealStatements(d projections.Dialect, t projections.Tables, p DealParams) (page string, pageArgs []any, total string, totalArgs []any, err error) {
	return statementsOf(p, d, t)
}

// AccountStatements are the statements of an accounts question as DealStatements are.
func AccountStatements(d projections.Dialect, t projections.Tables, p AccountParams) (page string, pageArgs []any, total string, totalArgs []any, err error) {
	return statementsOf(p, d, t)
}

// statementsOf are the page and the total counted row by row ("" when kept) of the list of
// question q, which reads no postings.
func statementsOf(q interface {
	list(projections.Dialect, projections.Tables) (*list, error)
}, d projections.Dialect, t projections.Tables) (page string, pageArgs []any, total string, totalArgs []any, err error) {
	l, err := q.list(d, t)
	if err != nil {
		return "", nil, "", nil, err
	}
	page, pageArgs = l.pageQuery(nil)
	if l.kept == nil {
		total, totalArgs = l.countQuery(nil)
	}
	return page, pageArgs, total, totalArgs, nil
}

// ContactSearchPage is the page statement of a contacts question with a search, planned from
// the postings as QueryContacts plans it (walk: read from the postings in order).
func ContactSearchPage(ctx context.Context, db *projections.DB, t projections.Tables, p ContactParams) (page string, args []any, walk bool, err error) {
	l, err := p.list(db.Dialect, t)
	if err != nil {
		return "", nil, false, err
	}
	return searchPage(ctx, db, l)
}

// DealSearchPage is ContactSearchPage of a deals question.
func DealSearchPage(ctx context.Context, db *projections.DB, t projections.Tables, p DealParams) (page string, args []any, walk bool, err error) {
	l, err := p.list(db.Dialect, t)
	if err != nil {
		return "", nil, false, err
	}
	return searchPage(ctx, db, l)
}

func searchPage(ctx context.Context, db *projections.DB, l *list) (page string, args []any, walk bool, err error) {
	err = db.ReadOnly(ctx, func(tx *sql.Tx) error {
		pl, err := l.postings.plan(ctx, tx, db.Dialect, l)
		if err != nil {
			return err
		}
		page, args = l.pageQuery(&pl)
		walk = pl.walk
		return nil
	})
	return page, args, walk, err
}
