// Package members keeps, inside a read model, which contacts were merged into which: a table
// `members` (survivor, member, merged_at) holding every contact merged into a survivor,
// directly or through an earlier merge, so that a read model can count a duplicate's facts for
// the contact it went to. A read model declares the table among its own (it lives in the read
// model's table set, rebuilt with it) and calls Absorb from its fold.
package members

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/readmodel"
)

// TableName is the base name of the table.
const TableName = "members"

type row struct {
	survivor, member string
	mergedAt         int64
}

// Table is the members table of one read model.
type Table struct{ t *readmodel.Table[row] }

// NewTable declares the table, keyed by (survivor, member).
func NewTable() *Table {
	return &Table{readmodel.NewTable(TableName, 2,
		readmodel.Text("survivor", func(r *row) *string { return &r.survivor }),
		readmodel.Text("member", func(r *row) *string { return &r.member }),
		readmodel.BigInt("merged_at", func(r *row) *int64 { return &r.mergedAt })).Clustered()}
}

// Declared is the table as a read model's Spec lists it.
func (m *Table) Declared() readmodel.AnyTable { return m.t }

// Absorb records, when the survivor absorbed the duplicate at at (Unix microseconds), that the
// duplicate and every contact merged into it before are members of the survivor.
func (m *Table) Absorb(rows *readmodel.Rows, survivor, duplicate string, at int64) {
	m.t.Insert(rows, row{survivor: survivor, member: duplicate, mergedAt: at})
	for _, r := range m.t.Group(rows, duplicate) {
		m.t.Insert(rows, row{survivor: survivor, member: r.member, mergedAt: at})
	}
}

// Of returns the contact and every contact merged into it, from the members table of set t,
// read in tx.
func Of(ctx context.Context, tx *sql.Tx, d projections.Dialect, t projections.Tables, contactID string) ([]string, error) {
	rows, err := tx.QueryContext(ctx, d.Rebind(`SELECT member FROM `+t.Name(TableName)+` WHERE survivor = ? ORDER BY member`), contactID)
	if err != nil {
		return nil, fmt.Errorf("merged contacts: %w", err)
	}
	defer rows.Close()
	ids := []string{contactID}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("merged contacts: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("merged contacts: %w", err)
	}
	return ids, nil
}

// Group returns, inside a fold, every contact merged into survivor (directly or through an
// earlier merge), in order.
func (m *Table) Group(rows *readmodel.Rows, survivor string) []string {
	var ids []string
	for _, r := range m.t.Group(rows, survivor) {
		ids = append(ids, r.member)
	}
	return ids
}
