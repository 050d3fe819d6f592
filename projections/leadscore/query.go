package leadscore

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/leadscore"
	"github.com/eventcrm/crm/domain/settings"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/paging"
)

// Page sizes of the hot list.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// LeadParams is the question asked of the hot list.
type LeadParams struct {
	// AsOf is the business time of the question (required): touchpoints that occurred after
	// it do not count, and every touchpoint has decayed to it.
	AsOf time.Time
	// MinScore keeps the contacts whose score at as_of is at least it; nil: the hot
	// threshold.
	MinScore *float64
	// Owner keeps one owner's contacts.
	Owner string
	// Sort is "score" (the default: highest first, then contact id).
	Sort string
	// Limit is the page size: DefaultLimit when 0, at most MaxLimit.
	Limit int
}

// Leads is the hot list.
type Leads struct {
	AsOf         time.Time `json:"as_of"`
	MinScore     float64   `json:"min_score"`
	HotThreshold float64   `json:"hot_threshold"`
	HalfLifeDays float64   `json:"half_life_days"`
	// Total is how many contacts score at least min_score; Leads is the first page of them.
	Total int    `json:"total"`
	Leads []Lead `json:"leads"`
}

// Lead is one contact of the hot list.
type Lead struct {
	ContactID       string  `json:"contact_id"`
	Owner           string  `json:"owner"`
	Score           float64 `json:"score"`
	AttributePoints int64   `json:"attribute_points"`
	Touchpoints     int     `json:"touchpoints"`
	// LastTouchpointAt is the latest touchpoint at or before as_of.
	LastTouchpointAt *time.Time `json:"last_touchpoint_at,omitempty"`
	// HotSince is when the contact last became hot (a touchpoint took it over the threshold).
	HotSince *time.Time `json:"hot_since,omitempty"`
}

type candidate struct {
	row   scoreRow
	score float64
	// exact: score was computed from the touchpoints (tps), not from the kept level.
	exact bool
	tps   []leadscore.Touchpoint
}

// QueryLeads answers the hot list from the tables of set t.
//
// A question about now (no touchpoint after as_of) counts the contacts found in the index
// (per band, the range of levels clearly above min_score) and reads only the page and the
// contacts within a millionth of min_score, which are scored exactly from their touchpoints,
// as the page answered is. An earlier as_of does the same over the steps in force at as_of
// (each contact's level of the touchpoints that occurred by then); in a band whose
// attribute points alone come within a millionth of min_score, it scores every contact of
// the band from its touchpoints.
func QueryLeads(ctx context.Context, db *projections.DB, t projections.Tables, params LeadParams) (Leads, error) {
	return queryLeads(ctx, db, t, params, true)
}

// queryLeads answers as QueryLeads does; without counted, a question about now reads every
// contact found, as an earlier as_of does (what the counted answer must equal).
func queryLeads(ctx context.Context, db *projections.DB, t projections.Tables, params LeadParams, counted bool) (Leads, error) {
	if params.AsOf.IsZero() {
		return Leads{}, domain.Invalid("as_of", "is required")
	}
	limit, err := paging.Limit(params.Limit, DefaultLimit, MaxLimit)
	if err != nil {
		return Leads{}, err
	}
	if params.Sort != "" && params.Sort != "score" {
		return Leads{}, domain.Invalid("sort", "%q is not score", params.Sort)
	}
	if params.MinScore != nil && (math.IsNaN(*params.MinScore) || math.IsInf(*params.MinScore, 0)) {
		return Leads{}, domain.Invalid("min_score", "is not a number")
	}
	asOf := params.AsOf.UTC()
	var answer Leads
	err = db.ReadOnly(ctx, func(tx *sql.Tx) error {
		q := &leadQuery{ctx: ctx, db: db, tx: tx, t: t, asOf: asOf}
		ls, err := readScoring(ctx, db, tx, t)
		if err != nil {
			return err
		}
		q.ls = ls
		minScore := ls.HotThreshold
		if params.MinScore != nil {
			minScore = *params.MinScore
		}
		answer = Leads{AsOf: asOf, MinScore: minScore, HotThreshold: ls.HotThreshold, HalfLifeDays: ls.HalfLifeDays, Leads: []Lead{}}
		if err := q.judge(); err != nil {
			return err
		}
		var (
			found []candidate
			total int
		)
		switch {
		case q.now && counted:
			found, total, err = q.top(minScore, params.Owner, limit)
		case counted:
			found, total, err = q.topThen(minScore, params.Owner, limit)
		default:
			found, err = q.find(minScore, params.Owner)
			total = len(found)
		}
		if err != nil {
			return err
		}
		slices.SortFunc(found, byScore)
		answer.Total = total
		page := found[:min(limit, len(found))]
		if err := q.exact(page); err != nil {
			return err
		}
		slices.SortFunc(page, byScore)
		for _, c := range page {
			answer.Leads = append(answer.Leads, c.lead(asOf))
		}
		return nil
	})
	if err != nil {
		return Leads{}, err
	}
	return answer, nil
}

func byScore(a, b candidate) int {
	return cmp.Or(cmp.Compare(b.score, a.score), cmp.Compare(a.row.contactID, b.row.contactID))
}

// leadQuery runs the statements of one hot list in one read transaction.
type leadQuery struct {
	ctx  context.Context
	db   *projections.DB
	tx   *sql.Tx
	t    projections.Tables
	asOf time.Time
	ls   settings.LeadScoring
	// now: no touchpoint occurred after as_of, so the kept level is the level at as_of.
	now bool
}

func (q *leadQuery) judge() error {
	var latest sql.NullInt64
	if err := q.tx.QueryRowContext(q.ctx, `SELECT MAX(last_touch_at) FROM `+q.t.Name(tableScores)).Scan(&latest); err != nil {
		return fmt.Errorf("latest touchpoint: %w", err)
	}
	q.now = !latest.Valid || q.asOf.UnixMicro() >= latest.Int64
	return nil
}

// top answers a question about now without reading every contact found: per band, it counts
// the contacts clearly above minScore in the index, reads the few near it (within the margin,
// scored exactly) and the first limit by level; total is how many score at least minScore.
// The contacts are judged as find judges them.
func (q *leadQuery) top(minScore float64, owner string, limit int) ([]candidate, int, error) {
	bands, err := readBands(q.ctx, q.db, q.tx, q.t)
	if err != nil {
		return nil, 0, err
	}
	margin := 1e-6 * max(1, math.Abs(minScore))
	var (
		found []candidate
		total int
	)
	for _, a := range bands {
		where, args := q.band(a, owner)
		floor, clear, ok := q.levels(a, minScore, margin)
		if !ok {
			continue
		}
		// Above clear, a contact's score from its level is beyond the margin: no exact score
		// can take it under minScore. clear nil: every contact of the band is above.
		cond, condArgs := levelsAbove(clear)
		aboveWhere, aboveArgs := where+cond, append(slices.Clone(args), condArgs...)
		var above int
		err := q.tx.QueryRowContext(q.ctx, q.db.Dialect.Rebind(`SELECT COUNT(*) FROM `+q.t.Name(tableScores)+` WHERE `+aboveWhere),
			aboveArgs...).Scan(&above)
		if err != nil {
			return nil, 0, fmt.Errorf("lead scores: %w", err)
		}
		total += above
		if clear != nil {
			near, err := q.rows(where+` AND level >= ? AND level <= ?`, append(slices.Clone(args), floor, *clear)...)
			if err != nil {
				return nil, 0, err
			}
			kept, err := q.judged(near, minScore, margin)
			if err != nil {
				return nil, 0, err
			}
			total += len(kept)
			found = append(found, kept...)
		}
		best, err := q.first(aboveWhere, aboveArgs, limit)
		if err != nil {
			return nil, 0, err
		}
		found = append(found, best...)
	}
	return found, total, nil
}

// first reads the limit contacts of highest level that match where (all clearly above
// minScore), and every other one of the same level as the last of them (see firstOfLevel).
func (q *leadQuery) first(where string, args []any, limit int) ([]candidate, error) {
	rows, err := firstOfLevel(q.rows, where, args, limit)
	if err != nil {
		return nil, err
	}
	return scored(q, rows), nil
}

// firstOfLevel reads, with read, the limit rows of highest level that match where, and every
// other one of the same level as the last of them, so that the page is the same whatever
// order the index keeps ties in.
func firstOfLevel[R leveled](read func(where string, args ...any) ([]R, error), where string, args []any, limit int) ([]R, error) {
	rows, err := read(where+` ORDER BY level DESC LIMIT ?`, append(slices.Clone(args), limit)...)
	if err != nil || len(rows) < limit {
		return rows, err
	}
	_, last := rows[len(rows)-1].contactLevel()
	ties, err := read(where+` AND level = ?`, append(slices.Clone(args), last)...)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, r := range rows {
		id, _ := r.contactLevel()
		seen[id] = true
	}
	for _, r := range ties {
		if id, _ := r.contactLevel(); !seen[id] {
			rows = append(rows, r)
		}
	}
	return rows, nil
}

// leveled is a row of a contact at a level: a score or a step.
type leveled interface {
	contactLevel() (contactID string, level int64)
}

func (r scoreRow) contactLevel() (string, int64) { return r.contactID, r.level }

func (r stepRow) contactLevel() (string, int64) { return r.contactID, r.level }

// scored are rows with their scores from their levels.
func scored(q *leadQuery, rows []scoreRow) []candidate {
	out := make([]candidate, len(rows))
	for i, r := range rows {
		out[i] = candidate{row: r, score: q.fromLevel(r)}
	}
	return out
}

// fromLevel is a row's score at as_of from its kept level and attribute points.
func (q *leadQuery) fromLevel(r scoreRow) float64 {
	if r.level == noLevel {
		return float64(r.attr)
	}
	return float64(r.attr) + leadscore.Decaying(float64(r.level)/levelScale, q.asOf, q.ls.HalfLifeDays)
}

// band is the condition of the contacts with attribute points a (and of owner, when set):
// one range of the index (attr, level) or (owner, attr, level).
func (q *leadQuery) band(a int64, owner string) (string, []any) {
	if owner != "" {
		return `owner = ? AND attr = ?`, []any{owner, a}
	}
	return `attr = ?`, []any{a}
}

// levelsAbove is the condition of the levels above clear (every level, noLevel too, when
// clear is nil).
func levelsAbove(clear *int64) (string, []any) {
	if clear == nil {
		return levelsFrom(math.MinInt64)
	}
	return levelsFrom(*clear + 1) // clear is at most math.MaxInt64/2
}

// levelsFrom is the condition of the levels at or above lowest, written as a range bounded
// on both sides. The statements are planned once for any arguments on PostgreSQL (decision
// 36), where a bound on one side is taken to keep a third of a band's rows and no bound all of
// them: such a plan counts the contacts above a threshold, and orders them for the page, by
// reading the whole table (and sorting what it found). A range bounded on both sides is taken
// to keep a few rows, and is read in the band's index, in the page's order: what the hot list
// reads, the top of a band and the few contacts near the threshold, and also right when a
// range holds the whole band (an index read to its end).
func levelsFrom(lowest int64) (string, []any) {
	return ` AND level >= ? AND level <= ?`, []any{lowest, int64(math.MaxInt64)}
}

// levels bounds, for band a, the stored levels of the contacts that may score minScore: from
// floor (every contact below it scores less) to clear (every contact above it scores more than
// minScore + margin from its level); clear is nil when every contact of the band does (its
// attribute points alone). ok is false when no level reaches minScore.
func (q *leadQuery) levels(a int64, minScore, margin float64) (floor int64, clear *int64, ok bool) {
	rest := minScore - float64(a)
	if rest+margin <= 0 {
		return 0, nil, true
	}
	floor = math.MinInt64 // a alone may reach it: every contact of the band is near or above
	if rest-margin > 0 {
		// Rounded down when stored, and a little slack here: the exact score decides.
		f := leadscore.LevelFloor(rest-margin, q.asOf, q.ls.HalfLifeDays)*levelScale - 1e3
		if f > math.MaxInt64/2 {
			return 0, nil, false
		}
		floor = int64(math.Floor(f))
	}
	c := min(leadscore.LevelFloor(rest+margin, q.asOf, q.ls.HalfLifeDays)*levelScale+1e3, math.MaxInt64/2)
	cl := int64(math.Ceil(c))
	return floor, &cl, true
}

// judged keeps the rows whose score at as_of is at least minScore: from the level, or exactly
// from the touchpoints within the margin of it.
func (q *leadQuery) judged(rows []scoreRow, minScore, margin float64) ([]candidate, error) {
	var out []candidate
	for _, r := range rows {
		c := candidate{row: r, score: q.fromLevel(r)}
		if math.Abs(c.score-minScore) <= margin {
			if err := q.score(&c); err != nil {
				return nil, err
			}
		}
		if c.score >= minScore {
			out = append(out, c)
		}
	}
	return out, nil
}

// rows reads the score rows (without their touchpoints) that match where.
func (q *leadQuery) rows(where string, args ...any) ([]scoreRow, error) {
	return q.scoreRows(`''`, where, args...)
}

// scoreRows reads the score rows that match where, with touches as their touchpoints (the
// column, or an empty SQL string for none).
func (q *leadQuery) scoreRows(touches, where string, args ...any) ([]scoreRow, error) {
	rows, err := q.tx.QueryContext(q.ctx, q.db.Dialect.Rebind(`SELECT contact_id, owner, title, segment, channel, attr, level, `+touches+`,
		touch_count, last_touch_at, hot_at, hot_touchpoint FROM `+q.t.Name(tableScores)+` WHERE `+where), args...)
	if err != nil {
		return nil, fmt.Errorf("lead scores: %w", err)
	}
	defer rows.Close()
	var list []scoreRow
	for rows.Next() {
		r := scoreRow{k: everyone}
		if err := rows.Scan(&r.contactID, &r.owner, &r.title, &r.segment, &r.channel, &r.attr, &r.level, &r.touches,
			&r.touchCount, &r.lastTouchAt, &r.hotAt, &r.hotTouchpoint); err != nil {
			return nil, fmt.Errorf("lead scores: %w", err)
		}
		list = append(list, r)
	}
	return list, rows.Err()
}

// find reads, band by band, the contacts whose score at as_of is at least minScore (a
// question about an earlier as_of: every one is scored from its touchpoints).
func (q *leadQuery) find(minScore float64, owner string) ([]candidate, error) {
	bands, err := readBands(q.ctx, q.db, q.tx, q.t)
	if err != nil {
		return nil, err
	}
	var found []candidate
	for _, a := range bands {
		f, err := q.findIn(a, minScore, owner)
		if err != nil {
			return nil, err
		}
		found = append(found, f...)
	}
	return found, nil
}

// findIn reads the contacts of band a whose score at as_of is at least minScore.
func (q *leadQuery) findIn(a int64, minScore float64, owner string) ([]candidate, error) {
	margin := 1e-6 * max(1, math.Abs(minScore))
	rows, err := q.candidates(a, minScore, owner)
	if err != nil {
		return nil, err
	}
	var found []candidate
	for _, r := range rows {
		c := candidate{row: r}
		if q.now {
			c.score = q.fromLevel(r)
		}
		if !q.now || math.Abs(c.score-minScore) <= margin {
			if err := q.score(&c); err != nil {
				return nil, err
			}
		}
		if c.score >= minScore {
			found = append(found, c)
		}
	}
	return found, nil
}

// topThen answers a question about an earlier as_of as top does about now, from the steps in
// force at as_of: per band, it counts the contacts whose level then is clearly above
// minScore in the index, scores exactly the few near it, and reads the first limit by level.
// A band whose attribute points alone come within the margin of minScore is read whole
// (findIn): every contact of it may score enough without a step.
func (q *leadQuery) topThen(minScore float64, owner string, limit int) ([]candidate, int, error) {
	bands, err := readBands(q.ctx, q.db, q.tx, q.t)
	if err != nil {
		return nil, 0, err
	}
	margin := 1e-6 * max(1, math.Abs(minScore))
	var (
		found []candidate
		total int
		steps []stepRow // near minScore, then the first of each band
		near  = map[string]bool{}
	)
	for _, a := range bands {
		if minScore-float64(a)-margin <= 0 {
			f, err := q.findIn(a, minScore, owner)
			if err != nil {
				return nil, 0, err
			}
			found, total = append(found, f...), total+len(f)
			continue
		}
		floor, clear, ok := q.levels(a, minScore, margin)
		if !ok || clear == nil {
			continue
		}
		where, args := q.band(a, owner)
		where += ` AND from_at <= ? AND until_at > ?`
		args = append(args, q.asOf.UnixMicro(), q.asOf.UnixMicro())
		cond, condArgs := levelsAbove(clear)
		aboveWhere, aboveArgs := where+cond, append(slices.Clone(args), condArgs...)
		var above int
		err := q.tx.QueryRowContext(q.ctx, q.db.Dialect.Rebind(`SELECT COUNT(*) FROM `+q.t.Name(tableSteps)+` WHERE `+aboveWhere),
			aboveArgs...).Scan(&above)
		if err != nil {
			return nil, 0, fmt.Errorf("lead-score steps: %w", err)
		}
		total += above
		close, err := q.stepRows(where+` AND level >= ? AND level <= ?`, append(slices.Clone(args), floor, *clear)...)
		if err != nil {
			return nil, 0, err
		}
		for _, s := range close {
			near[s.contactID] = true
		}
		best, err := firstOfLevel(q.stepRows, aboveWhere, aboveArgs, limit)
		if err != nil {
			return nil, 0, err
		}
		steps = append(append(steps, close...), best...)
	}
	candidates, err := q.fromSteps(steps)
	if err != nil {
		return nil, 0, err
	}
	for _, c := range candidates {
		if !near[c.row.contactID] {
			found = append(found, c)
			continue
		}
		if math.Abs(c.score-minScore) <= margin {
			if err := q.score(&c); err != nil {
				return nil, 0, err
			}
		}
		if c.score >= minScore {
			found, total = append(found, c), total+1
		}
	}
	return found, total, nil
}

// stepRows reads the contact and level of the steps that match where.
func (q *leadQuery) stepRows(where string, args ...any) ([]stepRow, error) {
	rows, err := q.tx.QueryContext(q.ctx, q.db.Dialect.Rebind(`SELECT contact_id, attr, level FROM `+q.t.Name(tableSteps)+` WHERE `+where), args...)
	if err != nil {
		return nil, fmt.Errorf("lead-score steps: %w", err)
	}
	defer rows.Close()
	var list []stepRow
	for rows.Next() {
		var s stepRow
		if err := rows.Scan(&s.contactID, &s.attr, &s.level); err != nil {
			return nil, fmt.Errorf("lead-score steps: %w", err)
		}
		list = append(list, s)
	}
	return list, rows.Err()
}

// fromSteps reads the score rows (without their touchpoints) of the contacts of steps, each
// scored at as_of from its step's level.
func (q *leadQuery) fromSteps(steps []stepRow) ([]candidate, error) {
	if len(steps) == 0 {
		return nil, nil
	}
	level := map[string]int64{}
	var ids []string
	for _, s := range steps {
		if _, ok := level[s.contactID]; !ok {
			ids = append(ids, s.contactID)
		}
		level[s.contactID] = s.level
	}
	cond, arg, err := q.db.Dialect.InKeys("contact_id", ids)
	if err != nil {
		return nil, err
	}
	rows, err := q.rows(`k = ? AND `+cond, everyone, arg)
	if err != nil {
		return nil, err
	}
	out := make([]candidate, len(rows))
	for i, r := range rows {
		then := r
		then.level = level[r.contactID]
		out[i] = candidate{row: r, score: q.fromLevel(then)}
	}
	return out, nil
}

// score scores c exactly from its touchpoints, reading them when the row came without.
func (q *leadQuery) score(c *candidate) error {
	if c.exact {
		return nil
	}
	if c.row.touches == "" && c.row.touchCount > 0 {
		err := q.tx.QueryRowContext(q.ctx, q.db.Dialect.Rebind(`SELECT touches FROM `+q.t.Name(tableScores)+` WHERE k = ? AND contact_id = ?`),
			everyone, c.row.contactID).Scan(&c.row.touches)
		if err != nil {
			return fmt.Errorf("touchpoints of %s: %w", c.row.contactID, err)
		}
	}
	tps, err := decodeTouches(c.row.touches)
	if err != nil {
		return fmt.Errorf("contact %s: %w", c.row.contactID, err)
	}
	c.tps, c.exact = tps, true
	c.score = leadscore.Score(tps, c.row.attributes(), q.ls, q.asOf).Score
	return nil
}

// exact scores the page exactly, reading the touchpoints it lacks in one statement.
func (q *leadQuery) exact(page []candidate) error {
	var ids []string
	for _, c := range page {
		if !c.exact && c.row.touches == "" && c.row.touchCount > 0 {
			ids = append(ids, c.row.contactID)
		}
	}
	if len(ids) > 0 {
		cond, arg, err := q.db.Dialect.InKeys("contact_id", ids)
		if err != nil {
			return err
		}
		rows, err := q.tx.QueryContext(q.ctx, q.db.Dialect.Rebind(`SELECT contact_id, touches FROM `+q.t.Name(tableScores)+
			` WHERE k = ? AND `+cond), everyone, arg)
		if err != nil {
			return fmt.Errorf("touchpoints of the page: %w", err)
		}
		touches := map[string]string{}
		for rows.Next() {
			var id, tt string
			if err := rows.Scan(&id, &tt); err != nil {
				rows.Close()
				return fmt.Errorf("touchpoints of the page: %w", err)
			}
			touches[id] = tt
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("touchpoints of the page: %w", err)
		}
		for i := range page {
			if t, ok := touches[page[i].row.contactID]; ok {
				page[i].row.touches = t
			}
		}
	}
	for i := range page {
		if err := q.score(&page[i]); err != nil {
			return err
		}
	}
	return nil
}

func (c candidate) lead(asOf time.Time) Lead {
	l := Lead{ContactID: c.row.contactID, Owner: c.row.owner, Score: leadscore.Round2(c.score), AttributePoints: c.row.attr}
	for _, tp := range c.tps {
		if tp.At.After(asOf) {
			continue
		}
		l.Touchpoints++
		if l.LastTouchpointAt == nil || tp.At.After(*l.LastTouchpointAt) {
			at := tp.At
			l.LastTouchpointAt = &at
		}
	}
	if c.row.hotAt.Valid && c.row.hotAt.Int64 <= asOf.UnixMicro() {
		at := time.UnixMicro(c.row.hotAt.Int64).UTC()
		l.HotSince = &at
	}
	return l
}

// candidates reads the contacts with attribute points a whose level could reach minScore at
// as_of: all of them when a alone reaches it, else those at or above the level floor. Their
// touchpoints are read only when the question is not about now.
func (q *leadQuery) candidates(a int64, minScore float64, owner string) ([]scoreRow, error) {
	where, args := q.band(a, owner)
	lowest := int64(math.MinInt64)
	if rest := minScore - float64(a); rest > 0 {
		// Rounded down when stored, and a little slack here: the exact score decides.
		floor := leadscore.LevelFloor(rest, q.asOf, q.ls.HalfLifeDays)*levelScale - 1e3
		if floor > math.MaxInt64/2 {
			return nil, nil
		}
		lowest = int64(math.Floor(floor))
	}
	cond, condArgs := levelsFrom(lowest)
	where, args = where+cond, append(args, condArgs...)
	touches := `''`
	if !q.now {
		touches = `touches`
	}
	return q.scoreRows(touches, where, args...)
}

func readBands(ctx context.Context, db *projections.DB, tx *sql.Tx, t projections.Tables) ([]int64, error) {
	rows, err := tx.QueryContext(ctx, `SELECT attr FROM `+t.Name(tableBands)+` WHERE contacts > 0 ORDER BY attr`)
	if err != nil {
		return nil, fmt.Errorf("lead-score bands: %w", err)
	}
	defer rows.Close()
	var bands []int64
	for rows.Next() {
		var a int64
		if err := rows.Scan(&a); err != nil {
			return nil, fmt.Errorf("lead-score bands: %w", err)
		}
		bands = append(bands, a)
	}
	return bands, rows.Err()
}

func readScoring(ctx context.Context, db *projections.DB, tx *sql.Tx, t projections.Tables) (settings.LeadScoring, error) {
	var value string
	err := tx.QueryRowContext(ctx, db.Dialect.Rebind(`SELECT value FROM `+t.Name(tableConfig)+` WHERE name = ?`), configLeadScoring).Scan(&value)
	if errors.Is(err, sql.ErrNoRows) {
		return settings.Defaults().LeadScoring, nil
	}
	if err != nil {
		return settings.LeadScoring{}, fmt.Errorf("lead-scoring settings: %w", err)
	}
	var ls settings.LeadScoring
	if err := json.Unmarshal([]byte(value), &ls); err != nil {
		return ls, fmt.Errorf("lead-scoring settings: %w", err)
	}
	return ls, nil
}

// ContactScore is one contact's score at as_of and where its points come from: each
// touchpoint's decayed points (rounded to 2 decimals, as the age in days) and each matching
// attribute rule.
type ContactScore struct {
	ContactID    string                      `json:"contact_id"`
	AsOf         time.Time                   `json:"as_of"`
	Score        float64                     `json:"score"`
	HotThreshold float64                     `json:"hot_threshold"`
	Hot          bool                        `json:"hot"`
	HalfLifeDays float64                     `json:"half_life_days"`
	HotSince     *time.Time                  `json:"hot_since,omitempty"`
	Touchpoints  []leadscore.TouchpointScore `json:"touchpoints"`
	Rules        []leadscore.RuleScore       `json:"rules"`
}

// QueryContact answers one contact's score and its breakdown.
func QueryContact(ctx context.Context, db *projections.DB, t projections.Tables, contactID string, asOf time.Time) (ContactScore, error) {
	if asOf.IsZero() {
		return ContactScore{}, domain.Invalid("as_of", "is required")
	}
	asOf = asOf.UTC()
	var answer ContactScore
	err := db.ReadOnly(ctx, func(tx *sql.Tx) error {
		ls, err := readScoring(ctx, db, tx, t)
		if err != nil {
			return err
		}
		r := scoreRow{k: everyone, contactID: contactID}
		err = tx.QueryRowContext(ctx, db.Dialect.Rebind(`SELECT owner, title, segment, channel, attr, level, touches, touch_count, last_touch_at,
			hot_at, hot_touchpoint FROM `+t.Name(tableScores)+` WHERE k = ? AND contact_id = ?`), everyone, contactID).
			Scan(&r.owner, &r.title, &r.segment, &r.channel, &r.attr, &r.level, &r.touches, &r.touchCount, &r.lastTouchAt, &r.hotAt, &r.hotTouchpoint)
		if errors.Is(err, sql.ErrNoRows) {
			return domain.NotFound("contact %s not found", contactID)
		}
		if err != nil {
			return fmt.Errorf("lead score of %s: %w", contactID, err)
		}
		tps, err := decodeTouches(r.touches)
		if err != nil {
			return fmt.Errorf("contact %s: %w", contactID, err)
		}
		b := leadscore.Score(tps, r.attributes(), ls, asOf)
		for i := range b.Touchpoints {
			b.Touchpoints[i].Points = leadscore.Round2(b.Touchpoints[i].Points)
			b.Touchpoints[i].AgeDays = leadscore.Round2(b.Touchpoints[i].AgeDays)
		}
		answer = ContactScore{ContactID: contactID, AsOf: asOf, Score: leadscore.Round2(b.Score), HotThreshold: ls.HotThreshold,
			Hot: b.Score >= ls.HotThreshold, HalfLifeDays: ls.HalfLifeDays, Touchpoints: b.Touchpoints, Rules: b.Rules}
		if r.hotAt.Valid && r.hotAt.Int64 <= asOf.UnixMicro() {
			at := time.UnixMicro(r.hotAt.Int64).UTC()
			answer.HotSince = &at
		}
		return nil
	})
	return answer, err
}
