package readmodel

import (
	"context"
	"slices"

	"github.com/eventcrm/crm/projections"
)

// prepared is a batch decoded and folded once over no stored rows: that first pass decodes
// every event (off the writer's path) and finds the rows the batch reads that it does not
// write first itself.
type prepared struct {
	m *Model
	// events are the events the writer folds again: those the first pass found the fold
	// reads or changes rows for, decodes, or refuses.
	events []Event
	// first is the state after the first pass, until Apply takes it: whole when it missed
	// nothing, else only its misses (its changes are folded again after loading them).
	first *Rows
	err   error // the first pass's refusal, final when it missed nothing before it
	// start is the checkpoint of the set the batch was prepared for (projections.Batch.Start).
	start int64
}

// PrepareBatch decodes the events of b and folds them once without any I/O: it may run while
// earlier batches are still being written.
func (m *Model) PrepareBatch(b *projections.Batch) (projections.PreparedBatch, error) {
	p := &prepared{m: m, events: make([]Event, 0, m.keptRoom(len(b.Events()))), start: b.Start()}
	rows := m.takeRows(nil)
	p.err = p.firstPass(b, rows)
	m.lastKept.Store(int64(len(p.events)) + 1)
	if len(p.events) < cap(p.events)/2 {
		p.events = slices.Clone(p.events) // what a waiting batch holds
	}
	p.first = rows
	if rows.missed {
		// While the batch waits for the writer, only the misses are kept: the pass's
		// changes go back to the pool with their room.
		p.first = rows.misses()
		m.putRows(rows)
	}
	return p, nil
}

// keptRoom is the room for the events a batch of n events keeps: as many as the last batch
// kept and a little more, so that a read model that keeps few events of a batch does not
// allocate and clear room for all of them (a batch that keeps more grows its list).
func (m *Model) keptRoom(n int) int {
	last := m.lastKept.Load() - 1 // -1: no batch yet
	if last < 0 {
		return n
	}
	return int(min(int64(n), last+last/8+16))
}

// firstPass folds the events of b into rows and keeps those the writer folds again. It
// drops the events the fold did nothing with (it neither read nor changed a row, decoded
// nor refused them): since a fold depends only on its event and the rows it reads, it does
// nothing with them in any pass. After a refusal that missed nothing, the pass stops and
// keeps the events it did not reach. The events kept lose the batch, and their data once
// decoded by a fold that went through them (see keep): the decoded values stay.
func (p *prepared) firstPass(b *projections.Batch, rows *Rows) error {
	src := b.Events()
	var (
		e       Event // one at a time: most events of a batch are not kept by every read model
		refused error
	)
	for i := range src {
		e = eventOf(&src[i])
		e.batch, e.index = b, i
		rows.touched = false
		err := p.m.spec.Fold(&e, rows)
		if rows.touched || e.decoded != nil || e.rawRead || err != nil {
			p.keep(e, err == nil)
		}
		if err == nil {
			continue
		}
		if !rows.missed {
			for j := i + 1; j < len(src); j++ {
				p.keep(eventOf(&src[j]), false)
			}
			return err
		}
		if refused == nil {
			refused = err
		}
	}
	return refused
}

// keep keeps e for the writer's passes. Its data is let go only when the fold went through
// it (folded is true: a fold stopped by a missing row may decode another type next time) and
// decoded it once, without reading it as recorded.
func (p *prepared) keep(e Event, folded bool) {
	e.batch = nil
	if folded && e.decoded != nil && !e.decodedTwice && !e.rawRead {
		e.data = nil
	}
	p.events = append(p.events, e)
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
// which parks the refused event alone. A batch of a set a builder writes from empty writes
// the counters it adds to for the first time as new rows (see fresh); a failure forgets what
// the build knew of the set.
func (p *prepared) Apply(ctx context.Context, tx *projections.Tx, t projections.Tables) error {
	var f *fresh
	if p.start >= 0 {
		f = p.m.freshFor(t, p.start)
	}
	if err := p.apply(ctx, tx, t, f); err != nil {
		if f != nil {
			p.m.EndBuild(t)
		}
		return err
	}
	return nil
}

func (p *prepared) apply(ctx context.Context, tx *projections.Tx, t projections.Tables, f *fresh) error {
	rows, err := p.first, p.err
	p.first = nil
	switch {
	case rows == nil:
		// Applied again (its transaction was rolled back): start from what is stored now.
		rows, err = p.fold(p.m.takeRows(nil))
	case rows.missed:
		// The misses move to pooled rows, which have room for the changes.
		misses := rows
		rows = p.m.takeRows(nil)
		rows.addMisses(misses)
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
	return rows.write(ctx, tx, t, true, f)
}
