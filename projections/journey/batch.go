package journey

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/projections"
)

// The batch path of rebuilds: the same fold as Apply, over rows loaded once per batch and
// written once each (multi-row upserts of whole rows, so a row's last image wins as Apply's
// statements would leave it). Anything Apply would refuse, or a row it cannot know from
// what it loaded, makes the batch fail: the rebuild then applies it event by event.

var _ projections.BatchProjection = Projection{}

// errUnsure: the batch met a case it does not fold itself.
var errUnsure = errors.New("journey batch: case left to Apply")

type opKind int

const (
	opCreate opKind = iota
	opSegment
	opOwner
	opPhase
	opTouchpoint
)

// op is one event as the journey folds it, in few words: the batches in flight hold one
// per event.
type op struct {
	kind    opKind
	at      int64
	pos     int64
	contact string
	// create: channel, owner, segment, cohort; segment/owner: a = the value; phase: to,
	// rule, reason; touchpoint: b, c, d = touchpoint id, kind, phase.
	a, b, c, d string
}

type prepared struct {
	ops      []op
	contacts []string // contact ids the batch reads, once each
}

// PrepareBatch decodes the events the journey map folds.
func (Projection) PrepareBatch(batch *projections.Batch) (projections.PreparedBatch, error) {
	events := batch.Events()
	b := &prepared{ops: make([]op, 0, len(events))}
	seen := map[string]bool{}
	add := func(o op) {
		b.ops = append(b.ops, o)
		if !seen[o.contact] {
			seen[o.contact] = true
			b.contacts = append(b.contacts, o.contact)
		}
	}
	for i, e := range events {
		at := e.OccurredAt.UnixMicro()
		switch e.Type {
		case contact.TypeCreated:
			ev, err := projections.Decode[contact.Created](batch, i)
			if err != nil {
				return nil, err
			}
			add(op{kind: opCreate, at: at, contact: ev.ContactID, a: string(ev.Channel), b: ev.Owner, c: ev.Segment,
				d: e.OccurredAt.UTC().Format(CohortLayout)})
		case contact.TypeDetailsChanged:
			ev, err := projections.Decode[contact.DetailsChanged](batch, i)
			if err != nil {
				return nil, err
			}
			if ev.Segment != nil {
				add(op{kind: opSegment, at: at, contact: ev.ContactID, a: *ev.Segment})
			}
		case contact.TypeOwnerChanged:
			ev, err := projections.Decode[contact.OwnerChanged](batch, i)
			if err != nil {
				return nil, err
			}
			add(op{kind: opOwner, at: at, contact: ev.ContactID, a: ev.To})
		case contact.TypePhaseChanged:
			ev, err := projections.Decode[contact.PhaseChanged](batch, i)
			if err != nil {
				return nil, err
			}
			add(op{kind: opPhase, at: at, contact: ev.ContactID, a: string(ev.To), b: string(ev.Rule), c: ev.Reason})
		case contact.TypeTouchpointRecorded:
			ev, err := projections.Decode[contact.TouchpointRecorded](batch, i)
			if err != nil {
				return nil, err
			}
			add(op{kind: opTouchpoint, at: at, pos: e.Position, contact: ev.ContactID, b: ev.TouchpointID,
				c: string(ev.Kind), d: string(ev.Phase)})
		}
	}
	return b, nil
}

type contactRow struct {
	createdAt                       int64
	cohort, channel, owner, segment string
	lastSeq                         int64
	dirty                           bool
	stored                          bool // the row is in the table already
}

type visitKey struct {
	contact string
	seq     int64
}

type visitRow struct {
	phase              string
	entered            int64
	left               sql.NullInt64
	next, rule, reason sql.NullString
	dirty              bool
	stored             bool // the row is in the table already
}

// Apply folds the batch into set t.
func (b *prepared) Apply(ctx context.Context, tx *projections.Tx, t projections.Tables) error {
	contacts := make(map[string]*contactRow, len(b.contacts))
	visits := make(map[visitKey]*visitRow, len(b.contacts))
	known := make(map[visitKey]bool, len(b.contacts))
	if err := load(ctx, tx, t, b.contacts, contacts, visits, known); err != nil {
		return err
	}
	open := func(id string, seq int64, phase contact.Phase, at int64) {
		k := visitKey{id, seq}
		visits[k] = &visitRow{phase: string(phase), entered: at, dirty: true, stored: visits[k] != nil && visits[k].stored}
		known[k] = true
	}
	var touchRows []any
	for i := range b.ops {
		o := &b.ops[i]
		c := contacts[o.contact]
		switch o.kind {
		case opCreate:
			contacts[o.contact] = &contactRow{createdAt: o.at, cohort: o.d, channel: o.a, owner: o.b, segment: o.c, lastSeq: 1, dirty: true,
				stored: c != nil && c.stored}
			open(o.contact, 1, contact.Lead, o.at)
		case opSegment, opOwner:
			if c == nil {
				continue // Apply's UPDATE changes no row
			}
			if o.kind == opSegment {
				c.segment = o.a
			} else {
				c.owner = o.a
			}
			c.dirty = true
		case opPhase:
			if c == nil {
				return errUnsure // Apply: "contact was not created"
			}
			k := visitKey{o.contact, c.lastSeq}
			switch v := visits[k]; {
			case v != nil:
				v.left = sql.NullInt64{Int64: o.at, Valid: true}
				v.next = sql.NullString{String: o.a, Valid: true}
				v.rule = sql.NullString{String: o.b, Valid: true}
				v.reason = sql.NullString{String: o.c, Valid: true}
				v.dirty = true
			case !known[k]:
				return errUnsure
			}
			open(o.contact, c.lastSeq+1, contact.Phase(o.a), o.at)
			c.lastSeq++
			c.dirty = true
		case opTouchpoint:
			if c == nil {
				return errUnsure // Apply: "contact was not created"
			}
			touchRows = append(touchRows, o.pos, o.contact, c.lastSeq, o.b, o.c, o.d, o.at)
		}
	}

	// Rows already stored are upserted, new ones inserted (copied on PostgreSQL). A row
	// thought new but stored after all fails the insert: the batch then goes to Apply.
	var contactRows [2][]any
	for _, id := range b.contacts {
		c := contacts[id]
		if c == nil || !c.dirty {
			continue
		}
		i := bit(c.stored)
		contactRows[i] = append(contactRows[i], id, c.createdAt, c.cohort, c.channel, c.owner, c.segment, c.lastSeq)
	}
	contactColumns := []string{"contact_id", "created_at", "cohort", "channel", "owner", "segment", "last_seq"}
	if err := insertBoth(ctx, tx, t.Name(tableContacts), contactColumns, 1, contactRows); err != nil {
		return err
	}
	var visitRows [2][]any
	for k, v := range visits {
		if !v.dirty {
			continue
		}
		i := bit(v.stored)
		visitRows[i] = append(visitRows[i], k.contact, k.seq, v.phase, v.entered, projections.NullInt64(v.left.Int64, v.left.Valid),
			projections.NullString(v.next.String, v.next.Valid), projections.NullString(v.rule.String, v.rule.Valid),
			projections.NullString(v.reason.String, v.reason.Valid))
	}
	visitColumns := []string{"contact_id", "seq", "phase", "entered_at", "left_at", "next_phase", "rule", "reason"}
	if err := insertBoth(ctx, tx, t.Name(tableVisits), visitColumns, 2, visitRows); err != nil {
		return err
	}
	// An event is applied once per set: its touchpoint is new (Apply's DO NOTHING never
	// applies; were it stored, the insert fails and Apply decides).
	return tx.Insert(ctx, t.Name(tableTouchpoints), []string{"position", "contact_id", "visit_seq", "touchpoint_id", "kind",
		"phase", "occurred_at"}, 1, projections.ConflictFail, touchRows)
}

// insertBoth inserts rows[0] (new) and upserts rows[1] (stored).
func insertBoth(ctx context.Context, tx *projections.Tx, table string, columns []string, key int, rows [2][]any) error {
	if err := tx.Insert(ctx, table, columns, key, projections.ConflictFail, rows[0]); err != nil {
		return err
	}
	return tx.Insert(ctx, table, columns, key, projections.ConflictUpdate, rows[1])
}

func bit(b bool) int {
	if b {
		return 1
	}
	return 0
}

// load reads the stored contacts of ids with their latest visit.
func load(ctx context.Context, tx *projections.Tx, t projections.Tables, ids []string, contacts map[string]*contactRow,
	visits map[visitKey]*visitRow, known map[visitKey]bool) error {
	if len(ids) == 0 {
		return nil
	}
	cond, arg, err := tx.InKeys("c.contact_id", ids)
	if err != nil {
		return err
	}
	rows, err := tx.Query(ctx, `SELECT c.contact_id, c.created_at, c.cohort, c.channel, c.owner, c.segment, c.last_seq,
		v.seq, v.phase, v.entered_at, v.left_at, v.next_phase, v.rule, v.reason
		FROM `+t.Name(tableContacts)+` c LEFT JOIN `+t.Name(tableVisits)+` v ON v.contact_id = c.contact_id AND v.seq = c.last_seq
		WHERE `+cond, arg)
	if err != nil {
		return fmt.Errorf("load contacts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id      string
			c       contactRow
			seq     sql.NullInt64
			phase   sql.NullString
			entered sql.NullInt64
			v       visitRow
		)
		if err := rows.Scan(&id, &c.createdAt, &c.cohort, &c.channel, &c.owner, &c.segment, &c.lastSeq,
			&seq, &phase, &entered, &v.left, &v.next, &v.rule, &v.reason); err != nil {
			return fmt.Errorf("load contacts: %w", err)
		}
		c.stored = true
		contacts[id] = &c
		k := visitKey{id, c.lastSeq}
		known[k] = true
		if seq.Valid {
			v.phase, v.entered, v.stored = phase.String, entered.Int64, true
			visits[k] = &v
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load contacts: %w", err)
	}
	return nil
}
