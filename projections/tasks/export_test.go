package tasks

import "github.com/eventcrm/crm/projections"

// NowStatements are the statements of a question about now (as_of at or after the latest
// task change) of a contact of no merge: its page and its counts, and whether the page is
// planned per cutoff (see Features.CustomPlans).
func NowStatements(t projections.Tables, p Params) (list string, listArgs []any, counts string, countsArgs []any, perCutoff bool, err error) {
	qn, err := p.check()
	if err != nil {
		return "", nil, "", nil, false, err
	}
	q := &query{t: t, now: true}
	var ids []any
	if p.ContactID != "" {
		ids = []any{p.ContactID}
	}
	list, listArgs = q.listQuery(qn, ids)
	counts, countsArgs = q.countsQuery(qn)
	return list, listArgs, counts, countsArgs, qn.plannedPerCutoff(), nil
}
