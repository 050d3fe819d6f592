// Package visits keeps, for a read model of the contact lifecycle, each contact's visits: one
// stay of the contact in a phase (a lifecycle phase or an exit), from the event that entered it
// (the creation for the first visit, in lead; a phase change otherwise) to the phase change
// that left it. An exit is a visit too, so a win-back shows as the visit of the exit being left.
//
// Its one table, declared in the read model's own set, with the read model's own columns after
// these:
//
//	visits  contact_id, seq (1, 2, ... per contact), phase, entered_at, left_at and next_phase
//	        (NULL while open); times BIGINT microseconds since the Unix epoch, UTC
package visits

import (
	"database/sql"

	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/projections/readmodel"
)

// Table is the base name of the visits table.
const Table = "visits"

// Visit is what every read model keeps of a visit, at the start of its row.
type Visit struct {
	ContactID string
	Seq       int64 // 1, 2, ... per contact
	Phase     string
	EnteredAt int64
	LeftAt    sql.NullInt64  // NULL while open
	Next      sql.NullString // the phase entered on leaving; NULL while open
}

// Visits is the declaration of a read model's visits table, whose rows are R.
type Visits[R any] struct {
	t     *readmodel.Table[R]
	visit func(*R) *Visit
}

// New declares the visits table of rows R, keyed by contact and seq and clustered: the
// columns of visit(r), then more, the read model's own.
func New[R any](visit func(*R) *Visit, more ...readmodel.Column[R]) Visits[R] {
	columns := append([]readmodel.Column[R]{
		readmodel.Text("contact_id", func(r *R) *string { return &visit(r).ContactID }),
		readmodel.Integer("seq", func(r *R) *int64 { return &visit(r).Seq }),
		readmodel.Text("phase", func(r *R) *string { return &visit(r).Phase }),
		readmodel.BigInt("entered_at", func(r *R) *int64 { return &visit(r).EnteredAt }),
		readmodel.NullBigInt("left_at", func(r *R) *sql.NullInt64 { return &visit(r).LeftAt }),
		readmodel.NullText("next_phase", func(r *R) *sql.NullString { return &visit(r).Next }),
	}, more...)
	return Visits[R]{t: readmodel.NewTable(Table, 2, columns...).Clustered(), visit: visit}
}

// Table is the declared table, for the read model's Spec and its reads by group.
func (v Visits[R]) Table() *readmodel.Table[R] { return v.t }

// Enter records that the contact entered phase at at, in its visit seq: r holds the read
// model's own columns.
func (v Visits[R]) Enter(rows *readmodel.Rows, r R, contactID string, seq int64, phase contact.Phase, at int64) {
	*v.visit(&r) = Visit{ContactID: contactID, Seq: seq, Phase: string(phase), EnteredAt: at}
	v.t.Upsert(rows, r)
}

// Leave records that the contact left its visit seq for phase to at at: own, when not nil,
// sets the read model's own columns of the row left before it is stored. It returns that row,
// and false when the contact has no such visit.
func (v Visits[R]) Leave(rows *readmodel.Rows, contactID string, seq int64, to contact.Phase, at int64, own func(*R)) (R, bool) {
	r, ok := v.t.Get(rows, contactID, seq)
	if !ok {
		return r, false
	}
	left := v.visit(&r)
	left.LeftAt = sql.NullInt64{Int64: at, Valid: true}
	left.Next = sql.NullString{String: string(to), Valid: true}
	if own != nil {
		own(&r)
	}
	v.t.Upsert(rows, r)
	return r, true
}
