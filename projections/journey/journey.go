// Package journey is the journey map read model (projection "journey"): per contact, the
// ordered visits of lifecycle phases with the touchpoints of each visit; over a cohort, for
// each phase (or each of the five journey stages) how many contacts entered and advanced, how
// long they stayed, the transition matrix and the touchpoint mix.
//
// A visit is one stay of a contact in a phase, from the event that entered it (creation for the
// first visit in lead, a phase change otherwise) to the phase change that left it. Exits (lost,
// churned) are visits too, so a win-back shows as the visit of the exit being left. Keeping the
// visits with their times lets every question be answered as of any business time T: a visit
// exists at T when it was entered at or before T, and is closed at T when it was left at or
// before T.
//
// Tables (prefix from projections.Tables):
//
//	contacts     contact_id, created_at, cohort (YYYY-MM of created_at, UTC), channel, owner and
//	             segment (current values), last_seq (the seq of the contact's latest visit)
//	visits       contact_id, seq (1, 2, ... per contact), phase, entered_at, left_at (NULL while
//	             open), next_phase, rule and reason of the phase change that left it (NULL while
//	             open; reason '' when none was given)
//	touchpoints  position (of the event in the global log: its key, so that the rows of a
//	             rebuild are appended, and the order of touchpoints of the same instant),
//	             contact_id, visit_seq (the visit current when it was recorded), touchpoint_id,
//	             kind, phase (as recorded on the event), occurred_at
//
// Times are BIGINT microseconds since the Unix epoch, UTC.
package journey

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
)

// Name is the persisted name of the projection.
const Name = "journey"

// Projection builds the journey map. The zero value is ready to use.
type Projection struct{}

var _ projections.Projection = Projection{}

// Name is the persisted name of the projection.
func (Projection) Name() string { return Name }

// Version of the tables and of the meaning of Apply.
func (Projection) Version() int { return 2 }

// Base names of the tables.
const (
	tableContacts    = "contacts"
	tableVisits      = "visits"
	tableTouchpoints = "touchpoints"
)

// Schema creates the tables. Text columns compare bytewise on both dialects (COLLATE "C" on
// PostgreSQL, SQLite's default), so that orderings agree.
func (Projection) Schema(d projections.Dialect, t projections.Tables) []string {
	text := "TEXT"
	if d == projections.Postgres {
		text = `TEXT COLLATE "C"`
	}
	return []string{
		`CREATE TABLE IF NOT EXISTS ` + t.Name(tableContacts) + ` (
			contact_id ` + text + ` PRIMARY KEY,
			created_at BIGINT NOT NULL,
			cohort ` + text + ` NOT NULL,
			channel ` + text + ` NOT NULL,
			owner ` + text + ` NOT NULL,
			segment ` + text + ` NOT NULL,
			last_seq INTEGER NOT NULL)` + projections.ClusteredByKey(d),
		`CREATE INDEX IF NOT EXISTS ` + t.Name(tableContacts) + `_cohort ON ` + t.Name(tableContacts) + ` (cohort, channel)`,
		`CREATE TABLE IF NOT EXISTS ` + t.Name(tableVisits) + ` (
			contact_id ` + text + ` NOT NULL,
			seq INTEGER NOT NULL,
			phase ` + text + ` NOT NULL,
			entered_at BIGINT NOT NULL,
			left_at BIGINT,
			next_phase ` + text + `,
			rule ` + text + `,
			reason ` + text + `,
			PRIMARY KEY (contact_id, seq))` + projections.ClusteredByKey(d),
		`CREATE TABLE IF NOT EXISTS ` + t.Name(tableTouchpoints) + ` (
			position ` + projections.PositionKey(d) + `,
			contact_id ` + text + ` NOT NULL,
			visit_seq INTEGER NOT NULL,
			touchpoint_id ` + text + ` NOT NULL,
			kind ` + text + ` NOT NULL,
			phase ` + text + ` NOT NULL,
			occurred_at BIGINT NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS ` + t.Name(tableTouchpoints) + `_contact ON ` + t.Name(tableTouchpoints) + ` (contact_id, visit_seq)`,
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
		cohort := e.OccurredAt.UTC().Format(CohortLayout)
		if err := exec(ctx, tx, `INSERT INTO `+t.Name(tableContacts)+`
			(contact_id, created_at, cohort, channel, owner, segment, last_seq) VALUES (?, ?, ?, ?, ?, ?, 1)
			ON CONFLICT (contact_id) DO UPDATE SET created_at = excluded.created_at, cohort = excluded.cohort,
				channel = excluded.channel, owner = excluded.owner, segment = excluded.segment, last_seq = 1`,
			ev.ContactID, at, cohort, string(ev.Channel), ev.Owner, ev.Segment); err != nil {
			return fmt.Errorf("insert contact %s: %w", ev.ContactID, err)
		}
		return openVisit(ctx, tx, t, ev.ContactID, 1, contact.Lead, at)
	case contact.TypeDetailsChanged:
		var ev contact.DetailsChanged
		if err := decode(e, &ev); err != nil {
			return err
		}
		if ev.Segment == nil {
			return nil
		}
		return updateContact(ctx, tx, t, ev.ContactID, "segment", *ev.Segment)
	case contact.TypeOwnerChanged:
		var ev contact.OwnerChanged
		if err := decode(e, &ev); err != nil {
			return err
		}
		return updateContact(ctx, tx, t, ev.ContactID, "owner", ev.To)
	case contact.TypePhaseChanged:
		var ev contact.PhaseChanged
		if err := decode(e, &ev); err != nil {
			return err
		}
		seq, err := lastSeq(ctx, tx, t, ev.ContactID)
		if err != nil {
			return err
		}
		if err := exec(ctx, tx, `UPDATE `+t.Name(tableVisits)+` SET left_at = ?, next_phase = ?, rule = ?, reason = ?
			WHERE contact_id = ? AND seq = ?`, at, string(ev.To), string(ev.Rule), ev.Reason, ev.ContactID, seq); err != nil {
			return fmt.Errorf("close visit of contact %s: %w", ev.ContactID, err)
		}
		if err := openVisit(ctx, tx, t, ev.ContactID, seq+1, ev.To, at); err != nil {
			return err
		}
		if err := exec(ctx, tx, `UPDATE `+t.Name(tableContacts)+` SET last_seq = ? WHERE contact_id = ?`, seq+1, ev.ContactID); err != nil {
			return fmt.Errorf("move contact %s: %w", ev.ContactID, err)
		}
		return nil
	case contact.TypeTouchpointRecorded:
		var ev contact.TouchpointRecorded
		if err := decode(e, &ev); err != nil {
			return err
		}
		seq, err := lastSeq(ctx, tx, t, ev.ContactID)
		if err != nil {
			return err
		}
		if err := exec(ctx, tx, `INSERT INTO `+t.Name(tableTouchpoints)+`
			(position, contact_id, visit_seq, touchpoint_id, kind, phase, occurred_at) VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (position) DO NOTHING`,
			e.Position, ev.ContactID, seq, ev.TouchpointID, string(ev.Kind), string(ev.Phase), at); err != nil {
			return fmt.Errorf("insert touchpoint of contact %s: %w", ev.ContactID, err)
		}
	}
	return nil
}

func decode(e eventstore.Event, v any) error {
	if err := json.Unmarshal(e.Data, v); err != nil {
		return fmt.Errorf("decode %s: %w", e.Type, err)
	}
	return nil
}

func openVisit(ctx context.Context, tx *projections.Tx, t projections.Tables, contactID string, seq int64, phase contact.Phase, at int64) error {
	if err := exec(ctx, tx, `INSERT INTO `+t.Name(tableVisits)+`
		(contact_id, seq, phase, entered_at, left_at, next_phase, rule, reason) VALUES (?, ?, ?, ?, NULL, NULL, NULL, NULL)
		ON CONFLICT (contact_id, seq) DO UPDATE SET phase = excluded.phase, entered_at = excluded.entered_at,
			left_at = NULL, next_phase = NULL, rule = NULL, reason = NULL`,
		contactID, seq, string(phase), at); err != nil {
		return fmt.Errorf("open visit of contact %s: %w", contactID, err)
	}
	return nil
}

// updateContact sets column (a constant of this file) of a contact.
func updateContact(ctx context.Context, tx *projections.Tx, t projections.Tables, contactID, column, value string) error {
	if err := exec(ctx, tx, `UPDATE `+t.Name(tableContacts)+` SET `+column+` = ? WHERE contact_id = ?`, value, contactID); err != nil {
		return fmt.Errorf("set %s of contact %s: %w", column, contactID, err)
	}
	return nil
}

func lastSeq(ctx context.Context, tx *projections.Tx, t projections.Tables, contactID string) (int64, error) {
	var seq int64
	err := queryRow(ctx, tx, `SELECT last_seq FROM `+t.Name(tableContacts)+` WHERE contact_id = ?`, contactID).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("contact %s was not created", contactID)
	}
	if err != nil {
		return 0, fmt.Errorf("read contact %s: %w", contactID, err)
	}
	return seq, nil
}
