package board

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/domain/deal"
	"github.com/eventcrm/crm/projections"
)

// The batch path of rebuilds: the same fold as Apply, over rows loaded once per batch and
// written once each (multi-row upserts of whole rows, so a row's last image wins as Apply's
// statements would leave it). Anything Apply would refuse, or a row it cannot know from
// what it loaded, makes the batch fail: the rebuild then applies it event by event.

var _ projections.BatchProjection = Projection{}

// errUnsure: the batch met a case it does not fold itself.
var errUnsure = errors.New("board batch: case left to Apply")

type opKind int

const (
	opName opKind = iota
	opOpen
	opMove
	opWon
)

// op is one event as the board folds it.
type op struct {
	kind   opKind
	at     int64
	id     string // contact id (opName) or deal id
	name   string
	opened deal.Opened
	to     deal.Stage
	amount int64
	curr   string
}

type prepared struct {
	ops   []op
	deals []string // deal ids the batch reads, once each
}

// PrepareBatch decodes the events the board folds.
func (Projection) PrepareBatch(batch *projections.Batch) (projections.PreparedBatch, error) {
	events := batch.Events()
	b := &prepared{ops: make([]op, 0, len(events)/4)}
	seen := map[string]bool{}
	addDeal := func(id string) {
		if !seen[id] {
			seen[id] = true
			b.deals = append(b.deals, id)
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
			b.ops = append(b.ops, op{kind: opName, at: at, id: ev.ContactID, name: ev.Name})
		case contact.TypeDetailsChanged:
			ev, err := projections.Decode[contact.DetailsChanged](batch, i)
			if err != nil {
				return nil, err
			}
			if ev.Name != nil {
				b.ops = append(b.ops, op{kind: opName, at: at, id: ev.ContactID, name: *ev.Name})
			}
		case deal.TypeOpened:
			ev, err := projections.Decode[deal.Opened](batch, i)
			if err != nil {
				return nil, err
			}
			b.ops = append(b.ops, op{kind: opOpen, at: at, id: ev.DealID, opened: *ev})
			addDeal(ev.DealID)
		case deal.TypeStageChanged:
			ev, err := projections.Decode[deal.StageChanged](batch, i)
			if err != nil {
				return nil, err
			}
			b.ops = append(b.ops, op{kind: opMove, at: at, id: ev.DealID, to: ev.To})
			addDeal(ev.DealID)
		case deal.TypeReopened:
			ev, err := projections.Decode[deal.Reopened](batch, i)
			if err != nil {
				return nil, err
			}
			b.ops = append(b.ops, op{kind: opMove, at: at, id: ev.DealID, to: ev.To})
			addDeal(ev.DealID)
		case deal.TypeWon:
			ev, err := projections.Decode[deal.Won](batch, i)
			if err != nil {
				return nil, err
			}
			b.ops = append(b.ops, op{kind: opWon, at: at, id: ev.DealID, amount: ev.Amount.Amount, curr: ev.Amount.Currency})
			addDeal(ev.DealID)
		case deal.TypeLost:
			ev, err := projections.Decode[deal.Lost](batch, i)
			if err != nil {
				return nil, err
			}
			b.ops = append(b.ops, op{kind: opMove, at: at, id: ev.DealID, to: deal.StageLost})
			addDeal(ev.DealID)
		}
	}
	return b, nil
}

type dealRow struct {
	contactID, title, owner, expectedClose string
	amount                                 int64
	currency, stage                        string
	lastSeq                                int64
	dirty                                  bool
	stored                                 bool // the row is in the table already
}

type intervalKey struct {
	deal string
	seq  int64
}

type intervalRow struct {
	stage    string
	owner    string
	entered  int64
	left     sql.NullInt64
	amount   int64
	currency string
	dirty    bool
	stored   bool // the row is in the table already
}

// Apply folds the batch into set t.
func (b *prepared) Apply(ctx context.Context, tx *projections.Tx, t projections.Tables) error {
	deals := make(map[string]*dealRow, len(b.deals))
	intervals := make(map[intervalKey]*intervalRow, len(b.deals))
	// known holds the interval keys whose stored state the batch knows (loaded or absent).
	known := make(map[intervalKey]bool, len(b.deals))
	if err := loadDeals(ctx, tx, t, b.deals, deals, intervals, known); err != nil {
		return err
	}
	names := map[string]string{}
	var nameOrder []string
	for i := range b.ops {
		o := &b.ops[i]
		switch o.kind {
		case opName:
			if _, ok := names[o.id]; !ok {
				nameOrder = append(nameOrder, o.id)
			}
			names[o.id] = o.name
		case opOpen:
			ev := &o.opened
			stored := deals[o.id] != nil && deals[o.id].stored
			deals[o.id] = &dealRow{contactID: ev.ContactID, title: ev.Title, owner: ev.Owner, expectedClose: string(ev.ExpectedClose),
				amount: ev.Amount.Amount, currency: ev.Amount.Currency, stage: string(ev.Stage), dirty: true, stored: stored}
			if err := move(deals, intervals, known, o.id, ev.Stage, o.at); err != nil {
				return err
			}
		case opMove:
			if err := move(deals, intervals, known, o.id, o.to, o.at); err != nil {
				return err
			}
		case opWon:
			d := deals[o.id]
			if d == nil {
				return errUnsure // Apply: "deal was not opened"
			}
			d.amount, d.currency, d.dirty = o.amount, o.curr, true
			if err := move(deals, intervals, known, o.id, deal.StageWon, o.at); err != nil {
				return err
			}
		}
	}

	contactRows := make([]any, 0, 2*len(names))
	for _, id := range nameOrder {
		contactRows = append(contactRows, id, names[id])
	}
	if err := tx.Insert(ctx, t.Name(tableContacts), []string{"contact_id", "name"}, 1, projections.ConflictUpdate, contactRows); err != nil {
		return err
	}
	// Rows already stored are upserted, new ones inserted (copied on PostgreSQL). A row
	// thought new but stored after all fails the insert: the batch then goes to Apply.
	var dealRows [2][]any
	for _, id := range b.deals {
		d := deals[id]
		if d == nil || !d.dirty {
			continue
		}
		dealRows[bit(d.stored)] = append(dealRows[bit(d.stored)], id, d.contactID, d.title, d.owner, d.expectedClose, d.amount,
			d.currency, d.stage, d.lastSeq)
	}
	dealColumns := []string{"deal_id", "contact_id", "title", "owner", "expected_close", "amount", "currency", "stage", "last_seq"}
	if err := tx.Insert(ctx, t.Name(tableDeals), dealColumns, 1, projections.ConflictFail, dealRows[0]); err != nil {
		return err
	}
	if err := tx.Insert(ctx, t.Name(tableDeals), dealColumns, 1, projections.ConflictUpdate, dealRows[1]); err != nil {
		return err
	}
	var intervalRows [2][]any
	for k, iv := range intervals {
		if !iv.dirty {
			continue
		}
		intervalRows[bit(iv.stored)] = append(intervalRows[bit(iv.stored)], k.deal, k.seq, iv.stage, iv.entered,
			projections.NullInt64(iv.left.Int64, iv.left.Valid), iv.amount, iv.currency, iv.owner)
	}
	intervalColumns := []string{"deal_id", "seq", "stage", "entered_at", "left_at", "amount", "currency", "owner"}
	if err := tx.Insert(ctx, t.Name(tableIntervals), intervalColumns, 2, projections.ConflictFail, intervalRows[0]); err != nil {
		return err
	}
	return tx.Insert(ctx, t.Name(tableIntervals), intervalColumns, 2, projections.ConflictUpdate, intervalRows[1])
}

func bit(b bool) int {
	if b {
		return 1
	}
	return 0
}

// move is moveTo over the batch's rows.
func move(deals map[string]*dealRow, intervals map[intervalKey]*intervalRow, known map[intervalKey]bool, id string, stage deal.Stage, at int64) error {
	d := deals[id]
	if d == nil {
		return errUnsure // Apply: "deal was not opened"
	}
	if d.lastSeq > 0 {
		k := intervalKey{id, d.lastSeq}
		iv := intervals[k]
		switch {
		case iv != nil:
			if !iv.left.Valid {
				iv.left = sql.NullInt64{Int64: at, Valid: true}
				iv.dirty = true
			}
		case !known[k]:
			return errUnsure
		}
	}
	if stage.IsOpen() {
		d.lastSeq++
		k := intervalKey{id, d.lastSeq}
		stored := intervals[k] != nil && intervals[k].stored
		intervals[k] = &intervalRow{stage: string(stage), owner: d.owner, entered: at, amount: d.amount, currency: d.currency,
			dirty: true, stored: stored}
		known[k] = true
	}
	d.stage = string(stage)
	d.dirty = true
	return nil
}

// loadDeals reads the stored deals of ids with their latest interval.
func loadDeals(ctx context.Context, tx *projections.Tx, t projections.Tables, ids []string, deals map[string]*dealRow,
	intervals map[intervalKey]*intervalRow, known map[intervalKey]bool) error {
	if len(ids) == 0 {
		return nil
	}
	cond, arg, err := tx.InKeys("d.deal_id", ids)
	if err != nil {
		return err
	}
	rows, err := tx.Query(ctx, `SELECT d.deal_id, d.contact_id, d.title, d.owner, d.expected_close, d.amount, d.currency, d.stage,
		d.last_seq, i.seq, i.stage, i.entered_at, i.left_at, i.amount, i.currency, i.owner
		FROM `+t.Name(tableDeals)+` d LEFT JOIN `+t.Name(tableIntervals)+` i ON i.deal_id = d.deal_id AND i.seq = d.last_seq
		WHERE `+cond, arg)
	if err != nil {
		return fmt.Errorf("load deals: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id              string
			d               dealRow
			seq, ent, amt   sql.NullInt64
			ivStage, ivCurr sql.NullString
			ivOwner         sql.NullString
			left            sql.NullInt64
		)
		if err := rows.Scan(&id, &d.contactID, &d.title, &d.owner, &d.expectedClose, &d.amount, &d.currency, &d.stage, &d.lastSeq,
			&seq, &ivStage, &ent, &left, &amt, &ivCurr, &ivOwner); err != nil {
			return fmt.Errorf("load deals: %w", err)
		}
		d.stored = true
		deals[id] = &d
		k := intervalKey{id, d.lastSeq}
		known[k] = true
		if seq.Valid {
			intervals[k] = &intervalRow{stage: ivStage.String, owner: ivOwner.String, entered: ent.Int64, left: left, amount: amt.Int64,
				currency: ivCurr.String, stored: true}
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load deals: %w", err)
	}
	return nil
}
