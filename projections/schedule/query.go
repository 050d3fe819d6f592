package schedule

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/eventcrm/crm/domain"
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

// Due reads up to limit deadlines that have not fired and fell due between since and now,
// earliest first.
func Due(ctx context.Context, db *projections.DB, t projections.Tables, since, now time.Time, limit int) ([]Deadline, error) {
	var list []Deadline
	err := db.ReadOnly(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, db.Dialect.Rebind(dueQuery(t)), since.UnixMicro(), now.UnixMicro(), limit)
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
			if d.Kind == "dormant" {
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

// dueQuery is the question of Due, of the tables of set t: its arguments are since and now
// (microseconds) and the limit.
func dueQuery(t projections.Tables) string {
	return `SELECT kind, subject, contact_id, due, last_touch_at, fire_at FROM ` + t.Name(tableEntries) +
		` WHERE fired = 0 AND fire_at >= ? AND fire_at <= ? ORDER BY fire_at, kind, subject LIMIT ?`
}

// Pending reads up to limit deadlines that have not fired and fire at or before until,
// earliest first: what the scheduler has still to do.
func Pending(ctx context.Context, db *projections.DB, t projections.Tables, until time.Time, limit int) ([]Deadline, error) {
	if limit < 1 || limit > 1000 {
		return nil, domain.Invalid("limit", "%d is outside 1..1000", limit)
	}
	list, err := Due(ctx, db, t, time.Unix(0, 0), until, limit)
	if list == nil && err == nil {
		list = []Deadline{}
	}
	return list, err
}
