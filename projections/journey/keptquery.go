package journey

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/horizon"
	"github.com/eventcrm/crm/projections/lengths"
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
	err = db.ReadOnly(ctx, func(tx *sql.Tx) error {
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
	return horizon.Covers(ctx, k.tx, k.t, asOf)
}

// mapOf reads the map of grouping g: its steps with the lengths of their stays, and its moves.
func (k *keptReader) mapOf(ctx context.Context, grouping string, g grouping, mix []mixRow) (Map, error) {
	entered, advanced, closed := map[string]int{}, map[string]int{}, map[string]int64{}
	err := k.each(ctx, `SELECT step, entered, advanced, closed FROM `+k.t.Name(tableSteps)+`
		WHERE dim = ? AND value = ? AND grouping = ? AND (entered <> 0 OR advanced <> 0 OR closed <> 0)`,
		[]any{k.dv.dim, k.dv.value, grouping}, func(rows *sql.Rows) error {
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
		if stats[s], err = k.stats(ctx, grouping, s); err != nil {
			return Map{}, fmt.Errorf("stays in %s: %w", s, err)
		}
	}
	transitions := map[[2]string]int{}
	err = k.each(ctx, `SELECT from_step, to_step, count FROM `+k.t.Name(tableMoves)+`
		WHERE dim = ? AND value = ? AND grouping = ? AND count <> 0`, []any{k.dv.dim, k.dv.value, grouping}, func(rows *sql.Rows) error {
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
	err := k.each(ctx, `SELECT phase, kind, count FROM `+k.t.Name(tableMix)+` WHERE dim = ? AND value = ? AND count <> 0`,
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

// stats measures the closed stays of a step as statsOf does, from their lengths kept in bins.
func (k *keptReader) stats(ctx context.Context, grouping, step string) (durationStats, error) {
	s := lengths.Series{Bins: k.t.Name(tableStayBins), Where: `dim = ? AND value = ? AND grouping = ? AND step = ? AND count <> 0`,
		Args:  []any{k.dv.dim, k.dv.value, grouping, step},
		Exact: k.t.Name(tableStays) + ` s`, ExactWhere: `s.grouping = ? AND s.step = ?`, ExactArgs: []any{grouping, step}}
	if k.dv.dim != dimAll {
		// dim is one of the contacts' columns: the stays of its value's contacts
		s.Exact += ` JOIN ` + k.t.Name(tableContacts) + ` c ON c.contact_id = s.contact_id`
		s.ExactWhere += ` AND c.` + k.dv.dim + ` = ?`
		s.ExactArgs = append(s.ExactArgs, k.dv.value)
	}
	st, err := lengths.Read(ctx, k.tx, k.d, s)
	return durationStats{count: st.Count, median: st.Median, p75: st.P75}, err
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
