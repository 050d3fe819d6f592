package analytics

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/explain"
	"github.com/eventcrm/crm/projections/horizon"
	"github.com/eventcrm/crm/projections/period"
)

// tally is what the parts of a figure add up to.
type tally struct{ count, amount int64 }

// figures are tallies by figure name.
type figures map[string]tally

func (f figures) add(figure string, count, amount int64) {
	t := f[figure]
	t.count += count
	t.amount += amount
	f[figure] = t
}

// sum adds the tallies of the figures beginning prefix, per currency (the figure's tail).
func (f figures) perCurrency(prefix string) (count int64, amounts map[string]tally) {
	amounts = map[string]tally{}
	for name, t := range f {
		if cur, ok := strings.CutPrefix(name, prefix); ok && t.count != 0 {
			amounts[cur] = t
			count += t.count
		}
	}
	return count, amounts
}

// stats are the medians of a period: kept (read with lengths) or computed from the parts.
type stats struct {
	count  int
	median *float64
}

// window is the periods of a question: their kind, the first and the end of each, in the
// business zone.
type window struct {
	kind   period.Kind
	zone   *time.Location
	starts []time.Time // each period's first instant, and the end of the last one after them
}

// maxPeriods bounds the periods of one question.
const maxPeriods = 400

// newWindow is the periods of kind holding the business dates from..to (inclusive).
func newWindow(kind period.Kind, zone *time.Location, from, to domain.Date) (window, error) {
	w := window{kind: kind, zone: zone}
	first := period.DateStart(from.Time().Year(), from.Time().Month(), from.Time().Day(), zone)
	last := period.DateStart(to.Time().Year(), to.Time().Month(), to.Time().Day(), zone)
	if last.Before(first) {
		return window{}, domain.Invalid("to", "to %s is before from %s", to, from)
	}
	for s := kind.Start(first, zone); !s.After(last); s = kind.Next(s) {
		if len(w.starts) == maxPeriods {
			return window{}, domain.Invalid("from", "more than %d periods of a %s between %s and %s", maxPeriods, kind, from, to)
		}
		w.starts = append(w.starts, s)
	}
	w.starts = append(w.starts, kind.Next(w.starts[len(w.starts)-1]))
	return w, nil
}

// labels are the labels of the periods.
func (w window) labels() []string {
	labels := make([]string, len(w.starts)-1)
	for i := range labels {
		labels[i] = period.Label(w.starts[i])
	}
	return labels
}

// from and to bound the business dates of the window (to exclusive).
func (w window) from() string { return period.Label(w.starts[0]) }
func (w window) to() string   { return period.Label(w.starts[len(w.starts)-1]) }

// periodOf is the label of the period of the window holding the business date (or month's
// first date) bucket.
func (w window) periodOf(bucket string) string {
	d, err := time.Parse(domain.DateLayout, bucket)
	if err != nil {
		return ""
	}
	return w.kind.Of(period.DateStart(d.Year(), d.Month(), d.Day(), w.zone), w.zone)
}

// span is the label of the period whose label is label: its start and end (exclusive) dates.
func (w window) span(label string) (from, to string, ok bool) {
	for i, s := range w.starts[:len(w.starts)-1] {
		if period.Label(s) == label {
			return label, period.Label(w.starts[i+1]), true
		}
	}
	return "", "", false
}

// endedBy is the first date of the first period of the window not ended by business date
// date (the window's end when every one has).
func (w window) endedBy(date string) string {
	for i, s := range w.starts[:len(w.starts)-1] {
		if period.Label(w.starts[i+1]) > date {
			return period.Label(s)
		}
	}
	return w.to()
}

// grain is the grain of the counts a window reads: days for days and weeks, months for the
// longer periods (which are whole months).
func (w window) grain() string {
	if w.kind == period.Day || w.kind == period.Week {
		return grainDay
	}
	return grainMonth
}

// keptGrain is the grain of the counts and lengths a question about now reads: its own kind of
// period but for days and months, its grain for those.
func (w window) keptGrain() string {
	if w.kind == period.Day || w.kind == period.Month {
		return w.grain()
	}
	return string(w.kind)
}

// filter is the one copy of the counts a question reads: every contact's (dim ”) or one
// owner's, channel's or segment's.
type filter struct{ dim, value string }

// filterOf is the copy answering the filters given, and false when they are more than one
// (the parts answer those).
func filterOf(owner, channel, segment string) (filter, bool) {
	var fs []filter
	for _, f := range []filter{{"owner", owner}, {"channel", channel}, {"segment", segment}} {
		if f.value != "" {
			fs = append(fs, f)
		}
	}
	switch len(fs) {
	case 0:
		return filter{}, true
	case 1:
		return fs[0], true
	}
	return filter{}, false
}

// reader runs the statements of one answer in one read transaction.
type reader struct {
	db *projections.DB
	tx *sql.Tx
	t  projections.Tables
}

// readAnswer returns what answer reads in one read transaction of db on the tables of set t:
// every figure of an answer, or every part explaining one, is of one state of the tables.
func readAnswer(ctx context.Context, db *projections.DB, t projections.Tables, answer func(r *reader) (any, error)) (any, error) {
	var out any
	err := db.ReadOnly(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = answer(&reader{db: db, tx: tx, t: t})
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (r *reader) query(ctx context.Context, stmt string, args ...any) (*sql.Rows, error) {
	return r.tx.QueryContext(ctx, r.db.Dialect.Rebind(stmt), args...)
}

// horizon is the latest business time the parts hold (zero time when none).
func (r *reader) horizon(ctx context.Context) (time.Time, error) {
	at, ok, err := horizon.Read(ctx, r.tx, r.t)
	if !ok || err != nil {
		return time.Time{}, err
	}
	return time.UnixMicro(at), nil
}

// kept tells whether the kept counts answer a question as of asOf: nothing the parts hold
// happened after it.
func (r *reader) kept(ctx context.Context, asOf time.Time) (bool, error) {
	h, err := r.horizon(ctx)
	if err != nil {
		return false, err
	}
	return !asOf.Before(h), nil
}

// counts sums the kept counts of filter f of grain in the periods of w, by period of w and
// figure, for the figures from..to (to exclusive; "" unbounded).
func (r *reader) counts(ctx context.Context, w window, grain string, f filter, figFrom, figTo string, into map[string]figures) error {
	stmt := `SELECT period, figure, count, amount FROM ` + r.t.Name(tableCounts) + `
		WHERE dim = ? AND value = ? AND grain = ? AND period >= ? AND period < ? AND figure >= ?`
	args := []any{f.dim, f.value, grain, w.from(), w.to(), figFrom}
	if figTo != "" {
		stmt += ` AND figure < ?`
		args = append(args, figTo)
	}
	rows, err := r.query(ctx, stmt, args...)
	if err != nil {
		return fmt.Errorf("counts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			bucket, figure string
			count, amount  int64
		)
		if err := rows.Scan(&bucket, &figure, &count, &amount); err != nil {
			return fmt.Errorf("counts: %w", err)
		}
		if count == 0 && amount == 0 {
			continue
		}
		label := w.periodOf(bucket)
		if into[label] == nil {
			into[label] = figures{}
		}
		into[label].add(figure, count, amount)
	}
	return rows.Err()
}

func addOwner(into map[string]map[string]figures, label, owner, figure string, count, amount int64) {
	if into[label] == nil {
		into[label] = map[string]figures{}
	}
	if into[label][owner] == nil {
		into[label][owner] = figures{}
	}
	into[label][owner].add(figure, count, amount)
}

func closeRows(rows *sql.Rows) error {
	err := rows.Err()
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	return err
}

// upper is the first figure name after every name beginning prefix (which ends in "/").
func upper(prefix string) string { return strings.TrimSuffix(prefix, "/") + "0" }

// parts reads the parts of the figures standing at asOf in the business dates of w, with the
// filters.
func (r *reader) parts(ctx context.Context, w window, figs []string, asOf time.Time, owner, channel, segment string) ([]explain.Part, error) {
	return explain.Select(ctx, r.tx, r.db.Dialect, r.t.Name(tableParts), explain.Question{Figures: figs, From: w.from(), To: w.to(),
		AsOf: asOf, Owner: owner, Channel: channel, Segment: segment})
}

// medianOf is the median of lengths in microseconds, in days to 2 decimals half up: the middle
// one, or the mean of the two middle ones.
func medianOf(micros []int64) stats {
	n := len(micros)
	if n == 0 {
		return stats{}
	}
	sorted := append([]int64(nil), micros...)
	sortInts(sorted)
	lower := sorted[n/2]
	if n%2 == 0 {
		lower = sorted[n/2-1]
	}
	return middleMedian(n, lower, sorted[n/2])
}

// middleMedian is the median of n lengths whose middle ones (the lower middle and the upper
// middle, the same length for an odd n) are lower and upper.
func middleMedian(n int, lower, upper int64) stats {
	var m float64
	if n%2 == 1 {
		m = explain.Days(upper)
	} else {
		const perDay = int64(24 * time.Hour / time.Microsecond)
		a, b := max(lower, 0), max(upper, 0)
		m = float64(((a+b)*100+perDay)/(2*perDay)) / 100
	}
	return stats{count: n, median: &m}
}

// meanHalfUp is total/n rounded half up to the minor unit.
func meanHalfUp(total, n int64) int64 {
	if total < 0 {
		return -meanHalfUp(-total, n)
	}
	return (2*total + n) / (2 * n)
}
