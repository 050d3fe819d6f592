// Package churn is the churn points read model (projection "churn_points"): where customers drop
// out. Per lifecycle phase, the contacts whose journey ended there (lost, churned, or dormant as
// of a date) over those that entered it; the deals lost by stage and reason; and, per churn,
// the facts around it (time since won, last NPS, last touchpoint, overdue tasks).
//
// Every table keeps times, so that any question can be answered as of a business time T, and
// dormancy, which depends on T, is computed at query time only.
//
// Tables (prefix from projections.Tables):
//
//	contacts     contact_id, name (current), created_at, cohort (YYYY-MM of created_at, UTC),
//	             channel, last_seq (the seq of the contact's latest visit)
//	visits       contact_id, seq (1, 2, ... per contact), phase (a lifecycle phase or an exit),
//	             entered_at, left_at and next_phase (NULL while open)
//	touchpoints  position (of the event in the global log: the key, so that the rows of a
//	             rebuild are appended), contact_id, occurred_at
//	surveys      position (the same; it also orders surveys of the same instant), contact_id,
//	             nps, occurred_at
//	tasks        contact_id, task_id, due (YYYY-MM-DD), overdue_at (the start of the day after
//	             due, UTC: from then on an open task is overdue), scheduled_at, completed_at
//	             (NULL while open)
//	deal_losses  deal_id, seq (1, 2, ... per deal), contact_id, from_stage, reason, amount,
//	             currency, lost_at, reopened_at (NULL while the deal stays lost)
//
// Times are BIGINT microseconds since the Unix epoch, UTC.
package churn

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/domain/deal"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
)

// Name is the persisted name of the projection.
const Name = "churn_points"

// Projection builds the churn points. The zero value is ready to use.
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
	tableSurveys     = "surveys"
	tableTasks       = "tasks"
	tableDealLosses  = "deal_losses"
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
			name ` + text + ` NOT NULL,
			created_at BIGINT NOT NULL,
			cohort ` + text + ` NOT NULL,
			channel ` + text + ` NOT NULL,
			last_seq INTEGER NOT NULL)` + projections.ClusteredByKey(d),
		`CREATE INDEX IF NOT EXISTS ` + t.Name(tableContacts) + `_cohort ON ` + t.Name(tableContacts) + ` (cohort, channel)`,
		`CREATE TABLE IF NOT EXISTS ` + t.Name(tableVisits) + ` (
			contact_id ` + text + ` NOT NULL,
			seq INTEGER NOT NULL,
			phase ` + text + ` NOT NULL,
			entered_at BIGINT NOT NULL,
			left_at BIGINT,
			next_phase ` + text + `,
			PRIMARY KEY (contact_id, seq))` + projections.ClusteredByKey(d),
		`CREATE TABLE IF NOT EXISTS ` + t.Name(tableTouchpoints) + ` (
			position ` + projections.PositionKey(d) + `,
			contact_id ` + text + ` NOT NULL,
			occurred_at BIGINT NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS ` + t.Name(tableTouchpoints) + `_contact ON ` + t.Name(tableTouchpoints) + ` (contact_id, occurred_at)`,
		`CREATE TABLE IF NOT EXISTS ` + t.Name(tableSurveys) + ` (
			position ` + projections.PositionKey(d) + `,
			contact_id ` + text + ` NOT NULL,
			nps INTEGER NOT NULL,
			occurred_at BIGINT NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS ` + t.Name(tableSurveys) + `_contact ON ` + t.Name(tableSurveys) + ` (contact_id, occurred_at)`,
		`CREATE TABLE IF NOT EXISTS ` + t.Name(tableTasks) + ` (
			contact_id ` + text + ` NOT NULL,
			task_id ` + text + ` NOT NULL,
			due ` + text + ` NOT NULL,
			overdue_at BIGINT NOT NULL,
			scheduled_at BIGINT NOT NULL,
			completed_at BIGINT,
			PRIMARY KEY (contact_id, task_id))`,
		`CREATE TABLE IF NOT EXISTS ` + t.Name(tableDealLosses) + ` (
			deal_id ` + text + ` NOT NULL,
			seq INTEGER NOT NULL,
			contact_id ` + text + ` NOT NULL,
			from_stage ` + text + ` NOT NULL,
			reason ` + text + ` NOT NULL,
			amount BIGINT NOT NULL,
			currency ` + text + ` NOT NULL,
			lost_at BIGINT NOT NULL,
			reopened_at BIGINT,
			PRIMARY KEY (deal_id, seq))`,
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
		if err := exec(ctx, tx, `INSERT INTO `+t.Name(tableContacts)+`
			(contact_id, name, created_at, cohort, channel, last_seq) VALUES (?, ?, ?, ?, ?, 1)
			ON CONFLICT (contact_id) DO UPDATE SET name = excluded.name, created_at = excluded.created_at,
				cohort = excluded.cohort, channel = excluded.channel, last_seq = 1`,
			ev.ContactID, ev.Name, at, e.OccurredAt.UTC().Format(CohortLayout), string(ev.Channel)); err != nil {
			return fmt.Errorf("insert contact %s: %w", ev.ContactID, err)
		}
		return openVisit(ctx, tx, t, ev.ContactID, 1, contact.Lead, at)
	case contact.TypeDetailsChanged:
		var ev contact.DetailsChanged
		if err := decode(e, &ev); err != nil {
			return err
		}
		if ev.Name == nil {
			return nil
		}
		if err := exec(ctx, tx, `UPDATE `+t.Name(tableContacts)+` SET name = ? WHERE contact_id = ?`, *ev.Name, ev.ContactID); err != nil {
			return fmt.Errorf("rename contact %s: %w", ev.ContactID, err)
		}
	case contact.TypePhaseChanged:
		var ev contact.PhaseChanged
		if err := decode(e, &ev); err != nil {
			return err
		}
		return changePhase(ctx, tx, t, ev.ContactID, ev.To, at)
	case contact.TypeTouchpointRecorded:
		var ev contact.TouchpointRecorded
		if err := decode(e, &ev); err != nil {
			return err
		}
		if err := exec(ctx, tx, `INSERT INTO `+t.Name(tableTouchpoints)+` (position, contact_id, occurred_at) VALUES (?, ?, ?)
			ON CONFLICT (position) DO NOTHING`, e.Position, ev.ContactID, at); err != nil {
			return fmt.Errorf("insert touchpoint of contact %s: %w", ev.ContactID, err)
		}
	case contact.TypeSurveyRecorded:
		var ev contact.SurveyRecorded
		if err := decode(e, &ev); err != nil {
			return err
		}
		if err := exec(ctx, tx, `INSERT INTO `+t.Name(tableSurveys)+` (position, contact_id, nps, occurred_at)
			VALUES (?, ?, ?, ?) ON CONFLICT (position) DO NOTHING`, e.Position, ev.ContactID, ev.NPS, at); err != nil {
			return fmt.Errorf("insert survey of contact %s: %w", ev.ContactID, err)
		}
	case contact.TypeTaskScheduled:
		var ev contact.TaskScheduled
		if err := decode(e, &ev); err != nil {
			return err
		}
		due, err := time.Parse(time.DateOnly, string(ev.Due))
		if err != nil {
			return fmt.Errorf("due date of task %s: %w", ev.TaskID, err)
		}
		if err := exec(ctx, tx, `INSERT INTO `+t.Name(tableTasks)+`
			(contact_id, task_id, due, overdue_at, scheduled_at, completed_at) VALUES (?, ?, ?, ?, ?, NULL)
			ON CONFLICT (contact_id, task_id) DO UPDATE SET due = excluded.due, overdue_at = excluded.overdue_at,
				scheduled_at = excluded.scheduled_at, completed_at = NULL`,
			ev.ContactID, ev.TaskID, string(ev.Due), due.AddDate(0, 0, 1).UnixMicro(), at); err != nil {
			return fmt.Errorf("insert task %s: %w", ev.TaskID, err)
		}
	case contact.TypeTaskCompleted:
		var ev contact.TaskCompleted
		if err := decode(e, &ev); err != nil {
			return err
		}
		if err := exec(ctx, tx, `UPDATE `+t.Name(tableTasks)+` SET completed_at = ? WHERE contact_id = ? AND task_id = ?`,
			at, ev.ContactID, ev.TaskID); err != nil {
			return fmt.Errorf("complete task %s: %w", ev.TaskID, err)
		}
	case deal.TypeLost:
		var ev deal.Lost
		if err := decode(e, &ev); err != nil {
			return err
		}
		var losses int64
		if err := queryRow(ctx, tx, `SELECT COUNT(*) FROM `+t.Name(tableDealLosses)+` WHERE deal_id = ?`, ev.DealID).Scan(&losses); err != nil {
			return fmt.Errorf("count losses of deal %s: %w", ev.DealID, err)
		}
		if err := exec(ctx, tx, `INSERT INTO `+t.Name(tableDealLosses)+`
			(deal_id, seq, contact_id, from_stage, reason, amount, currency, lost_at, reopened_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)`,
			ev.DealID, losses+1, ev.ContactID, string(ev.FromStage), string(ev.Reason), ev.Amount.Amount,
			ev.Amount.Currency, at); err != nil {
			return fmt.Errorf("insert loss of deal %s: %w", ev.DealID, err)
		}
	case deal.TypeReopened:
		var ev deal.Reopened
		if err := decode(e, &ev); err != nil {
			return err
		}
		if err := exec(ctx, tx, `UPDATE `+t.Name(tableDealLosses)+` SET reopened_at = ? WHERE deal_id = ? AND reopened_at IS NULL`,
			at, ev.DealID); err != nil {
			return fmt.Errorf("reopen deal %s: %w", ev.DealID, err)
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
		(contact_id, seq, phase, entered_at, left_at, next_phase) VALUES (?, ?, ?, ?, NULL, NULL)
		ON CONFLICT (contact_id, seq) DO UPDATE SET phase = excluded.phase, entered_at = excluded.entered_at,
			left_at = NULL, next_phase = NULL`,
		contactID, seq, string(phase), at); err != nil {
		return fmt.Errorf("open visit of contact %s: %w", contactID, err)
	}
	return nil
}

func changePhase(ctx context.Context, tx *projections.Tx, t projections.Tables, contactID string, to contact.Phase, at int64) error {
	var seq int64
	err := queryRow(ctx, tx, `SELECT last_seq FROM `+t.Name(tableContacts)+` WHERE contact_id = ?`, contactID).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("contact %s was not created", contactID)
	}
	if err != nil {
		return fmt.Errorf("read contact %s: %w", contactID, err)
	}
	if err := exec(ctx, tx, `UPDATE `+t.Name(tableVisits)+` SET left_at = ?, next_phase = ? WHERE contact_id = ? AND seq = ?`,
		at, string(to), contactID, seq); err != nil {
		return fmt.Errorf("close visit of contact %s: %w", contactID, err)
	}
	if err := openVisit(ctx, tx, t, contactID, seq+1, to, at); err != nil {
		return err
	}
	if err := exec(ctx, tx, `UPDATE `+t.Name(tableContacts)+` SET last_seq = ? WHERE contact_id = ?`, seq+1, contactID); err != nil {
		return fmt.Errorf("move contact %s: %w", contactID, err)
	}
	return nil
}
