package directory

import "github.com/eventcrm/crm/projections"

// ContactStatements are the statements of a contacts question with no search: its page, and
// its total counted row by row.
func ContactStatements(d projections.Dialect, t projections.Tables, p ContactParams) (page string, pageArgs []any, total string, totalArgs []any, err error) {
	l, err := p.list(d, t)
	if err != nil {
		return "", nil, "", nil, err
	}
	page, pageArgs = l.pageQuery(nil)
	total, totalArgs = l.countQuery(nil)
	return page, pageArgs, total, totalArgs, nil
}
