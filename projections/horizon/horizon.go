// Package horizon keeps, for a read model whose aggregates answer the questions about now,
// the latest business time its detail tables hold: a question as of that time or later is
// about now and reads the aggregates, an earlier one reads the detail tables (see "Know when
// the aggregates answer" in docs/read-models.md).
//
// Its one table, declared in the read model's own set:
//
//	horizon  id (always 1), at: the latest business time folded, BIGINT microseconds since
//	         the Unix epoch, UTC; no row before the first event that reaches it
package horizon

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/readmodel"
)

// Table is the base name of the horizon's table.
const Table = "horizon"

type row struct{ id, at int64 }

// Horizon is the declaration of a read model's horizon table.
type Horizon struct {
	t *readmodel.Table[row]
}

// New declares the horizon table of a read model; put Table() in its Spec's tables.
func New() Horizon {
	return Horizon{t: readmodel.NewTable(Table, 1,
		readmodel.Integer("id", func(r *row) *int64 { return &r.id }),
		readmodel.BigInt("at", func(r *row) *int64 { return &r.at }))}
}

// Table is the declared table, for the read model's Spec.
func (h Horizon) Table() readmodel.AnyTable { return h.t }

// Reach moves the horizon to at when at is later.
func (h Horizon) Reach(rows *readmodel.Rows, at int64) {
	r, ok := h.t.Get(rows, 1)
	if !ok || at > r.at {
		h.t.Upsert(rows, row{id: 1, at: at})
	}
}

// Read is the horizon of the table set t, read in tx: ok is false while the set holds none.
func Read(ctx context.Context, tx *sql.Tx, t projections.Tables) (at int64, ok bool, err error) {
	err = tx.QueryRowContext(ctx, `SELECT at FROM `+t.Name(Table)+` WHERE id = 1`).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("horizon: %w", err)
	}
	return at, true, nil
}

// Covers tells whether as of asOf (microseconds) is about now: at or after the horizon of
// the set t, or any time while the set holds none.
func Covers(ctx context.Context, tx *sql.Tx, t projections.Tables, asOf int64) (bool, error) {
	at, ok, err := Read(ctx, tx, t)
	return err == nil && (!ok || asOf >= at), err
}
