package value

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/horizon"
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
	// counts are the kept counts of customers, when read with the horizon (askScoring).
	counts *keptCounts
	// candidates is the kept count of upsell candidates, when read with the horizon
	// (askCandidates).
	candidates int64
	// horizon is the latest business time of an event folded (not valid: none).
	horizon sql.NullInt64
}

// detailOnly, as a context key, makes a question read the detail tables even about now: what
// the kept rows must agree with (tests).
type detailOnly struct{}

// statementCount, as a context key, holds an *int that counts the statements a question
// sends to the database, each a round trip (tests).
type statementCount struct{}

// sent counts one statement sent, when the context asks for the count.
func sent(ctx context.Context) {
	if n, ok := ctx.Value(statementCount{}).(*int); ok {
		*n++
	}
}

// ask runs answer in a read transaction of the tables of set t, as of asOf.
func ask(ctx context.Context, db *projections.DB, t projections.Tables, zone *time.Location, asOf time.Time,
	answer func(q *query) error) error {
	return askWith(ctx, db, t, zone, asOf, withHorizon, answer)
}

// askScoring is ask for a question that scores customers: the kept counts the scores'
// thresholds are found from are read with the horizon, in its statement.
func askScoring(ctx context.Context, db *projections.DB, t projections.Tables, zone *time.Location, asOf time.Time,
	answer func(q *query) error) error {
	return askWith(ctx, db, t, zone, asOf, withScoreCounts, answer)
}

// askCandidates is ask for the upsell candidates: their kept count is read with the horizon.
func askCandidates(ctx context.Context, db *projections.DB, t projections.Tables, zone *time.Location, asOf time.Time,
	answer func(q *query) error) error {
	return askWith(ctx, db, t, zone, asOf, withCandidates, answer)
}

// What the first statement of a question reads with the horizon.
type firstRead int

const (
	withHorizon     firstRead = iota // the horizon alone
	withScoreCounts                  // the kept counts the score thresholds are found from
	withCandidates                   // the kept count of upsell candidates
)

func askWith(ctx context.Context, db *projections.DB, t projections.Tables, zone *time.Location, asOf time.Time,
	first firstRead, answer func(q *query) error) error {
	if zone == nil {
		zone = time.UTC
	}
	return db.ReadOnly(ctx, func(tx *sql.Tx) error {
		q := &query{db: db, tx: tx, t: t, zone: zone, asOf: asOf.UnixMicro()}
		horizon, err := q.horizonAnd(ctx, first)
		if err != nil {
			return fmt.Errorf("customer value horizon: %w", err)
		}
		q.horizon = horizon
		q.now = (!horizon.Valid || q.asOf >= horizon.Int64) && ctx.Value(detailOnly{}) == nil
		return answer(q)
	})
}

func (q *query) rows(ctx context.Context, stmt string, args ...any) (*sql.Rows, error) {
	sent(ctx)
	return q.tx.QueryContext(ctx, q.db.Dialect.Rebind(stmt), args...)
}

func (q *query) row(ctx context.Context, stmt string, args ...any) *sql.Row {
	sent(ctx)
	return q.tx.QueryRowContext(ctx, q.db.Dialect.Rebind(stmt), args...)
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

// keptCounts are the kept counts of customers the score thresholds about now are found from:
// per order count, per day of last purchase, and per revenue bucket of each currency.
type keptCounts struct {
	frequency, recency []bucket
	currencies         []string // sorted
	monetary           map[string][]bucket
}

// sort puts the buckets of each measure in the order of their values, and the currencies in
// theirs.
func (c *keptCounts) sort() {
	byLo := func(a, b bucket) int { return cmp.Compare(a.lo, b.lo) }
	slices.SortFunc(c.frequency, byLo)
	slices.SortFunc(c.recency, byLo)
	slices.Sort(c.currencies)
	for _, bs := range c.monetary {
		slices.SortFunc(bs, byLo)
	}
}

// customers is how many customers the counts count.
func (c *keptCounts) customers() int64 {
	var n int64
	for _, b := range c.frequency {
		n += b.n
	}
	return n
}

// horizonAnd reads the horizon and what else first asks for in the same statement: a
// question about now needs both, and what it reads with the horizon are small kept tables.
func (q *query) horizonAnd(ctx context.Context, first firstRead) (sql.NullInt64, error) {
	var horizon sql.NullInt64
	switch first {
	case withScoreCounts:
		err := q.readCounts(ctx, `SELECT 0 AS kind, '' AS currency, MAX(at) AS lo, 0 AS n FROM `+q.t.Name(tableHorizon)+`
		UNION ALL `, &horizon)
		return horizon, err
	case withCandidates:
		err := q.row(ctx, `SELECT MAX(at), (SELECT COALESCE(SUM(contacts), 0) FROM `+q.t.Name(tableCandidates)+`) FROM `+
			q.t.Name(tableHorizon)).Scan(&horizon, &q.candidates)
		return horizon, err
	}
	err := q.row(ctx, `SELECT MAX(at) FROM `+q.t.Name(tableHorizon)).Scan(&horizon)
	return horizon, err
}

// keptCounts are the kept counts of customers: those read with the horizon, else read now.
func (q *query) keptCounts(ctx context.Context) (*keptCounts, error) {
	if q.counts == nil {
		if err := q.readCounts(ctx, "", nil); err != nil {
			return nil, err
		}
	}
	return q.counts, nil
}

// readCounts reads the kept counts of customers into q.counts, after the rows of the
// statement before (kind 0, its value into first).
func (q *query) readCounts(ctx context.Context, before string, first *sql.NullInt64) error {
	q.counts = &keptCounts{monetary: map[string][]bucket{}}
	stmt := before + `SELECT 1 AS kind, '' AS currency, orders AS lo, customers AS n FROM ` + q.t.Name(tableFrequency) + ` WHERE customers <> 0
		UNION ALL SELECT 2, '', day, customers FROM ` + q.t.Name(tableRecency) + ` WHERE customers <> 0
		UNION ALL SELECT 3, currency, bucket, customers FROM ` + q.t.Name(tableMonetary) + ` WHERE customers <> 0`
	// Sorted here, not by the database: each table is read in the order of its key, and a
	// sort of the whole union costs more than the reads (on SQLite several times more).
	defer q.counts.sort()
	return q.each(ctx, "kept counts", stmt, nil, func(rows *sql.Rows) error {
		var (
			kind     int
			currency string
			lo       sql.NullInt64
			n        int64
		)
		if err := rows.Scan(&kind, &currency, &lo, &n); err != nil {
			return err
		}
		b := bucket{lo: lo.Int64, n: n}
		switch kind {
		case 0:
			*first = lo
		case 1:
			q.counts.frequency = append(q.counts.frequency, b)
		case 2:
			q.counts.recency = append(q.counts.recency, b)
		case 3:
			if _, ok := q.counts.monetary[currency]; !ok {
				q.counts.currencies = append(q.counts.currencies, currency)
			}
			q.counts.monetary[currency] = append(q.counts.monetary[currency], b)
		}
		return nil
	})
}

// keptLadders finds the four deciding values of each measure from the kept counts read with
// the horizon: the bucket of each rank by summing counts in order, then the value inside it
// from the customers of that bucket alone (an index range), every such value of every
// measure in one statement.
func (q *query) keptLadders(ctx context.Context) (ladders, error) {
	ls := ladders{monetary: map[string]ladder{}}
	c, err := q.keptCounts(ctx)
	if err != nil {
		return ls, err
	}
	var (
		subs []string
		args []any
		dst  []*int64
	)
	keptLadder(&ls.frequency, c.frequency, func(k int, lo, _ int64) { ls.frequency.at[k] = lo })
	keptLadder(&ls.recency, c.recency, func(k int, lo, offset int64) {
		subs = append(subs, `(SELECT last_at FROM `+q.t.Name(tableCustomers)+` WHERE last_at >= ? AND last_at < ?
			ORDER BY last_at LIMIT 1 OFFSET ?)`)
		args = append(args, lo, lo+microsPerDay, offset)
		dst = append(dst, &ls.recency.at[k])
	})
	monetary := make([]ladder, len(c.currencies))
	for i, cur := range c.currencies {
		keptLadder(&monetary[i], c.monetary[cur], func(k int, lo, offset int64) {
			subs = append(subs, `(SELECT revenue FROM `+q.t.Name(tableMoney)+` WHERE currency = ? AND revenue >= ? AND revenue < ?
				ORDER BY revenue LIMIT 1 OFFSET ?)`)
			args = append(args, cur, lo, bucketEnd(lo), offset)
			dst = append(dst, &monetary[i].at[k])
		})
	}
	if len(subs) > 0 {
		values := make([]sql.NullInt64, len(subs))
		scan := make([]any, len(subs))
		for i := range values {
			scan[i] = &values[i]
		}
		if err := q.row(ctx, `SELECT `+strings.Join(subs, `, `), args...).Scan(scan...); err != nil {
			return ls, fmt.Errorf("ranked values: %w", err)
		}
		for i, v := range values {
			if !v.Valid {
				return ls, fmt.Errorf("ranked value %d: none in its kept bucket", i)
			}
			*dst[i] = v.Int64
		}
	}
	for i, cur := range c.currencies {
		ls.monetary[cur] = monetary[i]
	}
	return ls, nil
}

// keptLadder sets l to the ladder of the values counted in buckets (ascending): exact is told
// where the value of each rank lies (score threshold k, 0-based: in the bucket at lo, at
// offset inside it), and sets it in l, now or once read.
func keptLadder(l *ladder, bs []bucket, exact func(k int, lo, offset int64)) {
	*l = ladder{}
	for _, b := range bs {
		l.n += b.n
	}
	if l.n == 0 {
		return
	}
	for k := 1; k <= 4; k++ {
		rank, seen := rankOf(k, l.n), int64(0)
		for _, b := range bs {
			if rank < seen+b.n {
				exact(k-1, b.lo, rank-seen)
				break
			}
			seen += b.n
		}
	}
}

// Days is a duration in days, exact, shown to 2 decimals rounded half up.
func days(micros int64) float64 {
	return float64(hundredths(micros)) / 100
}

// hundredths is micros in hundredths of a day, rounded half up (away from zero).
func hundredths(micros int64) int64 {
	if micros < 0 {
		// uint64 of -micros: the magnitude of the most negative number too, whose negation
		// is itself.
		return -int64((uint64(-micros)*100 + uint64(microsPerDay)/2) / uint64(microsPerDay))
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

func micros(t time.Time) int64 { return t.UnixMicro() }

// endOfTime is an as_of after every business time: the question about now.
var endOfTime = time.UnixMicro(1<<63 - 1)

// presentOf is the answer read about now from tables of the horizon, given as of a time by
// at.
func presentOf[A any](answer A, h sql.NullInt64, at func(A, time.Time) A) horizon.Present[A] {
	var from time.Time
	if h.Valid {
		from = timeOf(h.Int64)
	}
	return horizon.PresentOf(answer, from, at)
}

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
