package board

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/deal"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/horizon"
	"github.com/eventcrm/crm/projections/lengths"
	"github.com/eventcrm/crm/projections/paging"
	"github.com/eventcrm/crm/projections/probability"
	"github.com/eventcrm/crm/projections/round"
)

// Page sizes of the cards of a stage.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// Params is the question asked of the board.
type Params struct {
	// AsOf is the business time of the question (required): only events that occurred at or
	// before it count, and days in stage are counted up to it.
	AsOf time.Time `json:"as_of"`
	// Owner, when set, keeps only the deals of this sales rep (cards, counts, totals, velocity).
	Owner string `json:"owner,omitempty"`
	// Stage, when set, answers for this open stage only.
	Stage string `json:"stage,omitempty"`
	// Limit is the number of cards per stage: DefaultLimit when 0, at most MaxLimit.
	Limit int `json:"limit,omitempty"`
	// Cursor, from a stage's next_cursor, asks for the next page of that stage's cards (the
	// answer then holds that stage only). The other parameters must be the same as for the
	// page that gave the cursor.
	Cursor string `json:"cursor,omitempty"`
	// Explain, when set, asks for the parts of one figure of the board instead (see Explain):
	// Limit and Cursor then page the parts.
	Explain string `json:"explain,omitempty"`
}

// Answer is the board: the open stages in pipeline order and their velocity.
type Answer struct {
	AsOf     time.Time  `json:"as_of"`
	Owner    string     `json:"owner,omitempty"`
	Stages   []Column   `json:"stages"`
	Velocity []Velocity `json:"velocity"`
}

// Column is one open stage of the board as of the answer's time.
type Column struct {
	Stage deal.Stage `json:"stage"`
	// Probability is the stage's win probability in percent in force at as_of (the settings'
	// latest change of the stage probabilities that occurred at or before it), the weight of
	// its amounts.
	Probability int `json:"probability"`
	// Count is the number of open deals in the stage (all pages).
	Count int `json:"count"`
	// Totals are the sums of the open deals' amounts per currency (all pages), by currency code.
	Totals []Total `json:"totals"`
	// Cards are one page of the open deals, ordered by the time they entered the stage (the
	// longest in the stage first), then by deal id.
	Cards []Card `json:"cards"`
	// NextCursor asks for the next page; empty on the last page.
	NextCursor string `json:"next_cursor,omitempty"`
}

// Total is a stage's sum of amounts in one currency, in minor units.
type Total struct {
	Currency string `json:"currency"`
	Amount   int64  `json:"amount"`
	// WeightedAmount is Amount x the stage's probability / 100, rounded half up once:
	// (amount*probability + 50) / 100 in integer arithmetic.
	WeightedAmount int64 `json:"weighted_amount"`
}

// Card is an open deal on the board.
type Card struct {
	DealID      string       `json:"deal_id"`
	Title       string       `json:"title"`
	ContactID   string       `json:"contact_id"`
	ContactName string       `json:"contact_name"`
	Owner       string       `json:"owner"`
	Amount      domain.Money `json:"amount"`
	// WeightedAmount is amount x the stage's probability in force at as_of / 100 in minor
	// units, rounded half up:
	// (amount*probability + 50) / 100 in integer arithmetic.
	WeightedAmount int64       `json:"weighted_amount"`
	ExpectedClose  domain.Date `json:"expected_close,omitempty"`
	StageEnteredAt time.Time   `json:"stage_entered_at"`
	// DaysInStage is the time from StageEnteredAt to as_of in days: exact (seconds / 86,400),
	// to 2 decimals half up, as every duration in days.
	DaysInStage float64 `json:"days_in_stage"`
	// Version is the stream version of the deal's latest event the board has read (of any
	// type, also on a board as of an earlier time): a command on the deal sent with
	// If-Match set to it is refused (412) when the deal changed since.
	Version int64 `json:"version"`
}

// Velocity is how long deals stay in a stage.
type Velocity struct {
	Stage deal.Stage `json:"stage"`
	// ClosedIntervals counts the stays in the stage that ended at or before as_of: by a move
	// to another stage, a win or a loss. Each stay counts: a deal that comes back to the stage
	// (backward move, reopening) and leaves it again has two.
	ClosedIntervals int `json:"closed_intervals"`
	// MedianDays is the median length of those stays in days, rounded half up to 2 decimals
	// (the mean of the two middle ones for an even count); null when there is none. Stays
	// still open at as_of never count. A stay is measured from the business time of the event
	// that entered the stage to that of the event that left it (a stay whose end lies before
	// its start, only possible with back-dated events, counts as 0).
	MedianDays *float64 `json:"median_days"`
}

// cursor is the position after the last card of a page.
type cursor struct {
	Stage     deal.Stage `json:"s"`
	EnteredAt int64      `json:"e"`
	DealID    string     `json:"d"`
}

// question is a board's parameters, checked.
type question struct {
	owner  string
	stages []deal.Stage
	limit  int
	after  *cursor
}

// check validates the parameters other than as_of.
func (params Params) check() (question, error) {
	limit, err := paging.Limit(params.Limit, DefaultLimit, MaxLimit)
	if err != nil {
		return question{}, err
	}
	stages := deal.OpenStages()
	if params.Stage != "" {
		s, err := deal.ParseOpenStage("stage", params.Stage)
		if err != nil {
			return question{}, err
		}
		stages = []deal.Stage{s}
	}
	after, err := paging.Cursor(params.Cursor, "cursor", "is not a cursor of the board",
		func(c cursor) bool { return c.Stage.IsOpen() && c.DealID != "" })
	if err != nil {
		return question{}, err
	}
	if after != nil {
		if params.Stage != "" && deal.Stage(params.Stage) != after.Stage {
			return question{}, domain.Invalid("cursor", "belongs to stage %s, not %s", after.Stage, params.Stage)
		}
		stages = []deal.Stage{after.Stage}
	}
	return question{owner: params.Owner, stages: stages, limit: limit, after: after}, nil
}

// Query answers the board from the tables of set t. Invalid parameters return a domain error
// with code invalid naming the parameter.
//
// The board as of the horizon (the latest time an interval was entered or left) or later is
// the board now: it reads the totals and lengths of stay the fold keeps, and a page of the
// open intervals per stage. An earlier as_of reads the intervals that contain it.
func Query(ctx context.Context, db *projections.DB, t projections.Tables, params Params) (Answer, error) {
	return ask(ctx, db, t, params, true)
}

// ask answers as Query does; without kept, from the intervals at every as_of.
func ask(ctx context.Context, db *projections.DB, t projections.Tables, params Params, kept bool) (Answer, error) {
	if params.AsOf.IsZero() {
		return Answer{}, domain.Invalid("as_of", "is required")
	}
	qn, err := params.check()
	if err != nil {
		return Answer{}, err
	}
	asOf := params.AsOf.UTC()
	q := query{db: db, t: t, asOf: asOf.UnixMicro(), owner: params.Owner}
	var answer Answer
	err = db.ReadOnly(ctx, func(tx *sql.Tx) error {
		q.tx = tx
		var err error
		if q.percents, err = probability.InForce(ctx, tx, db.Dialect, t, asOf); err != nil {
			return err
		}
		if kept {
			now, err := q.isNow(ctx)
			if err != nil {
				return err
			}
			q.present, q.kept = now, now
		}
		answer, err = q.answer(ctx, qn)
		return err
	})
	if err != nil {
		return Answer{}, err
	}
	answer.AsOf = asOf
	return answer, nil
}

// answer reads the columns and velocity of the stages asked for.
func (q *query) answer(ctx context.Context, qn question) (Answer, error) {
	answer := Answer{Owner: qn.owner, Stages: []Column{}, Velocity: []Velocity{}}
	for _, s := range qn.stages {
		col, err := q.column(ctx, s, qn.limit, qn.after)
		if err != nil {
			return Answer{}, err
		}
		answer.Stages = append(answer.Stages, col)
	}
	for _, s := range qn.stages {
		v, err := q.velocity(ctx, s)
		if err != nil {
			return Answer{}, err
		}
		answer.Velocity = append(answer.Velocity, v)
	}
	return answer, nil
}

// query runs the statements of one answer in one read transaction.
type query struct {
	db    *projections.DB
	tx    *sql.Tx
	t     projections.Tables
	asOf  int64
	owner string
	// present asks for the board as of any time at or after the latest business time in the
	// tables: the open intervals are those not left, the closed ones all the others.
	present bool
	// kept: the totals and velocity are read from what the fold keeps (with present).
	kept bool
	// percents are the stage probabilities in force at as_of.
	percents probability.Percents
}

// isNow tells whether as_of is at or after the horizon the fold keeps.
func (q *query) isNow(ctx context.Context) (bool, error) {
	return horizon.Covers(ctx, q.tx, q.t, q.asOf)
}

// totals selects the count and total amount per currency of a stage's open deals.
func (q *query) totalsOf(stage deal.Stage) (string, []any) {
	if q.kept {
		stmt := `SELECT i.currency, CAST(SUM(i.deals) AS BIGINT), CAST(SUM(i.amount) AS BIGINT)
			FROM ` + q.t.Name(tableTotals) + ` i WHERE i.stage = ? AND i.deals <> 0`
		args := []any{string(stage)}
		if q.owner != "" {
			stmt += ` AND i.owner = ?`
			args = append(args, q.owner)
		}
		return stmt + ` GROUP BY i.currency ORDER BY i.currency`, args
	}
	from, args := q.openIn(stage, false)
	return `SELECT i.currency, COUNT(*), CAST(SUM(i.amount) AS BIGINT)` + from +
		` GROUP BY i.currency ORDER BY i.currency`, args
}

func (q *query) rows(ctx context.Context, stmt string, args ...any) (*sql.Rows, error) {
	return q.tx.QueryContext(ctx, q.db.Dialect.Rebind(stmt), args...)
}

// openIn selects the intervals of stage that contain as_of (i); with cards, joined with their
// deal (d) and its contact (c). The owner filter applies.
func (q *query) openIn(stage deal.Stage, cards bool) (string, []any) {
	where := ` FROM ` + q.t.Name(tableIntervals) + ` i`
	if cards {
		where += ` JOIN ` + q.t.Name(tableDeals) + ` d ON d.deal_id = i.deal_id
			LEFT JOIN ` + q.t.Name(tableContacts) + ` c ON c.contact_id = d.contact_id`
	}
	var args []any
	if q.owner != "" {
		where += ` WHERE i.owner = ? AND`
		args = append(args, q.owner)
	} else {
		where += ` WHERE`
	}
	where += ` i.stage = ?`
	args = append(args, string(stage))
	if q.present {
		where += ` AND i.left_at IS NULL`
	} else {
		where += ` AND i.entered_at <= ? AND (i.left_at IS NULL OR i.left_at > ?)`
		args = append(args, q.asOf, q.asOf)
	}
	return where, args
}

func (q *query) column(ctx context.Context, stage deal.Stage, limit int, after *cursor) (Column, error) {
	col := Column{Stage: stage, Probability: q.percents.Of(stage), Totals: []Total{}, Cards: []Card{}}
	stmt, args := q.totalsOf(stage)
	rows, err := q.rows(ctx, stmt, args...)
	if err != nil {
		return Column{}, fmt.Errorf("totals of %s: %w", stage, err)
	}
	for rows.Next() {
		var (
			tot   Total
			count int
		)
		if err := rows.Scan(&tot.Currency, &count, &tot.Amount); err != nil {
			rows.Close()
			return Column{}, fmt.Errorf("totals of %s: %w", stage, err)
		}
		tot.WeightedAmount = q.percents.Weighted(stage, tot.Amount)
		col.Count += count
		col.Totals = append(col.Totals, tot)
	}
	if err := closeRows(rows); err != nil {
		return Column{}, fmt.Errorf("totals of %s: %w", stage, err)
	}

	page, args := q.cardsPage(stage, limit, after)
	rows, err = q.rows(ctx, page, args...)
	if err != nil {
		return Column{}, fmt.Errorf("cards of %s: %w", stage, err)
	}
	for rows.Next() {
		var (
			c         Card
			enteredAt int64
			closeDate string
		)
		if err := rows.Scan(&c.DealID, &c.Title, &c.ContactID, &c.ContactName, &c.Owner, &c.Amount.Amount,
			&c.Amount.Currency, &closeDate, &enteredAt, &c.Version); err != nil {
			rows.Close()
			return Column{}, fmt.Errorf("cards of %s: %w", stage, err)
		}
		c.WeightedAmount = q.percents.Weighted(stage, c.Amount.Amount)
		c.ExpectedClose = domain.Date(closeDate)
		c.StageEnteredAt = time.UnixMicro(enteredAt).UTC()
		c.DaysInStage = round.Days(max(q.asOf-enteredAt, 0))
		col.Cards = append(col.Cards, c)
	}
	if err := closeRows(rows); err != nil {
		return Column{}, fmt.Errorf("cards of %s: %w", stage, err)
	}
	if len(col.Cards) > limit {
		col.Cards = col.Cards[:limit]
		last := col.Cards[limit-1]
		col.NextCursor = paging.Encode(cursor{Stage: stage, EnteredAt: last.StageEnteredAt.UnixMicro(), DealID: last.DealID})
	}
	return col, nil
}

// cardsPage is the statement of a page of the cards of stage after the cursor after (nil for
// the first page).
func (q *query) cardsPage(stage deal.Stage, limit int, after *cursor) (string, []any) {
	from, args := q.openIn(stage, true)
	page := `SELECT i.deal_id, d.title, d.contact_id, COALESCE(c.name, ''), d.owner, i.amount, i.currency,
		d.expected_close, i.entered_at, d.version` + from
	if after != nil {
		page += ` AND (i.entered_at > ? OR (i.entered_at = ? AND i.deal_id > ?))`
		args = append(args, after.EnteredAt, after.EnteredAt, after.DealID)
	}
	return page + ` ORDER BY i.entered_at, i.deal_id LIMIT ?`, append(args, limit+1)
}

func (q *query) velocity(ctx context.Context, stage deal.Stage) (Velocity, error) {
	if q.kept {
		return q.keptVelocity(ctx, stage)
	}
	stmt := `SELECT i.left_at - i.entered_at FROM ` + q.t.Name(tableIntervals) + ` i WHERE`
	var args []any
	if q.owner != "" {
		stmt += ` i.owner = ? AND`
		args = append(args, q.owner)
	}
	stmt += ` i.stage = ? AND i.left_at IS NOT NULL`
	args = append(args, string(stage))
	if !q.present {
		stmt += ` AND i.left_at <= ?`
		args = append(args, q.asOf)
	}
	rows, err := q.rows(ctx, stmt, args...)
	if err != nil {
		return Velocity{}, fmt.Errorf("velocity of %s: %w", stage, err)
	}
	var durations []int64
	for rows.Next() {
		var d int64
		if err := rows.Scan(&d); err != nil {
			rows.Close()
			return Velocity{}, fmt.Errorf("velocity of %s: %w", stage, err)
		}
		durations = append(durations, d)
	}
	if err := closeRows(rows); err != nil {
		return Velocity{}, fmt.Errorf("velocity of %s: %w", stage, err)
	}
	return Velocity{Stage: stage, ClosedIntervals: len(durations), MedianDays: medianDays(durations)}, nil
}

// keptVelocity reads the velocity of a stage from the lengths of stay the fold keeps.
func (q *query) keptVelocity(ctx context.Context, stage deal.Stage) (Velocity, error) {
	dim, value := dimAll, ""
	s := lengths.Series{Bins: q.t.Name(tableStayBins), Exact: q.t.Name(tableStays),
		ExactWhere: `stage = ?`, ExactArgs: []any{string(stage)}}
	if q.owner != "" {
		dim, value = dimOwner, q.owner
		s.ExactWhere += ` AND owner = ?`
		s.ExactArgs = append(s.ExactArgs, q.owner)
	}
	s.Where, s.Args = `dim = ? AND value = ? AND stage = ?`, []any{dim, value, string(stage)}
	st, err := lengths.Read(ctx, q.tx, q.db.Dialect, s)
	if err != nil {
		return Velocity{}, fmt.Errorf("velocity of %s: %w", stage, err)
	}
	return Velocity{Stage: stage, ClosedIntervals: st.Count, MedianDays: st.Median}, nil
}

func closeRows(rows *sql.Rows) error {
	if err := rows.Err(); err != nil {
		rows.Close()
		return err
	}
	return rows.Close()
}

const microsPerDay = int64(24 * time.Hour / time.Microsecond)

// medianDays is the median of durations in microseconds, in days rounded half up to 2
// decimals; for an even count, the mean of the two middle values. nil when there is none.
func medianDays(durations []int64) *float64 {
	n := len(durations)
	if n == 0 {
		return nil
	}
	sorted := make([]int64, n)
	for i, d := range durations {
		sorted[i] = max(d, 0) // a stay can only look negative if business times went backwards
	}
	slices.Sort(sorted)
	// twice the median, so that the mean of two middle values stays an integer
	twice := 2 * sorted[n/2]
	if n%2 == 0 {
		twice = sorted[n/2-1] + sorted[n/2]
	}
	// hundredths of a day, half up: twice*100 / (2*microsPerDay), rounded
	hundredths := (twice*100 + microsPerDay) / (2 * microsPerDay)
	days := float64(hundredths) / 100
	return &days
}
