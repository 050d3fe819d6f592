package timeline

import (
	"context"

	"github.com/eventcrm/crm/projections"
)

// PageStatement is the statement of the first page of a contact's timeline, with its
// arguments (PostgreSQL: the merged contacts are read in it).
func PageStatement(ctx context.Context, db *projections.DB, t projections.Tables, p Params) (string, []any, error) {
	qn, err := p.check()
	if err != nil {
		return "", nil, err
	}
	q := query{db: db, conn: db.SQL, t: t}
	return q.pageQuery(ctx, p.ContactID, qn)
}
