package churn

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/projections/explain"
	"github.com/eventcrm/crm/projections/visits"
)

// Figures of the parts of a churned customer's facts.
const (
	figChurn       = "churn"
	figWon         = "won"
	figLastSurvey  = "last_survey"
	figLastTouch   = "last_touchpoint"
	figOverdueTask = "overdue_task"
)

// churnedFigures are the figures of a churned customer (ChurnedCustomer) and the figure of
// their parts.
var churnedFigures = map[string]string{
	"churned_at": figChurn, "from_phase": figChurn,
	"won_at": figWon, "days_won_to_churn": figWon,
	"last_nps":           figLastSurvey,
	"last_touchpoint_at": figLastTouch, "days_since_last_touchpoint": figLastTouch,
	"overdue_tasks": figOverdueTask,
}

// churnedParts answers the parts of a figure of a churned customer at
// churned_customers.<contact>.<figure>, for each of the contact's churns at or before as_of
// (a contact of the cohort asked for): the bucket of a part is the time of its churn
// (RFC 3339, UTC), so that each churn listed finds its own, and its figure is the kind of
// fact and the churn's number (last_survey/1: the last survey before the contact's first
// churn). churned_at and from_phase: the
// phase change to churned; won_at and days_won_to_churn: the latest entry into won before it;
// last_nps: the latest survey at or before it (its value the score); last_touchpoint_at and
// days_since_last_touchpoint: the latest touchpoint at or before it; overdue_tasks: each task
// overdue at the churn, with the event that scheduled it (the entity is the task). Each part
// counts 1; a churn without the fact (no win, no survey) has no part of it. They are found
// when asked, by the same conditions as the list's.
func (q *query) churnedParts(ctx context.Context, path string) ([]explain.Part, error) {
	rest, _ := strings.CutPrefix(path, "churned_customers.")
	i := strings.LastIndexByte(rest, '.')
	if i <= 0 || churnedFigures[rest[i+1:]] == "" {
		return nil, domain.Invalid("explain", "%q is not the path of a figure of a churned customer (churned_customers.<contact>.<figure>)", path)
	}
	contactID, figure := rest[:i], churnedFigures[rest[i+1:]]
	where, args := q.contacts()
	v := q.t.Name(visits.Table)
	type churn struct {
		seq, at, position int64
		eventID           string
	}
	var churns []churn
	rows, err := q.rows(ctx, `SELECT v.seq, v.left_at, n.position, n.event_id FROM `+v+` v
		JOIN `+v+` n ON n.contact_id = v.contact_id AND n.seq = v.seq + 1
		JOIN `+q.t.Name(tableContacts)+` c ON c.contact_id = v.contact_id
		WHERE v.contact_id = ? AND v.next_phase = 'churned' AND v.left_at <= ? AND`+where+` ORDER BY v.left_at, v.seq`,
		append([]any{contactID, q.asOf}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("churns of %s: %w", contactID, err)
	}
	for rows.Next() {
		var c churn
		if err := rows.Scan(&c.seq, &c.at, &c.position, &c.eventID); err != nil {
			rows.Close()
			return nil, fmt.Errorf("churns of %s: %w", contactID, err)
		}
		churns = append(churns, c)
	}
	if err := closeRows(rows); err != nil {
		return nil, fmt.Errorf("churns of %s: %w", contactID, err)
	}
	if len(churns) == 0 {
		return nil, domain.Invalid("explain", "%q: %s is not a churned customer of the answer", path, contactID)
	}
	var parts []explain.Part
	for n, c := range churns {
		bucket := time.UnixMicro(c.at).UTC().Format(time.RFC3339Nano)
		// The figure names the churn (1 the contact's first), so that a fact counted at two
		// churns (the same last survey) is two parts a page boundary can tell apart.
		part := explain.Part{Entity: contactID, Figure: fmt.Sprintf("%s/%d", figure, n+1), Bucket: bucket, Count: 1}
		var stmt string
		var stmtArgs []any
		switch figure {
		case figChurn:
			part.Position, part.EventID, part.At = c.position, c.eventID, c.at
			parts = append(parts, part)
			continue
		case figWon:
			stmt = `SELECT '', position, event_id, entered_at, 0 FROM ` + v + ` WHERE contact_id = ? AND seq <= ? AND phase = ?
				ORDER BY entered_at DESC, seq DESC LIMIT 1`
			stmtArgs = []any{contactID, c.seq, string(contact.Won)}
		case figLastSurvey:
			stmt = `SELECT '', position, event_id, occurred_at, nps FROM ` + q.t.Name(tableSurveys) + `
				WHERE contact_id = ? AND occurred_at <= ? ORDER BY occurred_at DESC, position DESC LIMIT 1`
			stmtArgs = []any{contactID, c.at}
		case figLastTouch:
			stmt = `SELECT '', position, event_id, occurred_at, 0 FROM ` + q.t.Name(tableTouchpoints) + `
				WHERE contact_id = ? AND occurred_at <= ? ORDER BY occurred_at DESC, position DESC LIMIT 1`
			stmtArgs = []any{contactID, c.at}
		case figOverdueTask:
			stmt = `SELECT task_id, position, event_id, scheduled_at, 0 FROM ` + q.t.Name(tableTasks) + `
				WHERE contact_id = ? AND from_at <= ? AND overdue_at <= ? AND (until_at IS NULL OR until_at > ?)`
			stmtArgs = []any{contactID, c.at, c.at, c.at}
		}
		found, err := q.factParts(ctx, stmt, stmtArgs, part)
		if err != nil {
			return nil, fmt.Errorf("parts of %s: %w", path, err)
		}
		parts = append(parts, found...)
	}
	slices.SortFunc(parts, func(a, b explain.Part) int {
		return cmp.Or(cmp.Compare(a.Position, b.Position), strings.Compare(a.Entity, b.Entity), strings.Compare(a.Figure, b.Figure))
	})
	return parts, nil
}

// factParts are the parts like part of the facts stmt reads: entity (the contact's when
// empty), position, event id, business time and measure.
func (q *query) factParts(ctx context.Context, stmt string, args []any, part explain.Part) ([]explain.Part, error) {
	rows, err := q.rows(ctx, stmt, args...)
	if err != nil {
		return nil, err
	}
	var parts []explain.Part
	for rows.Next() {
		p := part
		var entity sql.NullString
		if err := rows.Scan(&entity, &p.Position, &p.EventID, &p.At, &p.Measure); err != nil {
			rows.Close()
			return nil, err
		}
		if entity.String != "" {
			p.Entity = entity.String
		}
		parts = append(parts, p)
	}
	return parts, closeRows(rows)
}
