package board

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"github.com/eventcrm/crm/domain/deal"
	"github.com/eventcrm/crm/projections"
)

// Present is the board as of any time at or after the latest business time in its tables
// (its Horizon). From then on only the days in stage change with as_of: which deals are open,
// in which stage, their totals and the stage velocity are the same for every such time. So a
// Present read once answers the board for every later as_of (At), until the tables change;
// it is what a server keeps to answer "the board now" without reading the tables each time.
type Present struct {
	// Horizon is the latest time an interval was entered or left, in microseconds since the
	// Unix epoch (0 for empty tables).
	Horizon int64
	answer  Answer
}

// QueryPresent reads the board's present from the tables of set t, for the parameters other
// than AsOf (ignored). Invalid parameters return a domain error with code invalid naming the
// parameter.
func QueryPresent(ctx context.Context, db *projections.DB, t projections.Tables, params Params) (*Present, error) {
	qn, err := params.check()
	if err != nil {
		return nil, err
	}
	q := query{db: db, t: t, owner: params.Owner, present: true}
	p := &Present{}
	err = readOnly(ctx, db, func(tx *sql.Tx) error {
		q.tx = tx
		if p.Horizon, err = q.horizon(ctx); err != nil {
			return err
		}
		p.answer, err = q.answer(ctx, qn)
		return err
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// horizon is the latest entered_at or left_at of any interval: both indexed by stage, so this
// costs two index probes per open stage.
func (q *query) horizon(ctx context.Context) (int64, error) {
	var latest int64
	probe := func(stmt string, args ...any) error {
		var at sql.NullInt64
		if err := q.tx.QueryRowContext(ctx, q.db.Dialect.Rebind(stmt), args...).Scan(&at); err != nil {
			return fmt.Errorf("horizon of the board: %w", err)
		}
		latest = max(latest, at.Int64)
		return nil
	}
	for _, s := range deal.OpenStages() {
		if err := probe(`SELECT MAX(entered_at) FROM `+q.t.Name(tableIntervals)+` WHERE stage = ?`, string(s)); err != nil {
			return 0, err
		}
		if err := probe(`SELECT MAX(left_at) FROM `+q.t.Name(tableIntervals)+` WHERE stage = ? AND left_at IS NOT NULL`, string(s)); err != nil {
			return 0, err
		}
	}
	return latest, nil
}

// At answers the board as of asOf from the present, exactly as Query would, when asOf is at
// or after the horizon; ok is false otherwise (the board then needs Query). The answer is a
// copy: the Present can be shared by concurrent callers.
func (p *Present) At(asOf time.Time) (answer Answer, ok bool) {
	if asOf.IsZero() {
		return Answer{}, false
	}
	asOf = asOf.UTC()
	at := asOf.UnixMicro()
	if at < p.Horizon {
		return Answer{}, false
	}
	answer = p.answer
	answer.AsOf = asOf
	answer.Stages = slices.Clone(p.answer.Stages)
	for i, col := range answer.Stages {
		cards := slices.Clone(col.Cards)
		for j := range cards {
			cards[j].DaysInStage = (at - cards[j].StageEnteredAt.UnixMicro()) / microsPerDay
		}
		answer.Stages[i].Cards = cards
	}
	return answer, true
}
