package value

import (
	"context"
	"database/sql"
	"slices"
	"strings"
	"time"

	"github.com/eventcrm/crm/projections"
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
	err := ask(ctx, db, t, zone, asOf, func(q *query) error {
		var (
			all []customerFacts
			ls  ladders
			err error
		)
		if q.now {
			if ls, err = q.keptLadders(ctx); err != nil {
				return err
			}
			if all, err = q.keptRF(ctx, ls, count); err != nil {
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
	return answer, err
}

// keptRF counts, from the kept counts per day of last purchase and number of orders, every
// customer whose scores they decide, and returns the others to be counted one by one: those
// whose last purchase is on a day holding a recency threshold (the day's customers may score
// apart), and those with R and F of 4 or more (champions or loyal, as M decides).
func (q *query) keptRF(ctx context.Context, ls ladders, count func(r, f int, segment string, customers int64, revenue []Money)) ([]customerFacts, error) {
	if ls.recency.n == 0 {
		return nil, nil
	}
	boundary := map[int64]bool{}
	var cond []string
	var args []any
	for _, v := range ls.recency.at {
		if d := dayOf(v); !boundary[d] {
			boundary[d] = true
			cond = append(cond, `(c.last_at >= ? AND c.last_at < ?)`)
			args = append(args, d, d+microsPerDay)
		}
	}
	// R >= 4 and F >= 4: later than the third recency threshold, more orders than the third.
	cond = append(cond, `(c.last_at > ? AND c.orders > ?)`)
	args = append(args, ls.recency.at[2], ls.frequency.at[2])
	err := q.each(ctx, "rf counts", `SELECT day, orders, currency, customers, revenue FROM `+q.t.Name(tableRF)+`
		WHERE customers <> 0 ORDER BY day, orders, currency`, nil, func(rows *sql.Rows) error {
		var (
			day, orders, customers, revenue int64
			currency                        string
		)
		if err := rows.Scan(&day, &orders, &currency, &customers, &revenue); err != nil {
			return err
		}
		r, f := ls.recency.score(day), ls.frequency.score(orders)
		if boundary[day] || r >= 4 && f >= 4 {
			return nil
		}
		if currency == "" {
			count(r, f, segmentOf(r, f, 0), customers, nil)
		} else {
			count(r, f, segmentOf(r, f, 0), 0, []Money{{Currency: currency, Amount: revenue}})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var list []customerFacts
	err = q.each(ctx, "customers", `SELECT c.customer_id, c.orders, c.first_at, c.second_at, c.last_at
		FROM `+q.t.Name(tableCustomers)+` c WHERE `+strings.Join(cond, ` OR `)+` ORDER BY c.customer_id`, args,
		func(rows *sql.Rows) error {
			var c customerFacts
			err := rows.Scan(&c.id, &c.orders, &c.first, &c.second, &c.last)
			list = append(list, c)
			return err
		})
	if err != nil || len(list) == 0 {
		return list, err
	}
	return list, q.addMoney(ctx, list, `customer_id IN (SELECT c.customer_id FROM `+q.t.Name(tableCustomers)+` c
		WHERE `+strings.Join(cond, ` OR `)+`)`, args...)
}

// addMoney adds amount in currency to list, kept sorted by currency.
func addMoney(list []Money, currency string, amount int64) []Money {
	i, found := slices.BinarySearchFunc(list, currency, func(m Money, c string) int {
		switch {
		case m.Currency < c:
			return -1
		case m.Currency > c:
			return 1
		}
		return 0
	})
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
				c.RepeatRate = rate(c.RepeatCustomers, c.Customers)
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
			rc.RepeatRate = rate(rc.RepeatCustomers, rc.Customers)
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
