package churn

import (
	"database/sql"

	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/explain"
	"github.com/eventcrm/crm/projections/readmodel"
	"github.com/eventcrm/crm/projections/visits"
)

// Figures of the parts (see the package comment).
const (
	figEntered = "entered/"
	figLost    = "lost/"
	figChurned = "churned/"
	figExited  = "exited/"
	figIn      = "in/"
	figLoss    = "loss/"
)

// partsShape is how the parts are kept: with their end and amount, keyed by position (the
// fold reads a part only by its whole key, to revoke it).
func partsShape() explain.Shape { return explain.Shape{Until: true, Amounts: true, ByPosition: true} }

// part is the part of figure made by event e for entity.
func (m *model) part(e *readmodel.Event, entity, figure string) explain.Part {
	return explain.Part{Entity: entity, Figure: figure, Position: e.Position, EventID: e.ID, At: e.OccurredAt.UnixMicro(), Count: 1}
}

// stand records the part of figure made by e for entity.
func (m *model) stand(rows *readmodel.Rows, e *readmodel.Event, entity, figure string) {
	m.parts.Upsert(rows, m.part(e, entity, figure))
}

// revoke records that the part of entity, figure and position stops counting at at.
func (m *model) revoke(rows *readmodel.Rows, entity, figure string, position, at int64) {
	if p, ok := m.parts.Get(rows, position, entity, figure); ok && !p.Until.Valid {
		p.Until = sql.NullInt64{Int64: at, Valid: true}
		m.parts.Upsert(rows, p)
	}
}

// partsEntered records the contact's first entry into phase (from before to after).
func (m *model) partsEntered(rows *readmodel.Rows, e *readmodel.Event, before, after contactRow, phase contact.Phase) {
	if b := bit(phase); b != 0 && before.entered&b == 0 && after.entered&b != 0 {
		m.stand(rows, e, after.contactID, figEntered+string(phase))
	}
}

// partsLeft records that the contact left visit v with e: the visit, which counted among
// those in its phase from its entry, stops counting now (while it is open, the visit is that
// part: nothing is read nor rewritten when it ends), and a first change from the phase to
// lost, to churned, to either counts from now on.
func (m *model) partsLeft(rows *readmodel.Rows, e *readmodel.Event, before, after contactRow, v visitRow) {
	phase := contact.Phase(v.Phase)
	b := bit(phase)
	if b == 0 {
		return // an exit left: a win-back
	}
	m.parts.Upsert(rows, explain.Part{Entity: v.ContactID, Figure: figIn + v.Phase, Position: v.position, EventID: v.eventID,
		At: v.EnteredAt, Until: sql.NullInt64{Int64: e.OccurredAt.UnixMicro(), Valid: true}, Count: 1})
	for _, f := range []struct {
		figure        string
		before, after int64
	}{{figLost, before.lost, after.lost}, {figChurned, before.churned, after.churned},
		{figExited, before.lost | before.churned, after.lost | after.churned}} {
		if f.before&b == 0 && f.after&b != 0 {
			m.stand(rows, e, v.ContactID, f.figure+v.Phase)
		}
	}
}

// openVisits selects the parts of the visits of phase still open: the visits themselves.
func openVisits(t projections.Tables, phase string) (string, []any) {
	return `SELECT contact_id, '` + figIn + `' || phase, position, event_id, '', entered_at, left_at, '', '', '', 1, 0, '', 0
		FROM ` + t.Name(visits.Table) + ` WHERE phase = ? AND left_at IS NULL`, []any{phase}
}
