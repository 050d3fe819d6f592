package analytics

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/deal"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/explain"
	"github.com/eventcrm/crm/projections/period"
	"github.com/eventcrm/crm/projections/probability"
)

// ForecastParams ask for the forecast of the open deals.
type ForecastParams struct {
	// Owner keeps the deals of this owner.
	Owner string `json:"owner,omitempty"`
	// From and To (YYYY-MM, inclusive) bound the expected close months listed; From defaults
	// to as_of's business month, To to the last month with a deal.
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
	// AsOf is the time of the question (required): deals expected to close before its
	// business date are overdue.
	AsOf time.Time      `json:"as_of"`
	Zone *time.Location `json:"-"`
	// Explain asks for the deals of one figure: "overdue", "no_expected_close" or a month
	// (YYYY-MM), each optionally followed by ".<owner>" and ".<currency>".
	Explain string `json:"explain,omitempty"`
	Limit   int    `json:"limit,omitempty"`
	Cursor  string `json:"cursor,omitempty"`
}

// ForecastAnswer is the open deals by expected close month and owner, with the overdue ones
// and those with no expected close apart.
type ForecastAnswer struct {
	AsOf            time.Time       `json:"as_of"`
	BusinessDate    string          `json:"business_date"`
	Zone            string          `json:"zone"`
	Owner           string          `json:"owner,omitempty"`
	Months          []ForecastGroup `json:"months"`
	Overdue         ForecastGroup   `json:"overdue"`
	NoExpectedClose ForecastGroup   `json:"no_expected_close"`
}

// ForecastGroup is the open deals of one month (or overdue, or with no expected close): per
// owner and in total, per currency.
type ForecastGroup struct {
	Month  string                 `json:"month,omitempty"`
	Owners []OwnerForecast        `json:"owners"`
	Total  map[string]ForecastSum `json:"total"`
}

// OwnerForecast is one owner's open deals of a group, per currency.
type OwnerForecast struct {
	Owner      string                 `json:"owner"`
	Currencies map[string]ForecastSum `json:"currencies"`
}

// ForecastSum: the number of deals, their amount and their weighted amount (amount x the
// stage's probability in force at as_of, summed exactly and rounded half up to the minor unit
// once).
type ForecastSum struct {
	Count    int64 `json:"count"`
	Amount   int64 `json:"amount"`
	Weighted int64 `json:"weighted"`
	hundreds int64 // weighted, in hundredths of the minor unit
}

type forecastQuestion struct {
	ForecastParams
	cutoff      string // the business date of as_of
	from, to    string // months' first dates; to exclusive, "" unbounded
	cutoffMonth string
	percents    probability.Percents // in force at as_of
}

func (p ForecastParams) check() (forecastQuestion, error) {
	q := forecastQuestion{ForecastParams: p}
	if p.AsOf.IsZero() {
		return q, domain.Invalid("as_of", "is required")
	}
	q.Zone = period.Zone(p.Zone)
	q.cutoff = string(domain.DateIn(p.AsOf, q.Zone))
	q.cutoffMonth = q.cutoff[:8] + "01"
	q.from = q.cutoffMonth
	if p.From != "" {
		m, err := parseMonth("from", p.From)
		if err != nil {
			return q, err
		}
		q.from = m
	}
	if p.To != "" {
		m, err := parseMonth("to", p.To)
		if err != nil {
			return q, err
		}
		next, _ := time.Parse(domain.DateLayout, m)
		q.to = next.AddDate(0, 1, 0).Format(domain.DateLayout)
		if q.to <= q.from {
			return q, domain.Invalid("to", "to %s is before from %s", p.To, q.from[:7])
		}
	}
	return q, nil
}

// parseMonth validates a month YYYY-MM and returns its first date.
func parseMonth(field, s string) (string, error) {
	if _, err := time.Parse("2006-01", s); err != nil {
		return "", domain.Invalid(field, "%q is not a month of the form YYYY-MM", s)
	}
	return s + "-01", nil
}

// QueryForecast answers the forecast from the kept sums of the open deals: per month of
// expected close, with the days of as_of's month before its business date taken out as overdue.
func QueryForecast(ctx context.Context, db *projections.DB, t projections.Tables, params ForecastParams) (any, error) {
	q, err := params.check()
	if err != nil {
		return nil, err
	}
	return readAnswer(ctx, db, t, func(r *reader) (any, error) {
		if q.Explain != "" {
			return r.explainForecast(ctx, q)
		}
		return r.forecastAnswer(ctx, q)
	})
}

// forecastKey names a group: a month's first date, "overdue" or "".
type forecastSums map[string]map[string]map[string]ForecastSum // group -> owner -> currency

func (s forecastSums) add(group, owner, currency string, sign, count, amount, weighted int64) {
	if s[group] == nil {
		s[group] = map[string]map[string]ForecastSum{}
	}
	if s[group][owner] == nil {
		s[group][owner] = map[string]ForecastSum{}
	}
	f := s[group][owner][currency]
	f.Count += sign * count
	f.Amount += sign * amount
	f.hundreds += sign * weighted
	s[group][owner][currency] = f
}

const groupOverdue = "overdue"

func (r *reader) forecastAnswer(ctx context.Context, q forecastQuestion) (ForecastAnswer, error) {
	percents, err := probability.InForce(ctx, r.tx, r.db.Dialect, r.t, q.AsOf)
	if err != nil {
		return ForecastAnswer{}, err
	}
	q.percents = percents
	sums := forecastSums{}
	// Months before as_of's month are overdue whole; the days of its month before its
	// business date too, taken out of the month.
	err = r.forecastRows(ctx, q, grainMonth, "", "", func(bucket, owner, cur string, c, a, w int64) {
		switch {
		case bucket == "":
			sums.add("", owner, cur, 1, c, a, w)
		case bucket < q.cutoffMonth:
			sums.add(groupOverdue, owner, cur, 1, c, a, w)
		case bucket >= q.from && (q.to == "" || bucket < q.to):
			sums.add(bucket, owner, cur, 1, c, a, w)
		}
	})
	if err != nil {
		return ForecastAnswer{}, err
	}
	err = r.forecastRows(ctx, q, grainDay, q.cutoffMonth, q.cutoff, func(bucket, owner, cur string, c, a, w int64) {
		sums.add(groupOverdue, owner, cur, 1, c, a, w)
		if q.cutoffMonth >= q.from && (q.to == "" || q.cutoffMonth < q.to) {
			sums.add(q.cutoffMonth, owner, cur, -1, c, a, w)
		}
	})
	if err != nil {
		return ForecastAnswer{}, err
	}
	answer := ForecastAnswer{AsOf: q.AsOf.UTC(), BusinessDate: q.cutoff, Zone: q.Zone.String(), Owner: q.Owner, Months: []ForecastGroup{},
		Overdue: groupOf("", sums[groupOverdue]), NoExpectedClose: groupOf("", sums[""])}
	var months []string
	for g := range sums {
		if g != "" && g != groupOverdue {
			months = append(months, g)
		}
	}
	slices.Sort(months)
	for _, m := range months {
		if g := groupOf(m[:7], sums[m]); len(g.Owners) > 0 {
			answer.Months = append(answer.Months, g)
		}
	}
	return answer, nil
}

// forecastRows reads the kept sums of grain (with buckets from..to, to exclusive, when set)
// and hands each non-empty one to f, weighted (in hundredths of the minor unit) with the
// probability of its stage in force at as_of.
func (r *reader) forecastRows(ctx context.Context, q forecastQuestion, grain, from, to string,
	f func(bucket, owner, currency string, count, amount, weighted int64)) error {
	stmt := `SELECT bucket, owner, currency, stage, count, amount FROM ` + r.t.Name(tableForecast) + ` WHERE grain = ?`
	args := []any{grain}
	if from != "" {
		stmt += ` AND bucket >= ? AND bucket < ?`
		args = append(args, from, to)
	}
	if q.Owner != "" {
		stmt += ` AND owner = ?`
		args = append(args, q.Owner)
	}
	rows, err := r.query(ctx, stmt, args...)
	if err != nil {
		return fmt.Errorf("forecast: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			bucket, owner, cur, stage string
			count, amount             int64
		)
		if err := rows.Scan(&bucket, &owner, &cur, &stage, &count, &amount); err != nil {
			return fmt.Errorf("forecast: %w", err)
		}
		if count != 0 {
			f(bucket, owner, cur, count, amount, amount*int64(q.percents.Of(deal.Stage(stage))))
		}
	}
	return rows.Err()
}

// groupOf formats the sums of one group, owners sorted, rounding each weighted sum once.
func groupOf(month string, owners map[string]map[string]ForecastSum) ForecastGroup {
	g := ForecastGroup{Month: month, Owners: []OwnerForecast{}, Total: map[string]ForecastSum{}}
	names := make([]string, 0, len(owners))
	for o := range owners {
		names = append(names, o)
	}
	slices.Sort(names)
	for _, o := range names {
		of := OwnerForecast{Owner: o, Currencies: map[string]ForecastSum{}}
		for cur, s := range owners[o] {
			if s.Count == 0 {
				continue
			}
			t := g.Total[cur]
			t.Count, t.Amount, t.hundreds = t.Count+s.Count, t.Amount+s.Amount, t.hundreds+s.hundreds
			g.Total[cur] = t
			s.Weighted = roundHundredths(s.hundreds)
			of.Currencies[cur] = s
		}
		if len(of.Currencies) > 0 {
			g.Owners = append(g.Owners, of)
		}
	}
	for cur, t := range g.Total {
		t.Weighted = roundHundredths(t.hundreds)
		g.Total[cur] = t
	}
	return g
}

// roundHundredths rounds hundredths of the minor unit half up to the minor unit.
func roundHundredths(h int64) int64 {
	if h < 0 {
		return -roundHundredths(-h)
	}
	return (h + 50) / 100
}

// explainForecast answers the open deals of one group of the forecast.
func (r *reader) explainForecast(ctx context.Context, q forecastQuestion) (ExplainAnswer, error) {
	path := strings.Split(q.Explain, ".")
	eq := explain.Question{Figures: []string{figForecast}, AsOf: time.UnixMicro(math.MaxInt64 / 2), Owner: q.Owner,
		Limit: q.Limit, Cursor: q.Cursor}
	var keepBucket func(string) bool
	switch group := path[0]; group {
	case groupOverdue:
		keepBucket = func(b string) bool { return b != "" && b < q.cutoff }
	case "no_expected_close":
		keepBucket = func(b string) bool { return b == "" }
	default:
		first, err := parseMonth("explain", group)
		if err != nil {
			return ExplainAnswer{}, domain.Invalid("explain", "%q is not overdue, no_expected_close or a month (YYYY-MM) of the forecast", q.Explain)
		}
		next, _ := time.Parse(domain.DateLayout, first)
		end := next.AddDate(0, 1, 0).Format(domain.DateLayout)
		keepBucket = func(b string) bool { return b >= first && b < end && b >= q.cutoff }
	}
	currency := ""
	if len(path) > 1 && path[1] != "total" {
		if q.Owner != "" && q.Owner != path[1] {
			return ExplainAnswer{}, domain.Invalid("explain", "%q: the answer has no owner %q", q.Explain, path[1])
		}
		eq.Owner = path[1]
	}
	if len(path) > 2 {
		currency = path[2]
	}
	if len(path) > 3 {
		return ExplainAnswer{}, domain.Invalid("explain", "%q is not the path of a figure of the forecast", q.Explain)
	}
	eq.Keep = func(p explain.Part) bool { return keepBucket(p.Bucket) && (currency == "" || p.Currency == currency) }
	page, err := explain.Read(ctx, r.tx, r.db.Dialect, r.t.Name(tableParts), eq, nil)
	if err != nil {
		return ExplainAnswer{}, err
	}
	return ExplainAnswer{Explain: q.Explain, AsOf: q.AsOf.UTC(), Page: page}, nil
}
