package value

import (
	"cmp"
	"context"
	"database/sql"
	"slices"
	"strings"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/horizon"
	"github.com/eventcrm/crm/projections/paging"
)

// Sorts of the customer list.
const (
	SortLastPurchase  = "last_purchase"  // latest last purchase first (the default)
	SortOrders        = "orders"         // most orders first
	SortFirstPurchase = "first_purchase" // earliest first purchase first
	SortCustomer      = "customer"       // by contact id
	// Ties are ordered by contact id, descending when the sort is.
)

// CustomersParams is the question asked of the customer list.
type CustomersParams struct {
	// AsOf is the business time of the question (required): purchases at or before it count,
	// and recency is measured to it.
	AsOf time.Time `json:"as_of"`
	// Segment keeps the customers of one RFM segment.
	Segment string `json:"segment,omitempty"`
	// Sort is one of the Sort constants; SortLastPurchase when empty. Ties by contact id, in
	// the sort's direction.
	Sort   string `json:"sort,omitempty"`
	Limit  int    `json:"limit,omitempty"`
	Cursor string `json:"cursor,omitempty"`
}

// CustomersAnswer is a page of customers.
type CustomersAnswer struct {
	AsOf time.Time `json:"as_of"`
	// Customers counts every customer with a purchase by as_of, whatever the segment.
	Customers int64      `json:"customers"`
	List      []Customer `json:"list"`
	// NextCursor asks for the next page; empty on the last page.
	NextCursor string `json:"next_cursor,omitempty"`
}

// Customer is what one customer bought and is worth as of the question.
type Customer struct {
	// ContactID is the customer: a contact with a purchase, its merged duplicates' included.
	ContactID string `json:"contact_id"`
	Name      string `json:"name"`
	Orders    int64  `json:"orders"`
	// Currencies: orders, revenue (the LTV: revenue to date) and average order value (revenue
	// / orders, half up to the minor unit) per currency.
	Currencies     []CurrencyValue `json:"currencies"`
	FirstPurchase  time.Time       `json:"first_purchase"`
	SecondPurchase *time.Time      `json:"second_purchase"`
	// DaysToSecond is from the first purchase to the second, exact days to 2 decimals.
	DaysToSecond *float64 `json:"days_to_second"`
	// MedianDaysBetween is the median of the days between consecutive purchases.
	MedianDaysBetween *float64  `json:"median_days_between"`
	LastPurchase      time.Time `json:"last_purchase"`
	// RecencyDays is from the last purchase to as_of.
	RecencyDays float64 `json:"recency_days"`
	R           int     `json:"r"`
	F           int     `json:"f"`
	// M is the best of the customer's monetary scores, each among the customers who bought in
	// that currency.
	M       int    `json:"m"`
	Segment string `json:"segment"`
}

// CurrencyValue is a customer's purchases in one currency.
type CurrencyValue struct {
	Currency          string `json:"currency"`
	Orders            int64  `json:"orders"`
	Revenue           int64  `json:"revenue"`
	LTV               int64  `json:"ltv"`
	AverageOrderValue int64  `json:"average_order_value"`
	MonetaryScore     int    `json:"monetary_score"`
}

// sortSpec is how a sort orders customers: by a value, descending or not, then by id.
type sortSpec struct {
	column string // SQL, on customers c; "" for none (by id alone)
	desc   bool
	value  func(*customerFacts) int64
}

var sorts = map[string]sortSpec{
	SortLastPurchase:  {"c.last_at", true, func(c *customerFacts) int64 { return c.last }},
	SortOrders:        {"c.orders", true, func(c *customerFacts) int64 { return c.orders }},
	SortFirstPurchase: {"c.first_at", false, func(c *customerFacts) int64 { return c.first }},
	SortCustomer:      {"", false, func(*customerFacts) int64 { return 0 }},
}

// compare orders a before b (negative), after (positive): by value, then id, both
// descending for a descending sort (so that one index, read backwards, gives the order).
func (s sortSpec) compare(a *customerFacts, bv int64, bid string) int {
	c := cmp.Or(cmp.Compare(s.value(a), bv), strings.Compare(a.id, bid))
	if s.desc {
		return -c
	}
	return c
}

// QueryCustomers answers a page of the customers. Invalid parameters return a domain error
// with code invalid naming the parameter.
func QueryCustomers(ctx context.Context, db *projections.DB, t projections.Tables, zone *time.Location, params CustomersParams) (CustomersAnswer, error) {
	if err := asOfRequired(params.AsOf); err != nil {
		return CustomersAnswer{}, err
	}
	answer, _, err := customersAt(ctx, db, t, zone, params)
	return answer, err
}

// QueryCustomersNow answers a page of the customers about now (params.AsOf is not read), as
// QueryCustomers does for an as_of at or after the horizon: that page depends on the tables
// alone but for each customer's recency, the time from its last purchase to the as_of, so
// it can be kept while the tables do not change and given for any such as_of (horizon.Present.At,
// which counts the recency).
func QueryCustomersNow(ctx context.Context, db *projections.DB, t projections.Tables, zone *time.Location, params CustomersParams) (horizon.Present[CustomersAnswer], error) {
	params.AsOf = endOfTime
	answer, horizon, err := customersAt(ctx, db, t, zone, params)
	return presentOf(answer, horizon, func(a CustomersAnswer, asOf time.Time) CustomersAnswer {
		a.AsOf = asOf
		a.List = slices.Clone(a.List)
		for i := range a.List {
			c := &a.List[i]
			c.RecencyDays = days(micros(asOf) - micros(c.LastPurchase))
		}
		return a
	}), err
}

// customersAt answers a page of the customers, and the horizon of the tables read.
func customersAt(ctx context.Context, db *projections.DB, t projections.Tables, zone *time.Location, params CustomersParams) (CustomersAnswer, sql.NullInt64, error) {
	var horizon sql.NullInt64
	if params.Sort == "" {
		params.Sort = SortLastPurchase
	}
	spec, ok := sorts[params.Sort]
	if !ok {
		return CustomersAnswer{}, horizon, domain.Invalid("sort", "%q is not last_purchase, orders, first_purchase or customer", params.Sort)
	}
	if params.Segment != "" && !slices.Contains(Segments(), params.Segment) {
		return CustomersAnswer{}, horizon, domain.Invalid("segment", "%q is not one of %s", params.Segment, strings.Join(Segments(), ", "))
	}
	limit, err := limitOf(params.Limit)
	if err != nil {
		return CustomersAnswer{}, horizon, err
	}
	after, err := decodeCursor(params.Cursor)
	if err != nil {
		return CustomersAnswer{}, horizon, err
	}
	answer := CustomersAnswer{AsOf: params.AsOf.UTC(), List: []Customer{}}
	err = askScoring(ctx, db, t, zone, params.AsOf, func(q *query) error {
		horizon = q.horizon
		var (
			ls   ladders
			scan func(after *cursor) ([]customerFacts, error)
		)
		if q.now {
			if ls, err = q.keptLadders(ctx); err != nil {
				return err
			}
			// A page and one more: without a segment every customer read is listed, with one
			// the condition of its R and F ranges leaves few out.
			size := limit + 1
			where, whereArgs := segmentWhere(params.Segment, ls)
			scan = func(after *cursor) ([]customerFacts, error) {
				return q.chunk(ctx, spec, after, size, where, whereArgs)
			}
		} else {
			all, err := q.customersThen(ctx, "")
			if err != nil {
				return err
			}
			ls = laddersOf(all)
			slices.SortFunc(all, func(a, b customerFacts) int { return spec.compare(&a, spec.value(&b), b.id) })
			scan = func(after *cursor) ([]customerFacts, error) {
				i := 0
				if after != nil {
					i, _ = slices.BinarySearchFunc(all, *after, func(c customerFacts, at cursor) int {
						if spec.compare(&c, at.V, at.ID) <= 0 {
							return -1
						}
						return 1
					})
				}
				return all[i:min(len(all), i+chunkSize)], nil
			}
		}
		size := chunkSize
		if q.now {
			size = limit + 1
		}
		answer.Customers = ls.frequency.n
		var page []customerFacts
		for len(page) <= limit {
			chunk, err := scan(after)
			if err != nil {
				return err
			}
			for i := range chunk {
				if _, _, _, seg := ls.scores(&chunk[i]); params.Segment == "" || seg == params.Segment {
					page = append(page, chunk[i])
					if len(page) > limit {
						break
					}
				}
			}
			if len(chunk) < size {
				break
			}
			last := &chunk[len(chunk)-1]
			after = &cursor{V: spec.value(last), ID: last.id}
		}
		if len(page) > limit {
			page = page[:limit]
			last := &page[limit-1]
			answer.NextCursor = paging.Encode(cursor{V: spec.value(last), ID: last.id})
		}
		times, err := q.purchaseTimes(ctx, page)
		if err != nil {
			return err
		}
		for i := range page {
			answer.List = append(answer.List, q.describe(&page[i], ls, times[page[i].id]))
		}
		return nil
	})
	return answer, horizon, err
}

// chunkSize is how many customers a list reads at a time.
const chunkSize = 500

// segmentWhere is the condition on customers c that the R and F scores of the segment put on
// the last purchase and the number of orders (a score of s or more is a value above the
// ladder's (s-1)th deciding value): what the segment can hold, M and the earlier rules aside.
func segmentWhere(segment string, ls ladders) (string, []any) {
	r, f := ls.recency.at, ls.frequency.at
	switch segment {
	case SegmentChampions:
		return `c.last_at > ? AND c.orders > ?`, []any{r[2], f[2]}
	case SegmentLoyal:
		return `c.orders > ?`, []any{f[2]}
	case SegmentNew:
		return `c.last_at > ? AND c.orders <= ?`, []any{r[2], f[0]}
	case SegmentAtRisk:
		return `c.last_at <= ? AND c.orders > ?`, []any{r[1], f[1]}
	case SegmentHibernating:
		return `c.last_at <= ? AND c.orders <= ?`, []any{r[1], f[1]}
	}
	return "", nil
}

// chunk reads the next size customers in the order of spec after the cursor, from the kept
// totals, those that the condition segment (with its arguments) keeps.
func (q *query) chunk(ctx context.Context, spec sortSpec, after *cursor, size int, segment string, segmentArgs []any) ([]customerFacts, error) {
	var list []customerFacts
	stmt, args := chunkStatement(q.db.Dialect, q.t, spec, after, size, segment, segmentArgs)
	err := q.each(ctx, "customers", stmt, args, func(rows *sql.Rows) error {
		c, m, err := scanCustomerMoney(rows)
		if err != nil {
			return err
		}
		if len(list) == 0 || list[len(list)-1].id != c.id {
			list = append(list, c)
		}
		last := &list[len(list)-1]
		last.money = append(last.money, m)
		return nil
	})
	return list, err
}

// chunkStatement is the statement of chunk on dialect d.
func chunkStatement(d projections.Dialect, t projections.Tables, spec sortSpec, after *cursor, size int, segment string, segmentArgs []any) (string, []any) {
	dir, op := "ASC", ">"
	if spec.desc {
		dir, op = "DESC", "<"
	}
	var conds []string
	args, order := []any{}, `c.customer_id `+dir
	switch {
	case spec.column == "" && after != nil:
		conds, args = append(conds, `c.customer_id `+op+` ?`), append(args, after.ID)
	case after != nil:
		conds = append(conds, `(`+spec.column+` `+op+` ? OR (`+spec.column+` = ? AND c.customer_id `+op+` ?))`)
		args = append(args, after.V, after.V, after.ID)
	}
	if segment != "" {
		conds, args = append(conds, segment), append(args, segmentArgs...)
	}
	where := ""
	if len(conds) > 0 {
		where = ` WHERE ` + strings.Join(conds, ` AND `)
	}
	if spec.column != "" {
		order = spec.column + ` ` + dir + `, ` + order
	}
	// The customers alone, in the order of an index, a page of them; their names and money
	// read by key, customer by customer, in the same statement. Planned once for any page
	// size, a join of the money would read and hash every customer's (the planner takes a
	// page for a tenth of the customers it filters): on PostgreSQL the money of each
	// customer is a lateral subquery, which its ORDER BY keeps from being joined as a
	// table; SQLite's planner looks each up by key.
	money := `JOIN ` + t.Name(tableMoney) + ` m ON m.customer_id = c.customer_id`
	if d == projections.Postgres {
		money = `JOIN LATERAL (SELECT m.currency, m.orders, m.revenue FROM ` + t.Name(tableMoney) + ` m
			WHERE m.customer_id = c.customer_id ORDER BY m.currency) m ON true`
	}
	return `SELECT c.customer_id, (SELECT n.name FROM ` + t.Name(tableContacts) + ` n WHERE n.contact_id = c.customer_id),
		c.orders, c.first_at, c.second_at, c.last_at, m.currency, m.orders, m.revenue
		FROM (SELECT c.customer_id, c.orders, c.first_at, c.second_at, c.last_at FROM ` + t.Name(tableCustomers) + ` c` + where + `
			ORDER BY ` + order + ` LIMIT ?) c
		` + money + `
		ORDER BY ` + order + `, m.currency`, append(args, size)
}

func ids(list []customerFacts) []string {
	out := make([]string, len(list))
	for i := range list {
		out[i] = list[i].id
	}
	return out
}

// inList is the condition "column IN (ids)" and its arguments.
func inList(column string, ids []string) (string, []any) {
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	return column + ` IN (?` + strings.Repeat(", ?", len(ids)-1) + `)`, args
}

// purchaseTimes are the times of the purchases at or before as_of of the customers, in order.
func (q *query) purchaseTimes(ctx context.Context, list []customerFacts) (map[string][]int64, error) {
	times := map[string][]int64{}
	if len(list) == 0 {
		return times, nil
	}
	in, args := inList("customer_id", ids(list))
	err := q.each(ctx, "purchase times", `SELECT customer_id, occurred_at FROM `+q.t.Name(tablePurchases)+`
		WHERE `+in+` AND occurred_at <= ? ORDER BY customer_id, occurred_at, position`, append(args, q.asOf),
		func(rows *sql.Rows) error {
			var (
				id string
				at int64
			)
			err := rows.Scan(&id, &at)
			times[id] = append(times[id], at)
			return err
		})
	return times, err
}

// describe is the customer as answered, its purchase times given in order.
func (q *query) describe(c *customerFacts, ls ladders, times []int64) Customer {
	r, f, m, seg := ls.scores(c)
	out := Customer{ContactID: c.id, Name: c.name, Orders: c.orders, Currencies: []CurrencyValue{},
		FirstPurchase: timeOf(c.first), LastPurchase: timeOf(c.last), RecencyDays: days(q.asOf - c.last),
		R: r, F: f, M: m, Segment: seg}
	if c.second.Valid {
		second := timeOf(c.second.Int64)
		d := days(c.second.Int64 - c.first)
		out.SecondPurchase, out.DaysToSecond = &second, &d
	}
	var gaps []int64
	for i := 1; i < len(times); i++ {
		gaps = append(gaps, times[i]-times[i-1])
	}
	slices.Sort(gaps)
	out.MedianDaysBetween = medianDays(gaps)
	for _, mo := range c.money {
		out.Currencies = append(out.Currencies, CurrencyValue{Currency: mo.currency, Orders: mo.orders, Revenue: mo.revenue,
			LTV: mo.revenue, AverageOrderValue: meanHalfUp(mo.revenue, mo.orders), MonetaryScore: ls.monetary[mo.currency].score(mo.revenue)})
	}
	return out
}

// ValueParams is the question asked of one contact's value.
type ValueParams struct {
	ContactID string    `json:"contact_id"`
	AsOf      time.Time `json:"as_of"`
}

// ValueAnswer is a contact's value as a customer: the customer it counts for (itself, or the
// contact it was merged into) and its figures; Customer is nil while it has bought nothing.
type ValueAnswer struct {
	AsOf       time.Time `json:"as_of"`
	ContactID  string    `json:"contact_id"`
	CustomerID string    `json:"customer_id"`
	Customer   *Customer `json:"customer"`
	// Customers is how many customers were scored (every customer with a purchase by as_of).
	Customers int64 `json:"customers"`
}

// QueryValue answers one contact's value. An unknown contact is a domain error with code
// not found.
func QueryValue(ctx context.Context, db *projections.DB, t projections.Tables, zone *time.Location, params ValueParams) (ValueAnswer, error) {
	if err := asOfRequired(params.AsOf); err != nil {
		return ValueAnswer{}, err
	}
	answer := ValueAnswer{AsOf: params.AsOf.UTC(), ContactID: params.ContactID}
	err := askScoring(ctx, db, t, zone, params.AsOf, func(q *query) error {
		var created int64
		err := q.row(ctx, `SELECT customer_id, created_at FROM `+q.t.Name(tableContacts)+`
			WHERE contact_id = ?`, params.ContactID).Scan(&answer.CustomerID, &created)
		if err == sql.ErrNoRows || err == nil && created > q.asOf {
			return domain.NotFound("contact %s", params.ContactID)
		}
		if err != nil {
			return err
		}
		answer.Customer, answer.Customers, err = q.customer(ctx, answer.CustomerID)
		return err
	})
	return answer, err
}

// customer is the customer's figures as of the question (nil when it has bought nothing by
// then) and how many customers were scored.
func (q *query) customer(ctx context.Context, customerID string) (*Customer, int64, error) {
	var (
		ls   ladders
		mine []customerFacts
		err  error
	)
	if q.now {
		if mine, err = q.keptCustomer(ctx, customerID); err != nil {
			return nil, 0, err
		}
		if len(mine) == 0 {
			// Not a customer: the count of customers alone, no threshold.
			counts, err := q.keptCounts(ctx)
			if err != nil {
				return nil, 0, err
			}
			return nil, counts.customers(), nil
		}
		ls, err = q.keptLadders(ctx)
	} else {
		var all []customerFacts
		all, err = q.customersThen(ctx, "")
		ls = laddersOf(all)
		if i, ok := slices.BinarySearchFunc(all, customerID, func(c customerFacts, id string) int { return strings.Compare(c.id, id) }); ok {
			mine = all[i : i+1]
		}
	}
	if err != nil || len(mine) == 0 {
		return nil, ls.frequency.n, err
	}
	times, err := q.purchaseTimes(ctx, mine)
	if err != nil {
		return nil, 0, err
	}
	c := q.describe(&mine[0], ls, times[mine[0].id])
	return &c, ls.frequency.n, nil
}

// keptCustomer is the customer's kept totals, its name and money: none when it has bought
// nothing.
func (q *query) keptCustomer(ctx context.Context, customerID string) ([]customerFacts, error) {
	var list []customerFacts
	err := q.each(ctx, "customer", `SELECT c.customer_id, n.name, c.orders, c.first_at, c.second_at, c.last_at,
		m.currency, m.orders, m.revenue
		FROM `+q.t.Name(tableCustomers)+` c JOIN `+q.t.Name(tableContacts)+` n ON n.contact_id = c.customer_id
		JOIN `+q.t.Name(tableMoney)+` m ON m.customer_id = c.customer_id
		WHERE c.customer_id = ? ORDER BY m.currency`, []any{customerID}, func(rows *sql.Rows) error {
		c, m, err := scanCustomerMoney(rows)
		if err != nil {
			return err
		}
		if len(list) == 0 {
			list = append(list, c)
		}
		list[0].money = append(list[0].money, m)
		return nil
	})
	return list, err
}

// scanCustomerMoney reads a row of a customer with its name and its money in one currency.
func scanCustomerMoney(rows *sql.Rows) (customerFacts, moneyRow, error) {
	var (
		c customerFacts
		m moneyRow
	)
	err := rows.Scan(&c.id, &c.name, &c.orders, &c.first, &c.second, &c.last, &m.currency, &m.orders, &m.revenue)
	m.customerID = c.id
	return c, m, err
}
