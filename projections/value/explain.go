package value

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/explain"
)

// Figures of the repeat rate's parts: a customer's first and second purchase, by cohort.
const (
	figCohort = "cohort/"
	figRepeat = "repeat/"
)

// partsShape is how the parts are kept: with their amount, keyed by position (the fold
// reads a part only by its whole key, to delete it).
func partsShape() explain.Shape { return explain.Shape{Amounts: true, ByPosition: true} }

// orderFigure is the figure of the parts of the purchases of a month of the year (1-12).
func orderFigure(month int64) string { return fmt.Sprintf("order/%02d", month) }

// ExplainSeasonality answers the parts of the figure of the seasonality at path: the
// purchases made at or before asOf in a month of the year, each with the contact who made it
// and its event, a page of limit at a time from cursor (explain.DefaultLimit when 0, at most
// explain.MaxLimit). The paths: months.<month>.orders (month 1-12),
// months.<month>.currencies.<currency>.orders and .revenue.
func ExplainSeasonality(ctx context.Context, db *projections.DB, t projections.Tables, asOf time.Time, path string, limit int, cursor string) (explain.Answer, error) {
	if err := asOfRequired(asOf); err != nil {
		return explain.Answer{}, err
	}
	bad := domain.Invalid("explain", "%q is not the path of a figure of the seasonality (see the documentation)", path)
	p := strings.Split(path, ".")
	if len(p) < 3 || p[0] != "months" {
		return explain.Answer{}, bad
	}
	month, err := strconv.Atoi(p[1])
	if err != nil || month < 1 || month > 12 || p[1] != strconv.Itoa(month) {
		return explain.Answer{}, bad
	}
	q := explain.Question{Figures: []string{orderFigure(int64(month))}, AsOf: asOf, Limit: limit, Cursor: cursor}
	switch {
	case len(p) == 3 && p[2] == "orders":
	case len(p) == 5 && p[2] == "currencies" && (p[4] == "orders" || p[4] == "revenue"):
		currency := p[3]
		q.Keep = func(part explain.Part) bool { return part.Currency == currency }
	default:
		return explain.Answer{}, bad
	}
	return explain.AnswerDB(ctx, db, partsShape().Source(t.Name(tableParts)), q, nil,
		path, asOf)
}

// ExplainRepeatRate answers the parts of the figure of the repeat rate at path: the customers
// of a cohort as of asOf, each with the event of its first purchase (cohorts.<YYYY-MM>.customers)
// or of its second (cohorts.<YYYY-MM>.repeat_customers), a page of limit at a time from cursor.
// A repeat rate is the quotient of the two: explain those.
func ExplainRepeatRate(ctx context.Context, db *projections.DB, t projections.Tables, asOf time.Time, path string, limit int, cursor string) (explain.Answer, error) {
	if err := asOfRequired(asOf); err != nil {
		return explain.Answer{}, err
	}
	p := strings.Split(path, ".")
	if len(p) != 3 || p[0] != "cohorts" {
		return explain.Answer{}, domain.Invalid("explain", "%q is not the path of a figure of the repeat rate (see the documentation)", path)
	}
	if _, err := time.Parse(CohortLayout, p[1]); err != nil {
		return explain.Answer{}, domain.Invalid("explain", "%q: %q is not a cohort (YYYY-MM)", path, p[1])
	}
	q := explain.Question{AsOf: asOf, Limit: limit, Cursor: cursor}
	switch p[2] {
	case "customers":
		q.Figures = []string{figCohort + p[1]}
	case "repeat_customers":
		q.Figures = []string{figRepeat + p[1]}
	default:
		return explain.Answer{}, domain.Invalid("explain", "%q is not the path of a figure of the repeat rate (see the documentation)", path)
	}
	return explain.AnswerDB(ctx, db, partsShape().Source(t.Name(tableParts)), q, nil,
		path, asOf)
}

// Figures of the parts of RFM: every purchase of a customer is a part, the last one (which
// sets the customer's recency) counting the customer.
const (
	figLastPurchase = "last_purchase"
	figPurchase     = "purchase"
)

// ExplainRFM answers the parts of the figure of RFM at path, as of asOf, a page of limit at a
// time from cursor. The paths: customers, segments.<segment>.customers,
// segments.<segment>.revenue.<currency> and grid.<r>.<f>.customers (r and f 1-5).
//
// The scores are relative: a customer's segment and cell depend on every other customer's
// purchases as of asOf, so no part can be kept by the fold for them. The parts are found at
// question time, from the purchases at or before asOf the answer about a past time is computed
// from: the customers of the figure, each with every one of its purchases (its event and
// position, amount and currency), the last counting 1 and the others 0, so that the count is
// the customers and the amounts their revenue. A figure of revenue lists the purchases in its
// currency, each counting 1 (an order). The bucket of a part is its customer's segment and
// cell ("champions/r5f5").
func ExplainRFM(ctx context.Context, db *projections.DB, t projections.Tables, asOf time.Time, path string, limit int, cursor string) (explain.Answer, error) {
	if err := asOfRequired(asOf); err != nil {
		return explain.Answer{}, err
	}
	keep, ok := rfmFigure(path)
	if !ok {
		return explain.Answer{}, domain.Invalid("explain", "%q is not the path of a figure of RFM (see the documentation)", path)
	}
	var parts []explain.Part
	err := ask(ctx, db, t, time.UTC, asOf, func(q *query) error {
		var err error
		parts, err = q.rfmParts(ctx, keep)
		return err
	})
	if err != nil {
		return explain.Answer{}, err
	}
	page, err := explain.PageOf(parts, limit, cursor, nil)
	if err != nil {
		return explain.Answer{}, err
	}
	return explain.Answer{Explain: path, AsOf: asOf.UTC(), Page: page}, nil
}

// rfmKeep tells which customers' purchases a figure of RFM is made of, and, for a figure of
// revenue, in which currency ("" every purchase, the last counting the customer).
type rfmKeep struct {
	customer func(r, f int, segment string) bool
	currency string
}

// rfmFigure is the figure at path.
func rfmFigure(path string) (rfmKeep, bool) {
	p := strings.Split(path, ".")
	score := func(s string) (int, bool) {
		n, err := strconv.Atoi(s)
		return n, err == nil && n >= 1 && n <= 5 && s == strconv.Itoa(n)
	}
	switch {
	case path == "customers":
		return rfmKeep{customer: func(int, int, string) bool { return true }}, true
	case len(p) >= 3 && p[0] == "segments" && slices.Contains(Segments(), p[1]):
		inSegment := func(_, _ int, segment string) bool { return segment == p[1] }
		switch {
		case len(p) == 3 && p[2] == "customers":
			return rfmKeep{customer: inSegment}, true
		case len(p) == 4 && p[2] == "revenue" && p[3] != "":
			return rfmKeep{customer: inSegment, currency: p[3]}, true
		}
	case len(p) == 4 && p[0] == "grid" && p[3] == "customers":
		r, okR := score(p[1])
		f, okF := score(p[2])
		if okR && okF {
			return rfmKeep{customer: func(cr, cf int, _ string) bool { return cr == r && cf == f }}, true
		}
	}
	return rfmKeep{}, false
}

// rfmParts reads every purchase at or before the question's time, scores the customers as
// QueryRFM does about a past time, and answers the purchases of the customers keep keeps, in
// order of position, customer and figure.
func (q *query) rfmParts(ctx context.Context, keep rfmKeep) ([]explain.Part, error) {
	stmt := `SELECT p.customer_id, p.occurred_at, p.position, p.amount, p.currency, p.event_id FROM ` + q.t.Name(tablePurchases) + ` p
		JOIN ` + q.t.Name(tableContacts) + ` n ON n.contact_id = p.customer_id WHERE p.occurred_at <= ?
		ORDER BY p.customer_id, p.occurred_at, p.position`
	var (
		all       []customerFacts
		purchases [][]purchaseRow
	)
	err := q.each(ctx, "purchases", stmt, []any{q.asOf}, func(rows *sql.Rows) error {
		var p purchaseRow
		if err := rows.Scan(&p.customerID, &p.occurredAt, &p.position, &p.amount, &p.currency, &p.eventID); err != nil {
			return err
		}
		if len(all) == 0 || all[len(all)-1].id != p.customerID {
			all = append(all, customerFacts{id: p.customerID})
			purchases = append(purchases, nil)
		}
		purchases[len(purchases)-1] = append(purchases[len(purchases)-1], p)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i := range all {
		all[i].summary = summarize(purchases[i])
	}
	ls := laddersOf(all)
	var parts []explain.Part
	for i := range all {
		r, f, _, segment := ls.scores(&all[i])
		if !keep.customer(r, f, segment) {
			continue
		}
		ps := purchases[i]
		for j, p := range ps {
			part := explain.Part{Entity: p.customerID, Figure: figPurchase, Position: p.position, EventID: p.eventID,
				Bucket: fmt.Sprintf("%s/r%df%d", segment, r, f), At: p.occurredAt, Segment: segment,
				Amount: p.amount, Currency: p.currency}
			switch {
			case keep.currency != "":
				if p.currency != keep.currency {
					continue
				}
				part.Count = 1
			case j == len(ps)-1:
				part.Figure, part.Count = figLastPurchase, 1
			}
			parts = append(parts, part)
		}
	}
	sortParts(parts)
	return parts, nil
}

// sortParts orders parts found at question time as explain.PageOf takes them: by position,
// entity and figure.
func sortParts(parts []explain.Part) {
	slices.SortFunc(parts, func(a, b explain.Part) int {
		return cmp.Or(cmp.Compare(a.Position, b.Position), strings.Compare(a.Entity, b.Entity), strings.Compare(a.Figure, b.Figure))
	})
}
