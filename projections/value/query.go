package value

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/paging"
)

// Page sizes of the lists.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// query runs the statements of one answer in one read transaction.
type query struct {
	db   *projections.DB
	tx   *sql.Tx
	t    projections.Tables
	zone *time.Location
	asOf int64
	// now: as_of is at or after the horizon, so the kept rows are the state at as_of.
	now bool
}

// detailOnly, as a context key, makes a question read the detail tables even about now: what
// the kept rows must agree with (tests).
type detailOnly struct{}

// ask runs answer in a read transaction of the tables of set t, as of asOf.
func ask(ctx context.Context, db *projections.DB, t projections.Tables, zone *time.Location, asOf time.Time,
	answer func(q *query) error) error {
	if zone == nil {
		zone = time.UTC
	}
	return db.ReadOnly(ctx, func(tx *sql.Tx) error {
		q := &query{db: db, tx: tx, t: t, zone: zone, asOf: asOf.UnixMicro()}
		var horizon sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT MAX(at) FROM `+t.Name(tableHorizon)).Scan(&horizon); err != nil {
			return fmt.Errorf("customer value horizon: %w", err)
		}
		q.now = (!horizon.Valid || q.asOf >= horizon.Int64) && ctx.Value(detailOnly{}) == nil
		return answer(q)
	})
}

func (q *query) rows(ctx context.Context, stmt string, args ...any) (*sql.Rows, error) {
	return q.tx.QueryContext(ctx, q.db.Dialect.Rebind(stmt), args...)
}

// each runs stmt and calls scan for every row.
func (q *query) each(ctx context.Context, what, stmt string, args []any, scan func(*sql.Rows) error) error {
	rows, err := q.rows(ctx, stmt, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// customerFacts is one customer's totals as of the question, and its name.
type customerFacts struct {
	id, name string
	summary
}

// addMoney reads the money rows of the customers (all of them when in is "", else those the
// condition in keeps), customers sorted by id.
func (q *query) addMoney(ctx context.Context, list []customerFacts, in string, args ...any) error {
	stmt := `SELECT customer_id, currency, orders, revenue FROM ` + q.t.Name(tableMoney)
	if in != "" {
		stmt += ` WHERE ` + in
	}
	return q.each(ctx, "customer money", stmt+` ORDER BY customer_id, currency`, args, func(rows *sql.Rows) error {
		var r moneyRow
		if err := rows.Scan(&r.customerID, &r.currency, &r.orders, &r.revenue); err != nil {
			return err
		}
		i, ok := slices.BinarySearchFunc(list, r.customerID, func(c customerFacts, id string) int { return strings.Compare(c.id, id) })
		if ok {
			list[i].money = append(list[i].money, r)
		}
		return nil
	})
}

// customersThen totals the purchases at or before as_of per customer (only customerID's
// when set), by id.
func (q *query) customersThen(ctx context.Context, customerID string) ([]customerFacts, error) {
	stmt := `SELECT p.customer_id, n.name, p.occurred_at, p.amount, p.currency FROM ` + q.t.Name(tablePurchases) + ` p
		JOIN ` + q.t.Name(tableContacts) + ` n ON n.contact_id = p.customer_id WHERE p.occurred_at <= ?`
	args := []any{q.asOf}
	if customerID != "" {
		stmt += ` AND p.customer_id = ?`
		args = append(args, customerID)
	}
	var (
		list []customerFacts
		ps   []purchaseRow
	)
	flush := func() {
		if len(ps) > 0 {
			list[len(list)-1].summary = summarize(ps)
			ps = ps[:0]
		}
	}
	err := q.each(ctx, "purchases", stmt+` ORDER BY p.customer_id, p.occurred_at, p.position`, args, func(rows *sql.Rows) error {
		var (
			p    purchaseRow
			name string
		)
		if err := rows.Scan(&p.customerID, &name, &p.occurredAt, &p.amount, &p.currency); err != nil {
			return err
		}
		if len(list) == 0 || list[len(list)-1].id != p.customerID {
			flush()
			list = append(list, customerFacts{id: p.customerID, name: name})
		}
		ps = append(ps, p)
		return nil
	})
	flush()
	return list, err
}

// laddersOf ranks the customers' measures.
func laddersOf(all []customerFacts) ladders {
	var last, orders []int64
	revenue := map[string][]int64{}
	for _, c := range all {
		last, orders = append(last, c.last), append(orders, c.orders)
		for _, m := range c.money {
			revenue[m.currency] = append(revenue[m.currency], m.revenue)
		}
	}
	slices.Sort(last)
	slices.Sort(orders)
	ls := ladders{recency: ladderOf(last), frequency: ladderOf(orders), monetary: map[string]ladder{}}
	for cur, vs := range revenue {
		slices.Sort(vs)
		ls.monetary[cur] = ladderOf(vs)
	}
	return ls
}

// bucket is a kept count of customers whose value is in [lo, the next bucket's lo).
type bucket struct{ lo, n int64 }

// keptLadders finds the four deciding values of each measure from the kept counts: the bucket
// of each rank by summing counts in order, then the value inside it from the customers of
// that bucket alone (an index range).
func (q *query) keptLadders(ctx context.Context) (ladders, error) {
	ls := ladders{monetary: map[string]ladder{}}
	var err error
	freq, err := q.buckets(ctx, `SELECT orders, customers FROM `+q.t.Name(tableFrequency)+` WHERE customers <> 0 ORDER BY orders`)
	if err != nil {
		return ls, err
	}
	if ls.frequency, err = keptLadder(freq, func(lo, _ int64) (int64, error) { return lo, nil }); err != nil {
		return ls, err
	}
	days, err := q.buckets(ctx, `SELECT day, customers FROM `+q.t.Name(tableRecency)+` WHERE customers <> 0 ORDER BY day`)
	if err != nil {
		return ls, err
	}
	ls.recency, err = keptLadder(days, func(lo, offset int64) (int64, error) {
		return q.nth(ctx, `SELECT last_at FROM `+q.t.Name(tableCustomers)+` WHERE last_at >= ? AND last_at < ?
			ORDER BY last_at LIMIT 1 OFFSET ?`, lo, lo+microsPerDay, offset)
	})
	if err != nil {
		return ls, err
	}
	var currencies []string
	err = q.each(ctx, "currencies", `SELECT DISTINCT currency FROM `+q.t.Name(tableMonetary)+` WHERE customers <> 0 ORDER BY currency`,
		nil, func(rows *sql.Rows) error {
			var c string
			currencies = append(currencies, c)
			return rows.Scan(&currencies[len(currencies)-1])
		})
	if err != nil {
		return ls, err
	}
	for _, cur := range currencies {
		bs, err := q.buckets(ctx, `SELECT bucket, customers FROM `+q.t.Name(tableMonetary)+`
			WHERE currency = ? AND customers <> 0 ORDER BY bucket`, cur)
		if err != nil {
			return ls, err
		}
		ls.monetary[cur], err = keptLadder(bs, func(lo, offset int64) (int64, error) {
			return q.nth(ctx, `SELECT revenue FROM `+q.t.Name(tableMoney)+` WHERE currency = ? AND revenue >= ? AND revenue < ?
				ORDER BY revenue LIMIT 1 OFFSET ?`, cur, lo, bucketEnd(lo), offset)
		})
		if err != nil {
			return ls, err
		}
	}
	return ls, nil
}

func (q *query) buckets(ctx context.Context, stmt string, args ...any) ([]bucket, error) {
	var bs []bucket
	err := q.each(ctx, "kept counts", stmt, args, func(rows *sql.Rows) error {
		var b bucket
		err := rows.Scan(&b.lo, &b.n)
		bs = append(bs, b)
		return err
	})
	return bs, err
}

func (q *query) nth(ctx context.Context, stmt string, args ...any) (int64, error) {
	var v int64
	if err := q.tx.QueryRowContext(ctx, q.db.Dialect.Rebind(stmt), args...).Scan(&v); err != nil {
		return 0, fmt.Errorf("ranked value: %w", err)
	}
	return v, nil
}

// keptLadder is the ladder of the values counted in buckets (ascending); exact finds the
// value at an offset inside a bucket.
func keptLadder(bs []bucket, exact func(lo, offset int64) (int64, error)) (ladder, error) {
	var l ladder
	for _, b := range bs {
		l.n += b.n
	}
	if l.n == 0 {
		return l, nil
	}
	for k := 1; k <= 4; k++ {
		rank, seen := rankOf(k, l.n), int64(0)
		for _, b := range bs {
			if rank < seen+b.n {
				v, err := exact(b.lo, rank-seen)
				if err != nil {
					return l, err
				}
				l.at[k-1] = v
				break
			}
			seen += b.n
		}
	}
	return l, nil
}

// Days is a duration in days, exact, shown to 2 decimals rounded half up.
func days(micros int64) float64 {
	return float64(hundredths(micros)) / 100
}

// hundredths is micros in hundredths of a day, rounded half up (away from zero).
func hundredths(micros int64) int64 {
	if micros < 0 {
		return -hundredths(-micros)
	}
	return (micros*100 + microsPerDay/2) / microsPerDay
}

// medianDays is the median of lengths in micros (sorted), in days to 2 decimals half up: the
// middle one, or the mean of the two middle ones.
func medianDays(sorted []int64) *float64 {
	n := len(sorted)
	if n == 0 {
		return nil
	}
	var h int64
	if n%2 == 1 {
		h = hundredths(sorted[n/2])
	} else {
		sum := sorted[n/2-1] + sorted[n/2]
		h = (sum*100 + microsPerDay) / (2 * microsPerDay)
	}
	d := float64(h) / 100
	return &d
}

// meanHalfUp is sum / n rounded half up to the unit (sum >= 0, n > 0).
func meanHalfUp(sum, n int64) int64 { return (2*sum + n) / (2 * n) }

// rate is part / whole rounded half up to 4 decimals; nil when whole is 0.
func rate(part, whole int64) *float64 {
	if whole == 0 {
		return nil
	}
	r := float64((part*20000+whole)/(2*whole)) / 10000
	return &r
}

func micros(t time.Time) int64 { return t.UnixMicro() }

func timeOf(micros int64) time.Time { return time.UnixMicro(micros).UTC() }

// limitOf checks a page size.
func limitOf(limit int) (int, error) { return paging.Limit(limit, DefaultLimit, MaxLimit) }

// cursor is the place of the last item of a page: its sort value and id.
type cursor struct {
	V  int64  `json:"v"`
	ID string `json:"id"`
}

func decodeCursor(s string) (*cursor, error) {
	return paging.Cursor(s, "cursor", "is not a cursor of this list", func(c cursor) bool { return c.ID != "" })
}

// asOfRequired refuses a question without its business time.
func asOfRequired(asOf time.Time) error {
	if asOf.IsZero() {
		return domain.Invalid("as_of", "is required")
	}
	return nil
}
