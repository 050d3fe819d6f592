package journey

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/eventcrm/crm/projections"
)

// keptDim is the dim of the kept map that answers the question's cohort: every contact, or
// one filter alone. ok is false for two filters or more (their rows are not kept).
func (p Params) keptDim() (d dimValue, ok bool) {
	var dims []dimValue
	for _, f := range []dimValue{{dimCohort, p.Cohort}, {dimChannel, p.Channel}, {dimOwner, p.Owner}, {dimSegment, p.Segment}} {
		if f.value != "" {
			dims = append(dims, f)
		}
	}
	switch len(dims) {
	case 0:
		return dimValue{dimAll, ""}, true
	case 1:
		return dims[0], true
	}
	return dimValue{}, false
}

// queryKept answers from the kept map of d, in one read transaction, when the question is
// about now: no as_of, or one at or after the horizon (every time in the tables is then at or
// before it). now is false otherwise.
func queryKept(ctx context.Context, db *projections.DB, t projections.Tables, params Params, d dimValue) (answer Answer, now bool, err error) {
	err = readOnly(ctx, db, func(tx *sql.Tx) error {
		k := keptReader{tx: tx, d: db.Dialect, t: t, dv: d}
		if now, err = k.isNow(ctx, asOfMicros(params.AsOf)); err != nil || !now {
			return err
		}
		mix, err := k.mix(ctx)
		if err != nil {
			return err
		}
		answer = Answer{AsOf: asOfPtr(params.AsOf), Cohort: params.Cohort, Channel: params.Channel, Owner: params.Owner,
			Segment: params.Segment}
		if answer.ByPhase, err = k.mapOf(ctx, groupingPhase, byPhase(), mix); err != nil {
			return err
		}
		if params.ByStage {
			m, err := k.mapOf(ctx, groupingStage, byStage(), mix)
			if err != nil {
				return err
			}
			answer.ByStage = &m
		}
		return nil
	})
	return answer, now, err
}

// keptReader reads the kept map of one dim and value.
type keptReader struct {
	tx *sql.Tx
	d  projections.Dialect
	t  projections.Tables
	dv dimValue
}

func (k *keptReader) query(ctx context.Context, stmt string, args ...any) (*sql.Rows, error) {
	return k.tx.QueryContext(ctx, k.d.Rebind(stmt), args...)
}

func (k *keptReader) isNow(ctx context.Context, asOf int64) (bool, error) {
	var horizon int64
	err := k.tx.QueryRowContext(ctx, `SELECT at FROM `+k.t.Name(tableHorizon)+` WHERE id = 1`).Scan(&horizon)
	if errors.Is(err, sql.ErrNoRows) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("horizon of the journey map: %w", err)
	}
	return asOf >= horizon, nil
}

// mapOf reads the map of grouping g: its steps with the lengths of their stays, and its moves.
func (k *keptReader) mapOf(ctx context.Context, grouping string, g grouping, mix []mixRow) (Map, error) {
	entered, advanced, closed := map[string]int{}, map[string]int{}, map[string]int64{}
	err := k.each(ctx, `SELECT step, entered, advanced, closed FROM `+k.t.Name(tableSteps)+`
		WHERE dim = ? AND value = ? AND grouping = ?`, []any{k.dv.dim, k.dv.value, grouping}, func(rows *sql.Rows) error {
		var (
			step string
			e, a int
			c    int64
		)
		err := rows.Scan(&step, &e, &a, &c)
		entered[step], advanced[step], closed[step] = e, a, c
		return err
	})
	if err != nil {
		return Map{}, fmt.Errorf("steps: %w", err)
	}
	stats := map[string]durationStats{}
	for _, s := range g.steps {
		if closed[s] == 0 {
			continue
		}
		if stats[s], err = k.stats(ctx, grouping, s, closed[s]); err != nil {
			return Map{}, fmt.Errorf("stays in %s: %w", s, err)
		}
	}
	transitions := map[[2]string]int{}
	err = k.each(ctx, `SELECT from_step, to_step, count FROM `+k.t.Name(tableMoves)+`
		WHERE dim = ? AND value = ? AND grouping = ?`, []any{k.dv.dim, k.dv.value, grouping}, func(rows *sql.Rows) error {
		var (
			from, to string
			n        int
		)
		err := rows.Scan(&from, &to, &n)
		transitions[[2]string{from, to}] = n
		return err
	})
	if err != nil {
		return Map{}, fmt.Errorf("moves: %w", err)
	}
	return mapOf(g, entered, advanced, stats, transitions, mix), nil
}

func (k *keptReader) mix(ctx context.Context) ([]mixRow, error) {
	var mix []mixRow
	err := k.each(ctx, `SELECT phase, kind, count FROM `+k.t.Name(tableMix)+` WHERE dim = ? AND value = ?`,
		[]any{k.dv.dim, k.dv.value}, func(rows *sql.Rows) error {
			var r mixRow
			err := rows.Scan(&r.phase, &r.kind, &r.count)
			mix = append(mix, r)
			return err
		})
	if err != nil {
		return nil, fmt.Errorf("touchpoint mix: %w", err)
	}
	return mix, nil
}

// stats measures the n closed stays of a step as statsOf does, from the bins: the day bins
// find the day of each rank asked for, the hundredth bins of that day the hundredth, which is
// the answer (p75, and the median of an odd count). The median of an even count is the
// mean of two stays: when they are in different hundredths, their exact lengths are read
// (the longest below the second, the shortest from its hundredth on).
func (k *keptReader) stats(ctx context.Context, grouping, step string, n int64) (durationStats, error) {
	p75Rank := int64(nearestRank(int(n), 75))
	ranks := []int64{n/2 + 1, p75Rank} // the middle (odd n) or upper middle, and p75
	if n%2 == 0 {
		ranks = append(ranks, n/2)
	}
	slices.Sort(ranks)
	ranks = slices.Compact(ranks)
	h, err := k.hundredthsAt(ctx, grouping, step, ranks)
	if err != nil {
		return durationStats{}, err
	}
	median := float64(h[n/2+1]) / 100
	if n%2 == 0 && h[n/2] != h[n/2+1] {
		a, b, err := k.middle(ctx, grouping, step, h[n/2+1])
		if err != nil {
			return durationStats{}, err
		}
		median = float64(((a+b)*100+microsPerDay)/(2*microsPerDay)) / 100
	} else if n%2 == 0 {
		median = float64(h[n/2]) / 100 // both in one hundredth: their mean rounds to it
	}
	p75 := float64(h[p75Rank]) / 100
	return durationStats{count: int(n), median: &median, p75: &p75}, nil
}

// hundredthsAt finds the hundredth of a day holding each rank (1-based, by length).
func (k *keptReader) hundredthsAt(ctx context.Context, grouping, step string, ranks []int64) (map[int64]int64, error) {
	key := []any{k.dv.dim, k.dv.value, grouping, step}
	from := ` FROM ` + k.t.Name(tableStayBins) + ` WHERE dim = ? AND value = ? AND grouping = ? AND step = ? AND width = ?`
	days, err := k.locate(ctx, `SELECT bin, count`+from+` ORDER BY bin`, append(key, int64(binDay)), ranks)
	if err != nil {
		return nil, err
	}
	out := map[int64]int64{}
	for _, r := range ranks {
		day := days[r]
		inDay, err := k.locate(ctx, `SELECT bin, count`+from+` AND bin >= ? AND bin < ? ORDER BY bin`,
			append(slices.Clone(key), int64(binHundredth), day.bin*binDay, (day.bin+1)*binDay), []int64{r - day.before})
		if err != nil {
			return nil, err
		}
		out[r] = inDay[r-day.before].bin
	}
	return out, nil
}

// located is the bin holding a rank, and how many stays come before the bin.
type located struct{ bin, before int64 }

// locate reads (bin, count) rows in bin order and finds the bin of each rank.
func (k *keptReader) locate(ctx context.Context, stmt string, args []any, ranks []int64) (map[int64]located, error) {
	out := map[int64]located{}
	var seen int64
	err := k.each(ctx, stmt, args, func(rows *sql.Rows) error {
		var bin, count int64
		if err := rows.Scan(&bin, &count); err != nil {
			return err
		}
		for _, r := range ranks {
			if _, done := out[r]; !done && r <= seen+count {
				out[r] = located{bin: bin, before: seen}
			}
		}
		seen += count
		return nil
	})
	if err == nil && len(out) < len(ranks) {
		err = fmt.Errorf("the bins hold %d stays, fewer than rank %d", seen, slices.Max(ranks))
	}
	return out, err
}

// middle reads the two middle stays of an even count whose upper one is the shortest stay of
// hundredth upper or later, and the lower one the longest stay below it.
func (k *keptReader) middle(ctx context.Context, grouping, step string, upper int64) (a, b int64, err error) {
	from := ` FROM ` + k.t.Name(tableStays) + ` WHERE dim = ? AND value = ? AND grouping = ? AND step = ? AND micros `
	key := []any{k.dv.dim, k.dv.value, grouping, step}
	lowest := upper*microsPerDay/100 - microsPerDay/200 // the shortest length shown as upper hundredths
	if err = k.tx.QueryRowContext(ctx, k.d.Rebind(`SELECT MIN(micros)`+from+`>= ?`), append(slices.Clone(key), lowest)...).Scan(&b); err != nil {
		return 0, 0, fmt.Errorf("upper middle stay: %w", err)
	}
	if err = k.tx.QueryRowContext(ctx, k.d.Rebind(`SELECT MAX(micros)`+from+`< ?`), append(key, b)...).Scan(&a); err != nil {
		return 0, 0, fmt.Errorf("lower middle stay: %w", err)
	}
	return a, b, nil
}

// each runs a query and calls scan for each row.
func (k *keptReader) each(ctx context.Context, stmt string, args []any, scan func(*sql.Rows) error) error {
	rows, err := k.query(ctx, stmt, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}
