// Package probability keeps, in a read model's own table, the history of the pipeline stage
// probabilities set in the settings, so that a weighted figure asked as of a business time T
// weighs with the probabilities in force at T: those of the latest change that occurred at or
// before T, the stage defaults before any change. The table is folded from the settings
// events like any other row, so a rebuild, a replay or a question about a past log position
// (time travel) sees exactly the changes recorded up to there.
//
// Table (prefix from projections.Tables, base name Table):
//
//	stage_probabilities  at (business time of the change, BIGINT microseconds UTC), position
//	                     (of the change in the log), stage, percent
package probability

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/eventcrm/crm/domain/deal"
	"github.com/eventcrm/crm/domain/settings"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/readmodel"
)

// Table is the base name of the history table.
const Table = "stage_probabilities"

type row struct {
	at, position int64
	stage        string
	percent      int64
}

// History is the declaration of a read model's history table and its fold.
type History struct {
	table *readmodel.Table[row]
}

// NewHistory declares the history table of one read model.
func NewHistory() History {
	return History{table: readmodel.NewTable(Table, 3,
		readmodel.BigInt("at", func(r *row) *int64 { return &r.at }),
		readmodel.BigInt("position", func(r *row) *int64 { return &r.position }),
		readmodel.Text("stage", func(r *row) *string { return &r.stage }),
		readmodel.Integer("percent", func(r *row) *int64 { return &r.percent })).
		Clustered()}
}

// Table is the table, for the read model's Spec.
func (h History) Table() readmodel.AnyTable { return h.table }

// Fold records a change of the stage probabilities; other events are ignored.
func (h History) Fold(e *readmodel.Event, rows *readmodel.Rows) error {
	if e.Type != settings.TypeStageProbabilitiesChanged {
		return nil
	}
	ev, err := readmodel.Decode[settings.StageProbabilitiesChanged](e)
	if err != nil {
		return err
	}
	at := e.OccurredAt.UnixMicro()
	for stage, p := range ev.Probabilities {
		h.table.Upsert(rows, row{at: at, position: e.Position, stage: string(stage), percent: int64(p)})
	}
	return nil
}

// Percents are win probabilities per stage, in percent.
type Percents map[deal.Stage]int

// Of is the probability of stage: the one in force, else the stage's default (won 100, lost 0).
func (p Percents) Of(stage deal.Stage) int {
	if v, ok := p[stage]; ok {
		return v
	}
	return stage.Probability()
}

// Weighted is amount x the probability of stage / 100, rounded half up to the minor unit:
// (amount*percent + 50) / 100 in integer arithmetic (amounts are never negative).
func (p Percents) Weighted(stage deal.Stage, amount int64) int64 {
	return (amount*int64(p.Of(stage)) + 50) / 100
}

// Queryer runs a query (a *sql.Tx of a read).
type Queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// InForce reads the probabilities in force at business time at from the history table of set
// t: those of the latest change that occurred at or before at (the later in the log among
// changes of the same time); the defaults when there is none.
func InForce(ctx context.Context, q Queryer, d projections.Dialect, t projections.Tables, at time.Time) (Percents, error) {
	name := t.Name(Table)
	stmt := `SELECT stage, percent FROM ` + name + ` WHERE (at, position) IN
		(SELECT at, position FROM ` + name + ` WHERE at <= ? ORDER BY at DESC, position DESC LIMIT 1)`
	rows, err := q.QueryContext(ctx, d.Rebind(stmt), at.UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("stage probabilities at %s: %w", at.UTC().Format(time.RFC3339), err)
	}
	defer rows.Close()
	p := Percents{}
	for rows.Next() {
		var (
			stage   string
			percent int
		)
		if err := rows.Scan(&stage, &percent); err != nil {
			return nil, fmt.Errorf("stage probabilities: %w", err)
		}
		p[deal.Stage(stage)] = percent
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("stage probabilities: %w", err)
	}
	return p, nil
}

// Latest is the business time of the latest change in the history table of set t (ok false
// when there is none): from then on the same probabilities are in force.
func Latest(ctx context.Context, q Queryer, t projections.Tables) (at time.Time, ok bool, err error) {
	var micros sql.NullInt64
	rows, err := q.QueryContext(ctx, `SELECT MAX(at) FROM `+t.Name(Table))
	if err != nil {
		return at, false, fmt.Errorf("latest stage probabilities: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := rows.Scan(&micros); err != nil {
			return at, false, fmt.Errorf("latest stage probabilities: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return at, false, fmt.Errorf("latest stage probabilities: %w", err)
	}
	if !micros.Valid {
		return at, false, nil
	}
	return time.UnixMicro(micros.Int64), true, nil
}
