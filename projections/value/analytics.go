package value

import (
	"context"
	"database/sql"
	"slices"
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

// QueryRFM answers the RFM segments and grid as of asOf (required). The scores' thresholds are
// read from the kept counts about now; every customer's scores are then counted from the kept
// totals (one narrow row per customer).
func QueryRFM(ctx context.Context, db *projections.DB, t projections.Tables, zone *time.Location, asOf time.Time) (RFMAnswer, error) {
	if err := asOfRequired(asOf); err != nil {
		return RFMAnswer{}, err
	}
	answer := RFMAnswer{AsOf: asOf.UTC()}
	err := ask(ctx, db, t, zone, asOf, func(q *query) error {
		all, err := q.allCustomers(ctx)
		if err != nil {
			return err
		}
		ls, err := q.ladders(ctx, all)
		if err != nil {
			return err
		}
		answer.Customers = int64(len(all))
		segments := map[string]*SegmentFigures{}
		for _, s := range Segments() {
			answer.Segments = append(answer.Segments, SegmentFigures{Segment: s, Revenue: []Money{}})
		}
		for i := range answer.Segments {
			segments[answer.Segments[i].Segment] = &answer.Segments[i]
		}
		var grid [5][5]int64
		for i := range all {
			r, f, _, seg := ls.scores(&all[i])
			grid[r-1][f-1]++
			s := segments[seg]
			s.Customers++
			for _, mo := range all[i].money {
				s.Revenue = addMoney(s.Revenue, mo.currency, mo.revenue)
			}
		}
		for r := range 5 {
			for f := range 5 {
				answer.Grid = append(answer.Grid, Cell{R: r + 1, F: f + 1, Customers: grid[r][f]})
			}
		}
		return nil
	})
	return answer, err
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
