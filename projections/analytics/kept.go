package analytics

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/explain"
	"github.com/eventcrm/crm/projections/lengths"
)

// newSource is an empty source.
func newSource() source {
	return source{byPeriod: map[string]figures{}, byOwner: map[string]map[string]figures{}, medians: map[string]map[string]stats{}}
}

// keptSource reads the kept counts and lengths of copy f: the counts in one statement, the
// medians of every period in two (their day bins, then the exact lengths of the days that
// hold the middle ones).
func (r *reader) keptSource(ctx context.Context, q kpiQuestion, f filter) (source, error) {
	src := newSource()
	if err := r.figureCounts(ctx, q, f, "", src); err != nil {
		return source{}, err
	}
	medians, err := r.keptMedians(ctx, q, f, q.w.keptGrain(), q.w.to(), nil)
	if err != nil {
		return source{}, err
	}
	src.medians = medians
	return src, nil
}

// pastSource answers as of a time before the latest fact, with at most one filter: the deltas
// of copy f known before as_of's business date, the parts made or revoked on that date up to
// as_of, and the medians: of the periods ended by then, from the kept lengths and the parts
// of those periods made or revoked after as_of; of the others, from the parts of their
// lengths standing at as_of.
func (r *reader) pastSource(ctx context.Context, q kpiQuestion, f filter) (source, error) {
	src := newSource()
	if err := r.figureCounts(ctx, q, f, q.cutoff, src); err != nil {
		return source{}, err
	}
	if err := r.sameDay(ctx, q, f, src); err != nil {
		return source{}, err
	}
	ended := q.w.endedBy(q.cutoff)
	parts, err := explain.Select(ctx, r.tx, r.db.Dialect, r.t.Name(tableParts), explain.Question{Figures: []string{figCycle, figLeadToWon},
		From: ended, To: q.w.to(), AsOf: q.AsOf, Owner: q.Owner, Channel: q.Channel, Segment: q.Segment})
	if err != nil {
		return source{}, err
	}
	measures := periodLengths{}
	for _, p := range parts {
		measures.add(q.w.periodOf(p.Bucket), p.Figure, p.Measure)
	}
	measures.medians(q.w, src.medians)
	if ended == q.w.from() {
		return src, nil
	}
	fixes, err := r.lengthFixes(ctx, q, f, ended)
	if err != nil {
		return source{}, err
	}
	kept, err := r.keptMedians(ctx, q, f, q.w.grain(), ended, fixes)
	if err != nil {
		return source{}, err
	}
	for label, m := range kept {
		src.medians[label] = m
	}
	return src, nil
}

// lengthFix is what a part of a median's lengths adds to the kept lengths (count 1) or takes
// from them (-1) as of an earlier time.
type lengthFix struct {
	figure, bucket string
	micros, count  int64
}

// lengthFixes are the parts of both medians' lengths of copy f in the periods of the window
// before to that stood at as_of and are not kept (revoked since) or are kept and did not stand
// then (made after it).
func (r *reader) lengthFixes(ctx context.Context, q kpiQuestion, f filter, to string) ([]lengthFix, error) {
	asOf := q.AsOf.UnixMicro()
	where, args := `figure IN (?, ?) AND bucket >= ? AND bucket < ? AND (at > ? OR until_at > ?)`,
		[]any{figCycle, figLeadToWon, q.w.from(), to, asOf, asOf}
	if f.dim != "" {
		// The one filter: owner, channel or segment, columns of the parts of the same names.
		where += ` AND ` + f.dim + ` = ?`
		args = append(args, f.value)
	}
	rows, err := r.query(ctx, `SELECT `+explain.Columns+` FROM `+r.t.Name(tableParts)+` WHERE `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("lengths as of %s: %w", q.AsOf, err)
	}
	defer rows.Close()
	var fixes []lengthFix
	for rows.Next() {
		p, err := explain.Scan(rows)
		if err != nil {
			return nil, fmt.Errorf("lengths as of %s: %w", q.AsOf, err)
		}
		var count int64
		if p.At <= asOf && (!p.Until.Valid || p.Until.Int64 > asOf) {
			count++ // stood then
		}
		if !p.Until.Valid {
			count-- // kept
		}
		if count != 0 {
			fixes = append(fixes, lengthFix{figure: p.Figure, bucket: p.Bucket, micros: max(p.Measure, 0), count: count})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("lengths as of %s: %w", q.AsOf, err)
	}
	return fixes, nil
}

// Parts of the statement of figureCounts.
const (
	countsFigures = iota // every figure but the tasks, at the window's grain
	countsTasks          // the tasks, per due date or month of it
	countsOverdue        // the tasks open due before the cutoff in its month
	countsOwners         // the activity per owner
)

// figureCounts adds the counts of copy f in the window to src, in one statement: every figure
// but the tasks at the window's grain, the tasks per due date (the open ones overdue or not
// yet due at the cutoff), and the activity per owner (every owner's, the one owner's, or that
// of each owner of the channel or segment). From the kept counts when known is "", else as
// known before business date known: the kept counts of the periods (of each grain) ended by
// then less their late deltas known from then on, and the deltas known before then of the
// periods not ended.
func (r *reader) figureCounts(ctx context.Context, q kpiQuestion, f filter, known string, src source) error {
	table := r.t.Name(tableCounts)
	if known != "" {
		table = r.t.Name(tableDeltas)
	}
	var (
		stmts []string
		args  []any
	)
	// part adds the rows of kind read from from (a table, or owners joined with it for
	// table) where where holds, at grain.
	part := func(kind int, grain string, from func(table string) string, where string, wargs ...any) {
		read := func(table, sums, cond string, cargs ...any) {
			stmts = append(stmts, `SELECT `+strconv.Itoa(kind)+`, period, value, figure, `+sums+` FROM `+from(table)+`
			WHERE `+where+cond+` GROUP BY period, value, figure`)
			args = append(append(args, wargs...), cargs...)
		}
		const sums = "SUM(count), SUM(amount)"
		if known == "" {
			read(r.t.Name(tableCounts), sums, "")
			return
		}
		ended := endedBefore(grain, known)
		read(r.t.Name(tableCounts), sums, " AND period < ?", ended)
		read(r.t.Name(tableLate), "-SUM(count), -SUM(amount)", " AND period < ? AND known >= ?", ended, known)
		read(r.t.Name(tableDeltas), sums, " AND period >= ? AND known < ?", ended, known)
	}
	plain := func(table string) string { return table }
	// The figures and the activity of a question about now are read per week, quarter or year
	// for those periods, as of an earlier time per day or month.
	grain := q.w.grain()
	if known == "" {
		grain = q.w.keptGrain()
	}
	part(countsFigures, grain, plain, `dim = ? AND value = ? AND grain = ? AND period >= ? AND period < ? AND (figure < ? OR figure >= ?)`,
		f.dim, f.value, grain, q.w.from(), q.w.to(), "task/", upper("task/"))
	// The tasks of a window of months per month of their due date, the open ones overdue
	// before the cutoff's month and not yet due from it on, but those due in that month
	// before the cutoff (read per day): overdue.
	tasks := q.w.grain()
	part(countsTasks, tasks, plain, `dim = ? AND value = ? AND grain = ? AND period >= ? AND period < ? AND figure >= ? AND figure < ?`,
		f.dim, f.value, tasks, q.w.from(), q.w.to(), "task/", upper("task/"))
	overdueFrom, overdueTo := max(q.w.from(), endedBefore(tasks, q.cutoff)), min(q.w.to(), q.cutoff)
	if tasks == grainMonth && overdueFrom < overdueTo {
		part(countsOverdue, grainDay, plain, `dim = ? AND value = ? AND grain = ? AND period >= ? AND period < ? AND figure = ?`,
			f.dim, f.value, grainDay, overdueFrom, overdueTo, figTaskOpen)
	}
	// Every owner's activity, the one owner's, or that of each owner of a channel or segment
	// (values "<channel>\x1f<owner>": from "<channel>\x1f" to the byte after the separator).
	// The rows are keyed by owner before period: the owners are found first, one index seek
	// each (owners), and the periods of the window read for each, rather than every period
	// of every owner scanned.
	activity := []any{grain, q.w.from(), q.w.to(), figTouch, upper(figTouch), figWon, upper(figWon)}
	const activityWhere = `grain = ? AND period >= ? AND period < ? AND ((figure >= ? AND figure < ?) OR (figure >= ? AND figure < ?))`
	with, cut := "", ""
	var withArgs []any
	switch f.dim {
	case "owner":
		part(countsOwners, grain, plain, `dim = ? AND value = ? AND `+activityWhere, append([]any{"owner", f.value}, activity...)...)
	default:
		dim, lo, hi := "owner", "", ""
		if f.dim != "" {
			dim, cut = f.dim+ownerSuffix, f.value+ownerSeparator
			lo, hi = cut, f.value+"\x20"
		}
		below, belowArgs := "", []any{}
		if hi != "" {
			below, belowArgs = ` AND value < ?`, []any{hi}
		}
		with = `WITH RECURSIVE owners(v) AS (
			SELECT MIN(value) FROM ` + table + ` WHERE dim = ? AND value >= ?` + below + `
			UNION ALL
			SELECT (SELECT MIN(value) FROM ` + table + ` WHERE dim = ? AND value > owners.v` + below + `) FROM owners WHERE owners.v IS NOT NULL)
		`
		withArgs = append(append(append([]any{dim, lo}, belowArgs...), dim), belowArgs...)
		// SQLite reads the rows of each owner in turn (a nested loop by the key); PostgreSQL,
		// given a join, would rather scan the table for a hash join: it is given the owners
		// as an array of key values instead.
		owned := func(table string) string { return `owners JOIN ` + table + ` ON dim = ? AND value = owners.v` }
		where := activityWhere
		if r.db.Dialect == projections.Postgres {
			owned, where = plain, `dim = ? AND value = ANY(ARRAY(SELECT v FROM owners WHERE v IS NOT NULL)) AND `+activityWhere
		}
		part(countsOwners, grain, owned, where, append([]any{dim}, activity...)...)
	}
	rows, err := r.query(ctx, with+strings.Join(stmts, "\nUNION ALL\n"), append(withArgs, args...)...)
	if err != nil {
		return fmt.Errorf("counts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			kind                  int
			bucket, value, figure string
			count, amount         int64
		)
		if err := rows.Scan(&kind, &bucket, &value, &figure, &count, &amount); err != nil {
			return fmt.Errorf("counts: %w", err)
		}
		if count == 0 && amount == 0 {
			continue
		}
		label := q.w.periodOf(bucket)
		if kind == countsOwners {
			addOwner(src.byOwner, label, strings.TrimPrefix(value, cut), figure, count, amount)
			continue
		}
		if src.byPeriod[label] == nil {
			src.byPeriod[label] = figures{}
		}
		switch {
		case kind == countsTasks && figure == figTaskOpen:
			figure = openState(bucket, endedBefore(tasks, q.cutoff))
		case kind == countsOverdue:
			// Counted not yet due with their month: overdue.
			src.byPeriod[label].add(openState(q.cutoff, q.cutoff), -count, -amount)
			figure = openState(bucket, q.cutoff)
		}
		src.byPeriod[label].add(figure, count, amount)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("counts: %w", err)
	}
	return nil
}

// sameDay adds to src what the parts of copy f made or revoked on as_of's business date, up to
// as_of, add to the deltas known before it: a part made then counts, one revoked then (or made
// and revoked) does not. A part revoked before it was made never stood; its deltas cancel out
// on the date it was made.
func (r *reader) sameDay(ctx context.Context, q kpiQuestion, f filter, src source) error {
	start, asOf := startOf(q.cutoff, q.Zone), q.AsOf.UnixMicro()
	where, args := `bucket >= ? AND bucket < ?`, []any{q.w.from(), q.w.to()}
	if f.dim != "" {
		// The one filter: owner, channel or segment, columns of the parts of the same names.
		where += ` AND ` + f.dim + ` = ?`
		args = append(args, f.value)
	}
	parts := r.t.Name(tableParts)
	stmt := `SELECT ` + explain.Columns + ` FROM ` + parts + ` WHERE at >= ? AND at <= ? AND ` + where + `
		UNION ALL
		SELECT ` + explain.Columns + ` FROM ` + parts + ` WHERE until_at >= ? AND until_at <= ? AND at < ? AND ` + where
	all := append(append([]any{start, asOf}, args...), append([]any{start, asOf, start}, args...)...)
	rows, err := r.query(ctx, stmt, all...)
	if err != nil {
		return fmt.Errorf("parts of %s: %w", q.cutoff, err)
	}
	defer rows.Close()
	for rows.Next() {
		p, err := explain.Scan(rows)
		if err != nil {
			return fmt.Errorf("parts of %s: %w", q.cutoff, err)
		}
		if p.Figure == figForecast || strings.HasPrefix(p.Figure, figNPS) {
			continue
		}
		var sign int64
		if p.At >= start && p.At <= asOf {
			sign++
		}
		if p.Until.Valid {
			if until := max(p.Until.Int64, p.At); until >= start && until <= asOf {
				sign--
			}
		}
		if sign == 0 {
			continue
		}
		label := q.w.periodOf(p.Bucket)
		figure := p.Figure
		if figure == figTaskOpen {
			figure = openState(p.Bucket, q.cutoff)
		}
		if src.byPeriod[label] == nil {
			src.byPeriod[label] = figures{}
		}
		src.byPeriod[label].add(figure, sign*p.Count, sign*p.Amount)
		// The activity per owner is kept for the parts with an owner, and per channel or
		// segment and owner for those with that channel or segment (see dims).
		if activity(p.Figure) && (p.Owner != "" || f.dim == "channel" || f.dim == "segment") {
			addOwner(src.byOwner, label, p.Owner, p.Figure, sign*p.Count, sign*p.Amount)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("parts of %s: %w", q.cutoff, err)
	}
	return nil
}

// coarseBins is the number of day bins of a coarse bin: the fold counts each length in its
// day bin and in its coarse bin, so that a median is found in the coarse bins first, then in
// the day bins of one coarse bin.
const coarseBins = 10

// lengthSeries are the lengths of one figure in one period of the window.
type lengthSeries struct{ label, figure string }

// lengthBin is a bin of a series.
type lengthBin struct {
	lengthSeries
	bin int64
}

// binCounts are counts per bin of each series.
type binCounts map[lengthSeries]map[int64]int64

func (b binCounts) add(s lengthSeries, bin, count int64) {
	if b[s] == nil {
		b[s] = map[int64]int64{}
	}
	b[s][bin] += count
}

// locate is the bin of bins holding the rank-th shortest length (1-based), and its rank within
// the bin.
func locate(bins map[int64]int64, rank int64) (bin, within int64) {
	order := make([]int64, 0, len(bins))
	for b, c := range bins {
		if c != 0 {
			order = append(order, b)
		}
	}
	slices.Sort(order)
	var before int64
	for _, b := range order {
		if rank <= before+bins[b] {
			return b, rank - before
		}
		before += bins[b]
	}
	if len(order) == 0 {
		return 0, rank // none: the exact lengths will hold too few
	}
	return order[len(order)-1], rank - before
}

// middleRank is a middle rank of a series: the bin it is in, and its rank within the bin.
type middleRank struct {
	at   lengthBin
	rank int64
}

// keptMedians reads the medians of both lengths of copy f in every period of the window before
// to, the kept lengths of grain with fixes, in three statements: the coarse bins of those periods, the
// day bins of each coarse bin holding a middle length, then the exact lengths of each day
// holding one.
func (r *reader) keptMedians(ctx context.Context, q kpiQuestion, f filter, grain, to string, fixes []lengthFix) (map[string]map[string]stats, error) {
	coarse := binCounts{}
	rows, err := r.query(ctx, `SELECT figure, period, bin, count FROM `+r.t.Name(tableBins)+`
		WHERE figure IN (?, ?) AND dim = ? AND value = ? AND grain = ? AND width = ? AND period >= ? AND period < ?`,
		figCycle, figLeadToWon, f.dim, f.value, grain, lengths.Day*coarseBins, q.w.from(), to)
	if err != nil {
		return nil, fmt.Errorf("lengths: %w", err)
	}
	for rows.Next() {
		var (
			figure, bucket string
			bin, count     int64
		)
		if err := rows.Scan(&figure, &bucket, &bin, &count); err != nil {
			rows.Close()
			return nil, fmt.Errorf("lengths: %w", err)
		}
		coarse.add(lengthSeries{q.w.periodOf(bucket), figure}, bin, count)
	}
	if err := closeRows(rows); err != nil {
		return nil, fmt.Errorf("lengths: %w", err)
	}
	dayOf := func(fix lengthFix) lengthBin {
		return lengthBin{lengthSeries{q.w.periodOf(fix.bucket), fix.figure}, lengths.Bins(fix.micros)[0].Bin}
	}
	for _, fix := range fixes {
		d := dayOf(fix)
		coarse.add(d.lengthSeries, d.bin/coarseBins, fix.count)
	}
	// The lower and upper middle ranks of each series, in their coarse bins.
	type middle struct {
		n            int64
		lower, upper middleRank
	}
	middles := map[lengthSeries]*middle{}
	var coarseNeeds []lengthBin
	coarseNeeded := map[lengthBin]bool{}
	for s, bins := range coarse {
		var n int64
		for _, c := range bins {
			n += c
		}
		if n <= 0 {
			continue
		}
		m := &middle{n: n}
		upper, within := locate(bins, n/2+1)
		m.upper = middleRank{lengthBin{s, upper}, within}
		m.lower = m.upper
		if n%2 == 0 {
			lower, within := locate(bins, n/2)
			m.lower = middleRank{lengthBin{s, lower}, within}
		}
		middles[s] = m
		for _, b := range []lengthBin{m.lower.at, m.upper.at} {
			if !coarseNeeded[b] {
				coarseNeeded[b] = true
				coarseNeeds = append(coarseNeeds, b)
			}
		}
	}
	// The day bins of each coarse bin holding a middle rank, then the day and rank within it.
	byCoarse := map[lengthBin]map[int64]int64{}
	err = r.numbered(ctx, len(coarseNeeds), func(i int) (string, []any) {
		b := coarseNeeds[i]
		from, to, _ := q.w.span(b.label)
		return `bin, count FROM ` + r.t.Name(tableBins) + `
				WHERE figure = ? AND dim = ? AND value = ? AND grain = ? AND width = ? AND period >= ? AND period < ? AND bin >= ? AND bin < ?`,
			[]any{b.figure, f.dim, f.value, grain, lengths.Day, from, to, b.bin * coarseBins, (b.bin + 1) * coarseBins}
	}, func(i int, bin, count int64) {
		if byCoarse[coarseNeeds[i]] == nil {
			byCoarse[coarseNeeds[i]] = map[int64]int64{}
		}
		byCoarse[coarseNeeds[i]][bin] += count
	})
	if err != nil {
		return nil, fmt.Errorf("lengths: %w", err)
	}
	for _, fix := range fixes {
		d := dayOf(fix)
		if c := (lengthBin{d.lengthSeries, d.bin / coarseBins}); coarseNeeded[c] {
			if byCoarse[c] == nil {
				byCoarse[c] = map[int64]int64{}
			}
			byCoarse[c][d.bin] += fix.count
		}
	}
	var dayNeeds []lengthBin
	dayNeeded := map[lengthBin]bool{}
	inDay := func(m middleRank) middleRank {
		day, within := locate(byCoarse[m.at], m.rank)
		d := middleRank{lengthBin{m.at.lengthSeries, day}, within}
		if !dayNeeded[d.at] {
			dayNeeded[d.at] = true
			dayNeeds = append(dayNeeds, d.at)
		}
		return d
	}
	for _, m := range middles {
		m.lower, m.upper = inDay(m.lower), inDay(m.upper)
	}
	// The exact lengths of each day holding a middle rank.
	exact := map[lengthBin][]lengthCount{}
	err = r.numbered(ctx, len(dayNeeds), func(i int) (string, []any) {
		d := dayNeeds[i]
		from, to, _ := q.w.span(d.label)
		lo, hi := lengths.DaySpan(d.bin)
		return `micros, count FROM ` + r.t.Name(tableExact) + `
				WHERE figure = ? AND dim = ? AND value = ? AND grain = ? AND period >= ? AND period < ? AND micros >= ? AND micros < ? AND count > 0`,
			[]any{d.figure, f.dim, f.value, grain, from, to, lo, hi}
	}, func(i int, micros, count int64) {
		exact[dayNeeds[i]] = append(exact[dayNeeds[i]], lengthCount{micros, count})
	})
	if err != nil {
		return nil, fmt.Errorf("exact lengths: %w", err)
	}
	for _, fix := range fixes {
		if d := dayOf(fix); dayNeeded[d] {
			exact[d] = append(exact[d], lengthCount{fix.micros, fix.count})
		}
	}
	for d, ls := range exact {
		exact[d] = sumLengths(ls)
	}
	out := map[string]map[string]stats{}
	for _, label := range q.w.labels() {
		if label >= to {
			break
		}
		out[label] = map[string]stats{}
		for _, figure := range []string{figCycle, figLeadToWon} {
			m, ok := middles[lengthSeries{label, figure}]
			if !ok {
				out[label][figure] = stats{}
				continue
			}
			lower, okLower := nthLength(exact[m.lower.at], m.lower.rank)
			upper, okUpper := nthLength(exact[m.upper.at], m.upper.rank)
			if !okLower || !okUpper {
				return nil, fmt.Errorf("the exact %s lengths of %s hold fewer than their day bins", figure, label)
			}
			out[label][figure] = middleMedian(int(m.n), lower, upper)
		}
	}
	return out, nil
}

// numbered runs the n statements stmt gives, each selecting two integers, as one statement,
// and hands each row to add with the number of its statement.
func (r *reader) numbered(ctx context.Context, n int, stmt func(i int) (string, []any), add func(i int, a, b int64)) error {
	if n == 0 {
		return nil
	}
	var (
		stmts []string
		args  []any
	)
	for i := range n {
		s, a := stmt(i)
		stmts = append(stmts, `SELECT `+strconv.Itoa(i)+`, `+s)
		args = append(args, a...)
	}
	rows, err := r.query(ctx, strings.Join(stmts, "\nUNION ALL\n"), args...)
	if err != nil {
		return err
	}
	for rows.Next() {
		var (
			i    int
			a, b int64
		)
		if err := rows.Scan(&i, &a, &b); err != nil {
			rows.Close()
			return err
		}
		add(i, a, b)
	}
	return closeRows(rows)
}

// lengthCount is a count of lengths of one exact length.
type lengthCount struct{ micros, count int64 }

// sumLengths is the counts of ls summed per length, in order of length, those above 0.
func sumLengths(ls []lengthCount) []lengthCount {
	slices.SortFunc(ls, func(a, b lengthCount) int { return cmp.Compare(a.micros, b.micros) })
	var out []lengthCount
	for _, l := range ls {
		if n := len(out); n > 0 && out[n-1].micros == l.micros {
			out[n-1].count += l.count
			continue
		}
		out = append(out, l)
	}
	return slices.DeleteFunc(out, func(l lengthCount) bool { return l.count <= 0 })
}

// nthLength is the nth shortest (1-based) of lengths in order.
func nthLength(ls []lengthCount, n int64) (int64, bool) {
	for _, l := range ls {
		if n -= l.count; n <= 0 && l.count > 0 {
			return l.micros, true
		}
	}
	return 0, false
}

// startOf is the first instant of business date d in zone, in microseconds.
func startOf(d string, zone *time.Location) int64 {
	start, _ := dateSpan(domain.Date(d), zone)
	return start.UnixMicro()
}
