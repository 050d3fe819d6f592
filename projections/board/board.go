// Package board is the pipeline board read model (projection "pipeline_board"): the open deals
// of each pipeline stage as cards, with counts, totals and weighted totals per currency, and
// the stage velocity (median days spent in a stage by the deals that left it).
//
// The tables keep every stay of a deal in an open stage as an interval, so the board can be
// answered as of any business time T: a deal is on the board at T in the stage whose interval
// contains T (entered at or before T, not left at or before T).
//
// Tables (prefix from projections.Tables):
//
//	contacts   contact_id, name: the current name, for the cards
//	deals      deal_id, contact_id, title, owner, expected_close ('' when none), amount and
//	           currency (the final amount once won), stage (current, won or lost included),
//	           last_seq (the seq of the deal's latest interval)
//	intervals  deal_id, seq (1, 2, ... per deal), stage (an open stage), entered_at, left_at
//	           (NULL while the deal is in it), amount and currency during the stay, and the
//	           deal's owner (so that one owner's board reads only the owner's intervals)
//
// Times are BIGINT microseconds since the Unix epoch, UTC.
package board

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/domain/deal"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
)

// Name is the persisted name of the projection.
const Name = "pipeline_board"

// Projection builds the pipeline board. The zero value is ready to use.
type Projection struct{}

var _ projections.Projection = Projection{}

// Name is the persisted name of the projection.
func (Projection) Name() string { return Name }

// Version of the tables and of the meaning of Apply.
func (Projection) Version() int { return 2 }

// Base names of the tables.
const (
	tableContacts  = "contacts"
	tableDeals     = "deals"
	tableIntervals = "intervals"
)

// Schema creates the tables. Text columns compare bytewise on both dialects (COLLATE "C" on
// PostgreSQL, SQLite's default), so that ordering and paging agree.
func (Projection) Schema(d projections.Dialect, t projections.Tables) []string {
	text := "TEXT"
	if d == projections.Postgres {
		text = `TEXT COLLATE "C"`
	}
	return []string{
		`CREATE TABLE IF NOT EXISTS ` + t.Name(tableContacts) + ` (
			contact_id ` + text + ` PRIMARY KEY,
			name ` + text + ` NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS ` + t.Name(tableDeals) + ` (
			deal_id ` + text + ` PRIMARY KEY,
			contact_id ` + text + ` NOT NULL,
			title ` + text + ` NOT NULL,
			owner ` + text + ` NOT NULL,
			expected_close ` + text + ` NOT NULL,
			amount BIGINT NOT NULL,
			currency ` + text + ` NOT NULL,
			stage ` + text + ` NOT NULL,
			last_seq INTEGER NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS ` + t.Name(tableIntervals) + ` (
			deal_id ` + text + ` NOT NULL,
			seq INTEGER NOT NULL,
			stage ` + text + ` NOT NULL,
			entered_at BIGINT NOT NULL,
			left_at BIGINT,
			amount BIGINT NOT NULL,
			currency ` + text + ` NOT NULL,
			owner ` + text + ` NOT NULL,
			PRIMARY KEY (deal_id, seq))`,
		`CREATE INDEX IF NOT EXISTS ` + t.Name(tableIntervals) + `_stage ON ` + t.Name(tableIntervals) + ` (stage, entered_at, deal_id)`,
		// The board now (Present), of everyone and of one owner: the open intervals of a stage
		// in card order; the closed ones by the time they were left, covering the velocity
		// (and the horizon).
		`CREATE INDEX IF NOT EXISTS ` + t.Name(tableIntervals) + `_open ON ` + t.Name(tableIntervals) + ` (stage, entered_at, deal_id) WHERE left_at IS NULL`,
		`CREATE INDEX IF NOT EXISTS ` + t.Name(tableIntervals) + `_owner_open ON ` + t.Name(tableIntervals) + ` (owner, stage, entered_at, deal_id) WHERE left_at IS NULL`,
		`CREATE INDEX IF NOT EXISTS ` + t.Name(tableIntervals) + `_closed ON ` + t.Name(tableIntervals) + ` (stage, left_at, entered_at) WHERE left_at IS NOT NULL`,
		`CREATE INDEX IF NOT EXISTS ` + t.Name(tableIntervals) + `_owner_closed ON ` + t.Name(tableIntervals) + ` (owner, stage, left_at, entered_at) WHERE left_at IS NOT NULL`,
	}
}

// Apply folds one event into the tables. Events of other types are ignored.
func (Projection) Apply(ctx context.Context, tx *projections.Tx, t projections.Tables, e eventstore.Event) error {
	at := e.OccurredAt.UnixMicro()
	switch e.Type {
	case contact.TypeCreated:
		var ev contact.Created
		if err := decode(e, &ev); err != nil {
			return err
		}
		return setContactName(ctx, tx, t, ev.ContactID, ev.Name)
	case contact.TypeDetailsChanged:
		var ev contact.DetailsChanged
		if err := decode(e, &ev); err != nil {
			return err
		}
		if ev.Name == nil {
			return nil
		}
		return setContactName(ctx, tx, t, ev.ContactID, *ev.Name)
	case deal.TypeOpened:
		var ev deal.Opened
		if err := decode(e, &ev); err != nil {
			return err
		}
		if err := exec(ctx, tx, `INSERT INTO `+t.Name(tableDeals)+`
			(deal_id, contact_id, title, owner, expected_close, amount, currency, stage, last_seq)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)
			ON CONFLICT (deal_id) DO UPDATE SET contact_id = excluded.contact_id, title = excluded.title,
				owner = excluded.owner, expected_close = excluded.expected_close, amount = excluded.amount,
				currency = excluded.currency, stage = excluded.stage, last_seq = 0`,
			ev.DealID, ev.ContactID, ev.Title, ev.Owner, string(ev.ExpectedClose), ev.Amount.Amount,
			ev.Amount.Currency, string(ev.Stage)); err != nil {
			return fmt.Errorf("insert deal %s: %w", ev.DealID, err)
		}
		return moveTo(ctx, tx, t, ev.DealID, ev.Stage, at)
	case deal.TypeStageChanged:
		var ev deal.StageChanged
		if err := decode(e, &ev); err != nil {
			return err
		}
		return moveTo(ctx, tx, t, ev.DealID, ev.To, at)
	case deal.TypeReopened:
		var ev deal.Reopened
		if err := decode(e, &ev); err != nil {
			return err
		}
		return moveTo(ctx, tx, t, ev.DealID, ev.To, at)
	case deal.TypeWon:
		var ev deal.Won
		if err := decode(e, &ev); err != nil {
			return err
		}
		// The final amount is the deal's amount from now on, also after a reopening.
		if err := exec(ctx, tx, `UPDATE `+t.Name(tableDeals)+` SET amount = ?, currency = ? WHERE deal_id = ?`,
			ev.Amount.Amount, ev.Amount.Currency, ev.DealID); err != nil {
			return fmt.Errorf("set final amount of deal %s: %w", ev.DealID, err)
		}
		return moveTo(ctx, tx, t, ev.DealID, deal.StageWon, at)
	case deal.TypeLost:
		var ev deal.Lost
		if err := decode(e, &ev); err != nil {
			return err
		}
		return moveTo(ctx, tx, t, ev.DealID, deal.StageLost, at)
	}
	return nil
}

func decode(e eventstore.Event, v any) error {
	if err := json.Unmarshal(e.Data, v); err != nil {
		return fmt.Errorf("decode %s: %w", e.Type, err)
	}
	return nil
}

func setContactName(ctx context.Context, tx *projections.Tx, t projections.Tables, contactID, name string) error {
	if err := exec(ctx, tx, `INSERT INTO `+t.Name(tableContacts)+` (contact_id, name) VALUES (?, ?)
		ON CONFLICT (contact_id) DO UPDATE SET name = excluded.name`, contactID, name); err != nil {
		return fmt.Errorf("set name of contact %s: %w", contactID, err)
	}
	return nil
}

// moveTo closes the deal's current interval, if open, at at and records stage as the deal's
// stage; an open stage starts a new interval there.
func moveTo(ctx context.Context, tx *projections.Tx, t projections.Tables, dealID string, stage deal.Stage, at int64) error {
	var (
		lastSeq         int64
		amount          int64
		currency, owner string
	)
	err := queryRow(ctx, tx, `SELECT last_seq, amount, currency, owner FROM `+t.Name(tableDeals)+` WHERE deal_id = ?`, dealID).
		Scan(&lastSeq, &amount, &currency, &owner)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("deal %s was not opened", dealID)
	}
	if err != nil {
		return fmt.Errorf("read deal %s: %w", dealID, err)
	}
	if err := exec(ctx, tx, `UPDATE `+t.Name(tableIntervals)+` SET left_at = ? WHERE deal_id = ? AND seq = ? AND left_at IS NULL`,
		at, dealID, lastSeq); err != nil {
		return fmt.Errorf("close interval of deal %s: %w", dealID, err)
	}
	if stage.IsOpen() {
		lastSeq++
		if err := exec(ctx, tx, `INSERT INTO `+t.Name(tableIntervals)+`
			(deal_id, seq, stage, entered_at, left_at, amount, currency, owner) VALUES (?, ?, ?, ?, NULL, ?, ?, ?)
			ON CONFLICT (deal_id, seq) DO UPDATE SET stage = excluded.stage, entered_at = excluded.entered_at,
				left_at = NULL, amount = excluded.amount, currency = excluded.currency, owner = excluded.owner`,
			dealID, lastSeq, string(stage), at, amount, currency, owner); err != nil {
			return fmt.Errorf("open interval of deal %s: %w", dealID, err)
		}
	}
	if err := exec(ctx, tx, `UPDATE `+t.Name(tableDeals)+` SET stage = ?, last_seq = ? WHERE deal_id = ?`,
		string(stage), lastSeq, dealID); err != nil {
		return fmt.Errorf("move deal %s: %w", dealID, err)
	}
	return nil
}
