package readmodel

import (
	"context"

	"github.com/eventcrm/crm/projections"
)

// prepared is a batch decoded and folded once over no stored rows: that first pass decodes
// every event (off the writer's path) and finds the rows the batch reads that it does not
// write first itself.
type prepared struct {
	m      *Model
	events []Event
	// first is the state after the first pass, until Apply takes it.
	first *Rows
	err   error // the first pass's refusal, final when it missed nothing before it
}

// PrepareBatch decodes the events of b and folds them once without any I/O: it may run while
// earlier batches are still being written.
func (m *Model) PrepareBatch(b *projections.Batch) (projections.PreparedBatch, error) {
	src := b.Events()
	p := &prepared{m: m, events: make([]Event, len(src))}
	for i := range src {
		p.events[i] = eventOf(&src[i])
		p.events[i].batch, p.events[i].index = b, i
	}
	p.first, p.err = p.fold(m.takeRows(nil))
	// The decoded values are kept by the events: the batch (and the events' other fields)
	// can go.
	for i := range p.events {
		p.events[i].batch = nil
	}
	return p, nil
}

// fold folds every event of the batch into rows. A refusal ends the pass only when the pass
// missed no row before it: otherwise it may come from a row not loaded yet, and the pass goes
// on to find what else is missing.
func (p *prepared) fold(rows *Rows) (*Rows, error) {
	var refused error
	for i := range p.events {
		if err := p.m.spec.Fold(&p.events[i], rows); err != nil {
			if !rows.missed {
				return rows, err
			}
			if refused == nil {
				refused = err
			}
		}
	}
	return rows, refused
}

// Apply writes the batch into set t inside tx: it loads what the last pass missed and folds
// the batch again, until a pass misses nothing, then writes each changed row once. Any
// refusal fails the batch: the runtime then applies its events one by one on the live path,
// which parks the refused event alone.
func (p *prepared) Apply(ctx context.Context, tx *projections.Tx, t projections.Tables) error {
	rows, err := p.first, p.err
	p.first = nil
	if rows == nil {
		// Applied again (its transaction was rolled back): start from what is stored now.
		rows, err = p.fold(p.m.takeRows(nil))
	}
	defer p.m.putRows(rows)
	for rows.missed {
		if err := rows.loadMisses(ctx, tx, t); err != nil {
			return err
		}
		rows.reset()
		rows, err = p.fold(rows)
	}
	if err != nil {
		return err
	}
	return rows.write(ctx, tx, t, true)
}
