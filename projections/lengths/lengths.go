// Package lengths keeps lengths of time (stays in a phase, a stage) so that their exact median
// and p75, in days to 2 decimals, are read from a few hundred rows, however many there are.
//
// A read model declares two tables with its own leading key columns (the series: a stage, an
// owner's stage...) followed by the columns this package reads:
//
//	bins    <series...>, width, bin, count: the lengths of a series counted per day (width
//	        100: days of hundredths of a day rounded half up, what days shows times 100)
//	exact   micros and count columns: the lengths counted per exact value, keyed so that
//	        those of a series are found in order of micros from a given one (for instance
//	        <kind of series>, micros, <what tells the series apart>, joined with it)
//
// and its fold adds each length to its day bin (Bins) and to the exact table. Read finds the
// day of each rank it needs in the day bins, then the length of that rank among the exact
// lengths of that day, in order: that is the p75 and the median (the mean of two lengths for
// an even count).
//
// The exact table is kept once for every series that shares it (a read model joins it with
// what tells its series apart), the day bins per series: a length costs the fold one bin row
// per series, where bins of hundredths would cost nearly one new row per length and series.
package lengths

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"github.com/eventcrm/crm/projections"
)

const microsPerDay = int64(24 * time.Hour / time.Microsecond)

// Day is the width of the bins, in hundredths of a day.
const Day = 100

// Bin is a bin of a length: its width and number.
type Bin struct{ Width, Bin int64 }

// Bins are the bins of a length in microseconds (a negative one, possible only with
// back-dated events, counts as 0): its day.
func Bins(micros int64) [1]Bin {
	return [1]Bin{{Day, hundredths(max(micros, 0)) / Day}}
}

// hundredths is a non-negative length in hundredths of a day, rounded half up.
func hundredths(micros int64) int64 {
	return (micros*100 + microsPerDay/2) / microsPerDay
}

// lowest is the shortest length shown as h hundredths of a day.
func lowest(h int64) int64 {
	return h*microsPerDay/100 - microsPerDay/200
}

// DaySpan is the lengths in microseconds (from inclusive, to exclusive) whose day bin is day:
// for a reader that finds a rank's day in the day bins itself.
func DaySpan(day int64) (from, to int64) { return lowest(day * Day), lowest((day + 1) * Day) }

// Stats are the median and p75 of the lengths of a series, in days; nil when it has none.
type Stats struct {
	Count       int
	Median, P75 *float64
}

// Series names the rows of one series: the bins table and the condition on its leading key
// columns (e.g. "stage = ?") with its arguments; the exact lengths (a table, or a join) and
// the condition that keeps the series' rows.
type Series struct {
	Bins       string
	Where      string
	Args       []any
	Exact      string
	ExactWhere string
	ExactArgs  []any
}

// Read reads the stats of series s in tx: as a sort of every length would give them (the
// median the middle one or the mean of the two middle ones, half up to 2 decimals; p75 the
// ceil(0.75 n)-th shortest).
func Read(ctx context.Context, tx *sql.Tx, d projections.Dialect, s Series) (Stats, error) {
	r := reader{ctx: ctx, tx: tx, d: d, s: s}
	days, err := r.days()
	if err != nil {
		return Stats{}, err
	}
	var n int64
	for _, b := range days {
		n += b.count
	}
	if n == 0 {
		return Stats{}, nil
	}
	p75Rank := int64(max((75*n+99)/100, 1))
	ranks := []int64{n/2 + 1, p75Rank} // the middle (odd n) or upper middle, and p75
	if n%2 == 0 {
		ranks = append(ranks, n/2)
	}
	at, err := r.lengthsAt(days, ranks)
	if err != nil {
		return Stats{}, err
	}
	median := float64(hundredths(at[n/2+1])) / 100
	if n%2 == 0 {
		// Two middle lengths in one hundredth: their mean rounds to it too.
		if a, b := at[n/2], at[n/2+1]; hundredths(a) != hundredths(b) {
			median = float64(((a+b)*100+microsPerDay)/(2*microsPerDay)) / 100
		}
	}
	p75 := float64(hundredths(at[p75Rank])) / 100
	return Stats{Count: int(n), Median: &median, P75: &p75}, nil
}

type reader struct {
	ctx context.Context
	tx  *sql.Tx
	d   projections.Dialect
	s   Series
}

type binCount struct{ bin, count int64 }

// days reads the day bins of the series in order.
func (r *reader) days() ([]binCount, error) {
	stmt := `SELECT bin, count FROM ` + r.s.Bins + ` WHERE ` + r.s.Where + ` AND width = ? ORDER BY bin`
	rows, err := r.tx.QueryContext(r.ctx, r.d.Rebind(stmt), append(slices.Clone(r.s.Args), Day)...)
	if err != nil {
		return nil, fmt.Errorf("day bins: %w", err)
	}
	defer rows.Close()
	var out []binCount
	for rows.Next() {
		var b binCount
		if err := rows.Scan(&b.bin, &b.count); err != nil {
			return nil, fmt.Errorf("day bins: %w", err)
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// lengthsAt returns the rank-th shortest length (1-based) of each of ranks: it finds each
// one's day in the day bins, then reads the exact lengths of that day in order, once per day.
func (r *reader) lengthsAt(days []binCount, ranks []int64) (map[int64]int64, error) {
	type inDay struct{ rank, before int64 }
	byDay := map[int64][]inDay{}
	var order []int64
	for _, rank := range ranks {
		day, before, ok := locate(days, rank)
		if !ok {
			return nil, fmt.Errorf("the day bins hold fewer than %d lengths", rank)
		}
		if _, seen := byDay[day]; !seen {
			order = append(order, day)
		}
		byDay[day] = append(byDay[day], inDay{rank, before})
	}
	at := map[int64]int64{}
	for _, day := range order {
		want := byDay[day]
		var last int64 // the highest rank within the day wanted
		for _, w := range want {
			last = max(last, w.rank-w.before)
		}
		lengths, err := r.exactOfDay(day, last)
		if err != nil {
			return nil, err
		}
		for _, w := range want {
			m, ok := nth(lengths, w.rank-w.before)
			if !ok {
				return nil, fmt.Errorf("the exact lengths of day %d hold fewer than %d", day, w.rank-w.before)
			}
			at[w.rank] = m
		}
	}
	return at, nil
}

type lengthCount struct{ micros, count int64 }

// exactOfDay reads the exact lengths of the series shown in day (in hundredths from
// day*Day), in order, until it holds at least upto of them.
func (r *reader) exactOfDay(day, upto int64) ([]lengthCount, error) {
	stmt := `SELECT micros, count FROM ` + r.s.Exact + ` WHERE ` + r.s.ExactWhere + ` AND micros >= ? AND micros < ? ORDER BY micros`
	args := append(slices.Clone(r.s.ExactArgs), lowest(day*Day), lowest((day+1)*Day))
	rows, err := r.tx.QueryContext(r.ctx, r.d.Rebind(stmt), args...)
	if err != nil {
		return nil, fmt.Errorf("lengths of day %d: %w", day, err)
	}
	defer rows.Close()
	var (
		out []lengthCount
		n   int64
	)
	for n < upto && rows.Next() {
		var l lengthCount
		if err := rows.Scan(&l.micros, &l.count); err != nil {
			return nil, fmt.Errorf("lengths of day %d: %w", day, err)
		}
		out = append(out, l)
		n += l.count
	}
	return out, rows.Err()
}

// nth is the nth shortest (1-based) of lengths in order.
func nth(lengths []lengthCount, n int64) (int64, bool) {
	for _, l := range lengths {
		if n -= l.count; n <= 0 && l.count > 0 {
			return l.micros, true
		}
	}
	return 0, false
}

// locate finds the bin holding rank in bins in order, and how many lengths come before it.
func locate(bins []binCount, rank int64) (bin, before int64, ok bool) {
	for _, b := range bins {
		if rank <= before+b.count {
			return b.bin, before, true
		}
		before += b.count
	}
	return 0, before, false
}
