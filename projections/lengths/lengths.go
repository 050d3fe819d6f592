// Package lengths keeps lengths of time (stays in a phase, a stage) so that their exact median
// and p75, in days to 2 decimals, are read from a few hundred rows, however many there are.
//
// A read model declares two tables with its own leading key columns (the series: a stage, an
// owner's stage...) followed by the columns this package reads:
//
//	bins    <series...>, width, bin, count: the lengths of a series counted per bin; width 1
//	        bins are hundredths of a day rounded half up (what days shows, times 100), width
//	        100 bins are days of those hundredths
//	exact   micros and count columns: the lengths counted per exact value, keyed so that
//	        those of a series are found in order of micros from a given one (for instance
//	        <kind of series>, micros, <what tells the series apart>, joined with it)
//
// and its fold adds each length with Bins (both widths) and to the exact table. Read finds the
// day of each rank it needs in the day bins, then its hundredth in that day's hundredth bins:
// that is the p75 and the median of an odd count. The median of an even count is the mean of
// two lengths, exact when both are in one hundredth; otherwise their exact values are read.
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

// Widths of the bins, in hundredths of a day.
const (
	Hundredth = 1
	Day       = 100
)

// Bin is a bin of a length: its width and number.
type Bin struct{ Width, Bin int64 }

// Bins are the bins of a length in microseconds (a negative one, possible only with
// back-dated events, counts as 0), of both widths.
func Bins(micros int64) [2]Bin {
	h := hundredths(max(micros, 0))
	return [2]Bin{{Day, h / Day}, {Hundredth, h}}
}

// hundredths is a non-negative length in hundredths of a day, rounded half up.
func hundredths(micros int64) int64 {
	return (micros*100 + microsPerDay/2) / microsPerDay
}

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
	days, err := r.bins(Day, 0, -1)
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
	h := map[int64]int64{}
	for _, rank := range ranks {
		if h[rank], err = r.hundredthAt(days, rank); err != nil {
			return Stats{}, err
		}
	}
	// Two middle lengths in one hundredth: their mean rounds to it too.
	median := float64(h[n/2+1]) / 100
	if n%2 == 0 && h[n/2] != h[n/2+1] {
		a, b, err := r.middle(h[n/2+1])
		if err != nil {
			return Stats{}, err
		}
		median = float64(((a+b)*100+microsPerDay)/(2*microsPerDay)) / 100
	}
	p75 := float64(h[p75Rank]) / 100
	return Stats{Count: int(n), Median: &median, P75: &p75}, nil
}

type reader struct {
	ctx context.Context
	tx  *sql.Tx
	d   projections.Dialect
	s   Series
}

type binCount struct{ bin, count int64 }

// bins reads the bins of a width in order, those from..to only when to >= 0.
func (r *reader) bins(width, from, to int64) ([]binCount, error) {
	stmt := `SELECT bin, count FROM ` + r.s.Bins + ` WHERE ` + r.s.Where + ` AND width = ?`
	args := append(slices.Clone(r.s.Args), width)
	if to >= 0 {
		stmt += ` AND bin >= ? AND bin <= ?`
		args = append(args, from, to)
	}
	rows, err := r.tx.QueryContext(r.ctx, r.d.Rebind(stmt+` ORDER BY bin`), args...)
	if err != nil {
		return nil, fmt.Errorf("bins: %w", err)
	}
	defer rows.Close()
	var out []binCount
	for rows.Next() {
		var b binCount
		if err := rows.Scan(&b.bin, &b.count); err != nil {
			return nil, fmt.Errorf("bins: %w", err)
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// hundredthAt is the hundredth of a day holding the rank-th shortest length (1-based).
func (r *reader) hundredthAt(days []binCount, rank int64) (int64, error) {
	day, before, ok := locate(days, rank)
	if !ok {
		return 0, fmt.Errorf("the day bins hold fewer than %d lengths", rank)
	}
	inDay, err := r.bins(Hundredth, day*Day, day*Day+Day-1)
	if err != nil {
		return 0, err
	}
	h, _, ok := locate(inDay, rank-before)
	if !ok {
		return 0, fmt.Errorf("the hundredths of day %d hold fewer than %d lengths", day, rank-before)
	}
	return h, nil
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

// middle reads the two middle lengths of an even count whose upper one is the shortest of
// hundredth upper or later, and the lower one the longest below it: each the first row of the
// series found in order of micros (ORDER BY and LIMIT rather than MIN: a scan of the key that
// stops at the first row of the series, also through a join).
func (r *reader) middle(upper int64) (a, b int64, err error) {
	from := ` FROM ` + r.s.Exact + ` WHERE ` + r.s.ExactWhere + ` AND micros `
	lowest := upper*microsPerDay/100 - microsPerDay/200 // the shortest length shown as upper hundredths
	err = r.tx.QueryRowContext(r.ctx, r.d.Rebind(`SELECT micros`+from+`>= ? ORDER BY micros LIMIT 1`),
		append(slices.Clone(r.s.ExactArgs), lowest)...).Scan(&b)
	if err != nil {
		return 0, 0, fmt.Errorf("upper middle length: %w", err)
	}
	err = r.tx.QueryRowContext(r.ctx, r.d.Rebind(`SELECT micros`+from+`< ? ORDER BY micros DESC LIMIT 1`),
		append(slices.Clone(r.s.ExactArgs), b)...).Scan(&a)
	if err != nil {
		return 0, 0, fmt.Errorf("lower middle length: %w", err)
	}
	return a, b, nil
}
