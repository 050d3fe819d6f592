package value

import (
	"database/sql"
	"slices"
	"strings"
	"time"

	"github.com/eventcrm/crm/projections/explain"
	"github.com/eventcrm/crm/projections/readmodel"
)

// summary is a customer's totals from its purchases: what the customers and money rows hold
// and what the kept counts count.
type summary struct {
	orders, first, last int64
	second              sql.NullInt64
	money               []moneyRow // by currency
	// firstBy and secondBy are the first and second purchases (zero when none).
	firstBy, secondBy purchaseRow
}

// summarize totals purchases given in time order (occurred_at, then position).
func summarize(ps []purchaseRow) summary {
	var s summary
	for i, p := range ps {
		switch i {
		case 0:
			s.first, s.firstBy = p.occurredAt, p
		case 1:
			s.second, s.secondBy = sql.NullInt64{Int64: p.occurredAt, Valid: true}, p
		}
		s.last = p.occurredAt
		s.orders++
		j, found := slices.BinarySearchFunc(s.money, p.currency, func(r moneyRow, c string) int { return strings.Compare(r.currency, c) })
		if !found {
			s.money = slices.Insert(s.money, j, moneyRow{customerID: p.customerID, currency: p.currency})
		}
		s.money[j].orders++
		s.money[j].revenue += p.amount
	}
	return s
}

// resum replaces the customer's totals before with after: its rows, and its share of the kept
// counts (taken away, then added again).
func (m *model) resum(rows *readmodel.Rows, customerID string, before, after summary) {
	m.count(rows, before, -1)
	m.count(rows, after, 1)
	m.repeatParts(rows, customerID, before, after)
	if _, ok := m.customers.Get(rows, customerID); ok && after.orders == 0 {
		m.customers.Delete(rows, customerID)
	}
	if after.orders > 0 {
		m.customers.Upsert(rows, customerRow{customerID: customerID, orders: after.orders, firstAt: after.first,
			secondAt: after.second, lastAt: after.last})
	}
	stored := m.money.Group(rows, customerID)
	for _, r := range stored {
		if !slices.ContainsFunc(after.money, func(a moneyRow) bool { return a.currency == r.currency }) {
			m.money.Delete(rows, customerID, r.currency)
		}
	}
	for _, r := range after.money {
		r.customerID = customerID
		m.money.Upsert(rows, r)
	}
}

// count adds sign times the customer's share of the kept counts: one customer per order
// count, day of last purchase, revenue bucket of each currency, and cohort of first purchase.
func (m *model) count(rows *readmodel.Rows, s summary, sign int64) {
	if s.orders == 0 {
		return
	}
	m.frequency.Add(rows, frequencyRow{orders: s.orders, customers: sign})
	day := dayOf(s.last)
	m.recency.Add(rows, recencyRow{day: day, customers: sign})
	month := monthOf(day)
	m.rf.Add(rows, rfRow{day: day, orders: s.orders, customers: sign})
	m.rfMonths.Add(rows, rfRow{day: month, orders: s.orders, customers: sign})
	for _, r := range s.money {
		m.monetary.Add(rows, monetaryRow{currency: r.currency, bucket: bucketOf(r.revenue), customers: sign})
		m.rf.Add(rows, rfRow{day: day, orders: s.orders, currency: r.currency, customers: sign, revenue: sign * r.revenue})
		m.rfMonths.Add(rows, rfRow{day: month, orders: s.orders, currency: r.currency, customers: sign, revenue: sign * r.revenue})
	}
	repeat := int64(0)
	if s.second.Valid {
		repeat = sign
	}
	m.cohorts.Add(rows, cohortRow{cohort: cohortOf(s.first, m.zone), customers: sign, repeaters: repeat})
}

// CohortLayout is the form of a cohort: the month of the first purchase, business zone.
const CohortLayout = "2006-01"

func cohortOf(micros int64, zone *time.Location) string {
	return time.UnixMicro(micros).In(zone).Format(CohortLayout)
}

// dayOf is the start of the UTC day of a time: the recency count's key.
func dayOf(micros int64) int64 {
	d := micros / microsPerDay
	if micros%microsPerDay < 0 {
		d--
	}
	return d * microsPerDay
}

// monthOf is the first instant of the UTC month of a time: the key of rf_months.
func monthOf(micros int64) int64 {
	t := time.UnixMicro(micros).UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC).UnixMicro()
}

// monthEnd is the first instant of the month after the one starting at month.
func monthEnd(month int64) int64 {
	return time.UnixMicro(month).UTC().AddDate(0, 1, 0).UnixMicro()
}

// bucketOf is the lower bound of the revenue bucket of v: v itself below 100, else v with
// all but its two leading digits zeroed (so buckets keep about 90 per power of ten).
func bucketOf(v int64) int64 {
	if v < 100 {
		return v
	}
	p := int64(1)
	for v/p >= 100 {
		p *= 10
	}
	return v / p * p
}

// bucketEnd is the first value after the bucket that starts at lo.
func bucketEnd(lo int64) int64 {
	if lo < 100 {
		return lo + 1
	}
	p := int64(1)
	for lo/p >= 100 {
		p *= 10
	}
	return lo + p
}

// repeatParts replaces the parts of the customer's first and second purchases before with
// those after, where they changed: the cohort a customer counts in, and whether it repeated,
// follow its earliest purchases, whatever the order they were recorded in.
func (m *model) repeatParts(rows *readmodel.Rows, customerID string, before, after summary) {
	part := func(s summary, second bool) (explain.Part, bool) {
		if s.orders == 0 || second && !s.second.Valid {
			return explain.Part{}, false
		}
		by, figure := s.firstBy, figCohort
		if second {
			by, figure = s.secondBy, figRepeat
		}
		return explain.Part{Entity: customerID, Figure: figure + cohortOf(s.first, m.zone), Position: by.position,
			EventID: by.eventID, At: by.occurredAt, Count: 1}, true
	}
	for _, second := range []bool{false, true} {
		was, had := part(before, second)
		is, has := part(after, second)
		if had == has && was == is {
			continue
		}
		if had {
			m.parts.Delete(rows, was.Position, was.Entity, was.Figure)
		}
		if has {
			m.parts.Upsert(rows, is)
		}
	}
}
