package value

import (
	"context"
	"database/sql"
	"slices"
	"strings"
	"time"

	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/horizon"
	"github.com/eventcrm/crm/projections/round"
)

// Money is an amount in minor units of a currency.
type Money struct {
	Currency string `json:"currency"`
	Amount   int64  `json:"amount"`
}

// RFMAnswer is the customers per RFM segment and the R x F grid as of a time.
type RFMAnswer struct {
	AsOf time.Time `json:"as_of"`
	// Customers is every customer with a purchase by as_of: the n of the scores.
	Customers int64 `json:"customers"`
	// Segments lists every segment in rule order, with its customers and their revenue per
	// currency.
	Segments []SegmentFigures `json:"segments"`
	// Grid is the customers per recency score (r) and frequency score (f): 25 cells, r then f
	// ascending.
	Grid []Cell `json:"grid"`
}

// SegmentFigures are the customers of one segment.
type SegmentFigures struct {
	Segment   string  `json:"segment"`
	Customers int64   `json:"customers"`
	Revenue   []Money `json:"revenue"`
}

// Cell is one cell of the R x F grid.
type Cell struct {
	R         int   `json:"r"`
	F         int   `json:"f"`
	Customers int64 `json:"customers"`
}

// QueryRFM answers the RFM segments and grid as of asOf (required). About now the scores'
// thresholds and the counts per day of last purchase and number of orders are kept: only the
// customers of the days that hold a recency threshold, and those whose monetary score decides
// between champions and loyal, are read one by one. About a past time every customer's
// purchases then are read.
func QueryRFM(ctx context.Context, db *projections.DB, t projections.Tables, zone *time.Location, asOf time.Time) (RFMAnswer, error) {
	if err := asOfRequired(asOf); err != nil {
		return RFMAnswer{}, err
	}
	answer, _, err := rfmAt(ctx, db, t, zone, asOf)
	return answer, err
}

// QueryRFMNow answers the RFM segments and grid about now, as QueryRFM does for an as_of at
// or after the horizon: that answer depends on the tables alone, not on the as_of (the
// scores rank the customers' last purchases among themselves, not their age), so it can be
// kept while the tables do not change and given for any such as_of (horizon.Present.At).
func QueryRFMNow(ctx context.Context, db *projections.DB, t projections.Tables, zone *time.Location) (horizon.Present[RFMAnswer], error) {
	answer, horizon, err := rfmAt(ctx, db, t, zone, endOfTime)
	return presentOf(answer, horizon, func(a RFMAnswer, asOf time.Time) RFMAnswer {
		a.AsOf = asOf
		return a
	}), err
}

// rfmAt answers RFM as of asOf, and the horizon of the tables read.
func rfmAt(ctx context.Context, db *projections.DB, t projections.Tables, zone *time.Location, asOf time.Time) (RFMAnswer, sql.NullInt64, error) {
	var horizon sql.NullInt64
	answer := RFMAnswer{AsOf: asOf.UTC()}
	for _, s := range Segments() {
		answer.Segments = append(answer.Segments, SegmentFigures{Segment: s, Revenue: []Money{}})
	}
	var grid [5][5]int64
	count := func(r, f int, segment string, customers int64, revenue []Money) {
		grid[r-1][f-1] += customers
		s := &answer.Segments[slices.Index(Segments(), segment)]
		s.Customers += customers
		for _, m := range revenue {
			s.Revenue = addMoney(s.Revenue, m.Currency, m.Amount)
		}
	}
	err := askScoring(ctx, db, t, zone, asOf, func(q *query) error {
		horizon = q.horizon
		var (
			all []customerFacts
			ls  ladders
			err error
		)
		if q.now {
			if ls, err = q.keptLadders(ctx); err != nil {
				return err
			}
			if err := q.keptRF(ctx, ls, count); err != nil {
				return err
			}
		} else {
			if all, err = q.customersThen(ctx, ""); err != nil {
				return err
			}
			ls = laddersOf(all)
		}
		answer.Customers = ls.frequency.n
		for i := range all {
			r, f, _, seg := ls.scores(&all[i])
			var revenue []Money
			for _, mo := range all[i].money {
				revenue = append(revenue, Money{Currency: mo.currency, Amount: mo.revenue})
			}
			count(r, f, seg, 1, revenue)
		}
		return nil
	})
	for r := range 5 {
		for f := range 5 {
			answer.Grid = append(answer.Grid, Cell{R: r + 1, F: f + 1, Customers: grid[r][f]})
		}
	}
	return answer, horizon, err
}

// keptRF counts every customer about now in the database, by score: from the kept counts
// per day of last purchase and number of orders, the customers whose last purchase is on a
// day that holds no recency threshold (all of the day's customers score alike) and whose R
// and F are not both 4 or more; then the customers of the threshold days and those with R and
// F of 4 or more (champions or loyal, as M decides), from their totals and money, in one pass
// over them. Each part is one grouped statement: the rows read stay in the database.
func (q *query) keptRF(ctx context.Context, ls ladders, count func(r, f int, segment string, customers int64, revenue []Money)) error {
	if ls.recency.n == 0 {
		return nil
	}
	var days []int64
	for _, v := range ls.recency.at {
		if d := dayOf(v); !slices.Contains(days, d) {
			days = append(days, d)
		}
	}
	dayList := `(?` + strings.Repeat(`, ?`, len(days)-1) + `)`
	score := func(column string, l ladder, day bool) (string, []any) {
		expr, args := `(1`, []any{}
		for _, v := range l.at {
			if day {
				v = dayOf(v)
			}
			expr += ` + CASE WHEN ` + column + ` > ? THEN 1 ELSE 0 END`
			args = append(args, v)
		}
		return expr + `)`, args
	}
	// A month that holds no recency threshold scores every one of its days alike: its sums
	// are read from rf_months, the days of the other months (threshold days aside) from rf.
	var months []int64
	for _, d := range days {
		if m := monthOf(d); !slices.Contains(months, m) {
			months = append(months, m)
		}
	}
	monthList := `(?` + strings.Repeat(`, ?`, len(months)-1) + `)`
	rDay, rArgs := score("day", ls.recency, true)
	fOrders, fArgs := score("orders", ls.frequency, false)
	var args []any
	args = append(append(args, rArgs...), fArgs...)
	for _, m := range months {
		args = append(args, m)
	}
	args = append(append(args, rArgs...), fArgs...)
	var inMonths []string
	for _, m := range months {
		inMonths = append(inMonths, `(day >= ? AND day < ?)`)
		args = append(args, m, monthEnd(m))
	}
	for _, d := range days {
		args = append(args, d)
	}
	err := q.each(ctx, "rf counts", `SELECT r, f, currency, SUM(customers), SUM(revenue) FROM (
		SELECT `+rDay+` AS r, `+fOrders+` AS f, currency, customers, revenue FROM `+q.t.Name(tableRFMonths)+`
		WHERE customers <> 0 AND day NOT IN `+monthList+`
		UNION ALL
		SELECT `+rDay+` AS r, `+fOrders+` AS f, currency, customers, revenue FROM `+q.t.Name(tableRF)+`
		WHERE customers <> 0 AND (`+strings.Join(inMonths, ` OR `)+`) AND day NOT IN `+dayList+`) x
		WHERE r < 4 OR f < 4 GROUP BY r, f, currency ORDER BY r, f, currency`, args, func(rows *sql.Rows) error {
		var (
			r, f               int
			currency           string
			customers, revenue int64
		)
		if err := rows.Scan(&r, &f, &currency, &customers, &revenue); err != nil {
			return err
		}
		if currency == "" {
			count(r, f, segmentOf(r, f, 0), customers, nil)
		} else {
			count(r, f, segmentOf(r, f, 0), 0, []Money{{Currency: currency, Amount: revenue}})
		}
		return nil
	})
	if err != nil {
		return err
	}

	// The others, one by one in the database: R and F exact, and whether M is 4 or more (a
	// revenue above the third monetary threshold of its currency).
	rExact, rArgs := score("c.last_at", ls.recency, false)
	fExact, fArgs := score("c.orders", ls.frequency, false)
	var mConds []string
	var mArgs []any
	for cur, l := range ls.monetary {
		mConds = append(mConds, `(m2.currency = ? AND m2.revenue > ?)`)
		mArgs = append(mArgs, cur, l.at[2])
	}
	// A customer's rows of money, one per currency: ch is whether any of them scores M 4 or
	// more, first marks one of them, where the customer is counted.
	champion := `MAX(CASE WHEN ` + strings.ReplaceAll(strings.Join(mConds, ` OR `), `m2.`, `m.`) + ` THEN 1 ELSE 0 END)
		OVER (PARTITION BY x.customer_id)`
	where := `(c.last_at > ? AND c.orders > ?)`
	whereArgs := []any{ls.recency.at[2], ls.frequency.at[2]}
	for _, d := range days {
		where += ` OR (c.last_at >= ? AND c.last_at < ?)`
		whereArgs = append(whereArgs, d, d+microsPerDay)
	}
	scored := `SELECT ` + rExact + ` AS r, ` + fExact + ` AS f, c.customer_id FROM ` + q.t.Name(tableCustomers) + ` c WHERE ` + where
	segment := func(r, f, ch int) string { return segmentOf(r, f, 4*ch) }
	// One pass over these customers and their money: customers and revenue per score.
	return q.each(ctx, "rf customers", `SELECT r, f, ch, currency, SUM(first), SUM(revenue) FROM (
		SELECT x.r, x.f, `+champion+` AS ch,
			CASE WHEN ROW_NUMBER() OVER (PARTITION BY x.customer_id ORDER BY m.currency) = 1 THEN 1 ELSE 0 END AS first,
			m.currency, m.revenue
		FROM (`+scored+`) x JOIN `+q.t.Name(tableMoney)+` m ON m.customer_id = x.customer_id) y
		GROUP BY r, f, ch, currency ORDER BY r, f, ch, currency`,
		append(append(append(append([]any{}, mArgs...), rArgs...), fArgs...), whereArgs...), func(rows *sql.Rows) error {
			var (
				r, f, ch           int
				currency           string
				customers, revenue int64
			)
			err := rows.Scan(&r, &f, &ch, &currency, &customers, &revenue)
			count(r, f, segment(r, f, ch), customers, []Money{{Currency: currency, Amount: revenue}})
			return err
		})
}

// addMoney adds amount in currency to list, kept sorted by currency.
func addMoney(list []Money, currency string, amount int64) []Money {
	i, found := slices.BinarySearchFunc(list, currency, func(m Money, c string) int { return strings.Compare(m.Currency, c) })
	if !found {
		list = slices.Insert(list, i, Money{Currency: currency})
	}
	list[i].Amount += amount
	return list
}

// RepeatAnswer is the repeat rate of each cohort of first purchase.
type RepeatAnswer struct {
	AsOf    time.Time      `json:"as_of"`
	Cohorts []RepeatCohort `json:"cohorts"`
}

// RepeatCohort is one cohort: the customers whose first purchase was in the month (business
// zone), those of them with a second purchase by as_of, and the rate (4 decimals, half up).
type RepeatCohort struct {
	Cohort          string   `json:"cohort"`
	Customers       int64    `json:"customers"`
	RepeatCustomers int64    `json:"repeat_customers"`
	RepeatRate      *float64 `json:"repeat_rate"`
}

// QueryRepeatRate answers the repeat rate per cohort, oldest cohort first.
func QueryRepeatRate(ctx context.Context, db *projections.DB, t projections.Tables, zone *time.Location, asOf time.Time) (RepeatAnswer, error) {
	if err := asOfRequired(asOf); err != nil {
		return RepeatAnswer{}, err
	}
	answer := RepeatAnswer{AsOf: asOf.UTC(), Cohorts: []RepeatCohort{}}
	err := ask(ctx, db, t, zone, asOf, func(q *query) error {
		if q.now {
			return q.each(ctx, "cohorts", `SELECT cohort, customers, repeaters FROM `+q.t.Name(tableCohorts)+`
				WHERE customers <> 0 ORDER BY cohort`, nil, func(rows *sql.Rows) error {
				var c RepeatCohort
				err := rows.Scan(&c.Cohort, &c.Customers, &c.RepeatCustomers)
				c.RepeatRate = round.Ratio(c.RepeatCustomers, c.Customers)
				answer.Cohorts = append(answer.Cohorts, c)
				return err
			})
		}
		all, err := q.customersThen(ctx, "")
		if err != nil {
			return err
		}
		byCohort := map[string]*RepeatCohort{}
		for _, c := range all {
			key := cohortOf(c.first, q.zone)
			rc := byCohort[key]
			if rc == nil {
				rc = &RepeatCohort{Cohort: key}
				byCohort[key] = rc
			}
			rc.Customers++
			if c.second.Valid {
				rc.RepeatCustomers++
			}
		}
		for _, rc := range byCohort {
			rc.RepeatRate = round.Ratio(rc.RepeatCustomers, rc.Customers)
			answer.Cohorts = append(answer.Cohorts, *rc)
		}
		slices.SortFunc(answer.Cohorts, func(a, b RepeatCohort) int {
			if a.Cohort < b.Cohort {
				return -1
			}
			return 1
		})
		return nil
	})
	return answer, err
}

// SeasonAnswer is the orders and revenue by month of year.
type SeasonAnswer struct {
	AsOf time.Time `json:"as_of"`
	// Months are January (1) to December (12), every one listed, in the business zone.
	Months []Month `json:"months"`
}

// Month is one month of year over every year: orders, and orders and revenue per currency.
type Month struct {
	Month      int           `json:"month"`
	Orders     int64         `json:"orders"`
	Currencies []MonthAmount `json:"currencies"`
}

// MonthAmount is a month's orders and revenue in one currency.
type MonthAmount struct {
	Currency string `json:"currency"`
	Orders   int64  `json:"orders"`
	Revenue  int64  `json:"revenue"`
}

// QuerySeasonality answers the orders and revenue by month of year, purchases at or before
// asOf.
func QuerySeasonality(ctx context.Context, db *projections.DB, t projections.Tables, zone *time.Location, asOf time.Time) (SeasonAnswer, error) {
	if err := asOfRequired(asOf); err != nil {
		return SeasonAnswer{}, err
	}
	answer := SeasonAnswer{AsOf: asOf.UTC()}
	for m := 1; m <= 12; m++ {
		answer.Months = append(answer.Months, Month{Month: m, Currencies: []MonthAmount{}})
	}
	add := func(month int64, currency string, orders, revenue int64) {
		mo := &answer.Months[month-1]
		mo.Orders += orders
		i := slices.IndexFunc(mo.Currencies, func(a MonthAmount) bool { return a.Currency == currency })
		if i < 0 {
			mo.Currencies = append(mo.Currencies, MonthAmount{Currency: currency})
			i = len(mo.Currencies) - 1
		}
		mo.Currencies[i].Orders += orders
		mo.Currencies[i].Revenue += revenue
	}
	err := ask(ctx, db, t, zone, asOf, func(q *query) error {
		if q.now {
			return q.each(ctx, "seasons", `SELECT month, currency, orders, revenue FROM `+q.t.Name(tableSeasons)+`
				WHERE orders <> 0 ORDER BY month, currency`, nil, func(rows *sql.Rows) error {
				var (
					month, orders, revenue int64
					currency               string
				)
				err := rows.Scan(&month, &currency, &orders, &revenue)
				add(month, currency, orders, revenue)
				return err
			})
		}
		return q.each(ctx, "purchases", `SELECT occurred_at, currency, amount FROM `+q.t.Name(tablePurchases)+`
			WHERE occurred_at <= ? ORDER BY currency`, []any{q.asOf}, func(rows *sql.Rows) error {
			var (
				at, amount int64
				currency   string
			)
			err := rows.Scan(&at, &currency, &amount)
			add(int64(time.UnixMicro(at).In(q.zone).Month()), currency, 1, amount)
			return err
		})
	})
	return answer, err
}
