package schedule

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/projections"
)

// Deadline is a deadline of the schedule that has not fired.
type Deadline struct {
	Kind      string      `json:"kind"`
	ContactID string      `json:"contact_id"`
	TaskID    string      `json:"task_id,omitempty"`
	Due       domain.Date `json:"due,omitempty"`
	// LastTouchpointAt is, for a dormancy deadline, the touchpoint it counts from.
	LastTouchpointAt time.Time `json:"last_touchpoint_at,omitzero"`
	FireAt           time.Time `json:"fire_at"`
}

// After is where a page of deadlines due ends, in their order (fire time, kind, subject): the
// next page starts after it.
type After struct {
	FireAt        time.Time
	Kind, Subject string
}

// Since is the start of the deadlines that fall due at since or later (no kind sorts before
// "").
func Since(since time.Time) After { return After{FireAt: since} }

// After is the place of d in the order of the deadlines due.
func (d Deadline) After() After {
	subject := d.TaskID
	if d.Kind == contact.ReminderDormant {
		subject = d.ContactID
	}
	return After{FireAt: d.FireAt, Kind: d.Kind, Subject: subject}
}

// Due reads up to limit deadlines that have not fired and fall due after from and at or
// before now, earliest first (fire time, kind, subject); the next page starts after the last
// deadline of a full one (its After), so that deadlines a reader passes over never hide those
// behind them.
func Due(ctx context.Context, db *projections.DB, t projections.Tables, from After, now time.Time, limit int) ([]Deadline, error) {
	var list []Deadline
	err := db.ReadOnly(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, db.Dialect.Rebind(dueQuery(t)), from.FireAt.UnixMicro(), from.Kind, from.Subject, now.UnixMicro(), limit)
		if err != nil {
			return fmt.Errorf("due deadlines: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var (
				d            Deadline
				subject, due string
				last, fireAt int64
			)
			if err := rows.Scan(&d.Kind, &subject, &d.ContactID, &due, &last, &fireAt); err != nil {
				return fmt.Errorf("due deadlines: %w", err)
			}
			d.Due, d.FireAt = domain.Date(due), time.UnixMicro(fireAt).UTC()
			if d.Kind == contact.ReminderDormant {
				d.LastTouchpointAt = time.UnixMicro(last).UTC()
			} else {
				d.TaskID = subject
			}
			list = append(list, d)
		}
		return rows.Err()
	})
	return list, err
}

// dueQuery is the question of Due, of the tables of set t: its arguments are the fire time
// (microseconds), kind and subject it reads after, now (microseconds) and the limit.
func dueQuery(t projections.Tables) string {
	return `SELECT kind, subject, contact_id, due, last_touch_at, fire_at FROM ` + t.Name(tableEntries) +
		` WHERE fired = 0 AND (fire_at, kind, subject) > (?, ?, ?) AND fire_at <= ? ORDER BY fire_at, kind, subject LIMIT ?`
}

// Pending reads up to limit deadlines that have not fired and fire at or before until,
// earliest first: what the scheduler has still to do.
func Pending(ctx context.Context, db *projections.DB, t projections.Tables, until time.Time, limit int) ([]Deadline, error) {
	if limit < 1 || limit > 1000 {
		return nil, domain.Invalid("limit", "%d is outside 1..1000", limit)
	}
	list, err := Due(ctx, db, t, Since(time.Unix(0, 0)), until, limit)
	if list == nil && err == nil {
		list = []Deadline{}
	}
	return list, err
}
