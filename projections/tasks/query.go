package tasks

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/members"
	"github.com/eventcrm/crm/projections/paging"
)

// Page sizes of the task list.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Params is the question asked of the tasks.
type Params struct {
	// AsOf is the business time of the question (required): the tasks as they stood then
	// (scheduled by then; assignee, due date and status then), overdue judged at it.
	AsOf time.Time `json:"as_of"`
	// Assignee keeps the tasks assigned to this person at as_of; the counts, this person's.
	Assignee string `json:"assignee,omitempty"`
	// ContactID keeps the tasks of this contact and of the contacts merged into it.
	ContactID string `json:"contact_id,omitempty"`
	// Status keeps the tasks open, overdue (open and due before as_of's business date), done
	// or cancelled at as_of.
	Status string `json:"status,omitempty"`
	// DueFrom and DueTo keep the tasks due within these dates (inclusive).
	DueFrom string `json:"due_from,omitempty"`
	DueTo   string `json:"due_to,omitempty"`
	// Limit is the page size: DefaultLimit when 0, at most MaxLimit.
	Limit int `json:"limit,omitempty"`
	// Cursor, a next_cursor of an earlier page, asks for the next page (the other parameters
	// must be the same).
	Cursor string `json:"cursor,omitempty"`
	// Zone is the business time zone as_of's business date is taken in (UTC when nil).
	Zone *time.Location `json:"-"`
}

// Answer is a page of tasks, by due date then task id, and the counts per assignee.
type Answer struct {
	AsOf time.Time `json:"as_of"`
	// BusinessDate is the date tasks are judged overdue against: due before it and open.
	BusinessDate domain.Date `json:"business_date"`
	Tasks        []Task      `json:"tasks"`
	// NextCursor asks for the next page; empty on the last page.
	NextCursor string `json:"next_cursor,omitempty"`
	// Counts are per assignee at as_of (every assignee, or the one asked for), whatever the
	// other filters: a dashboard's figures beside the list.
	Counts []Count `json:"counts"`
}

// Task is a task as it stood at as_of.
type Task struct {
	TaskID string `json:"task_id"`
	// ContactID is the contact the task was scheduled for (a duplicate's, after a merge).
	ContactID string      `json:"contact_id"`
	Title     string      `json:"title"`
	Assignee  string      `json:"assignee"`
	Due       domain.Date `json:"due"`
	Status    string      `json:"status"`
	Overdue   bool        `json:"overdue"`
	// Since is when the task got this status, assignee and due date.
	Since time.Time `json:"since"`
	// Reason is a cancelled task's reason.
	Reason string `json:"reason,omitempty"`
}

// Count is one assignee's tasks at as_of.
type Count struct {
	Assignee  string `json:"assignee"`
	Open      int64  `json:"open"`
	Overdue   int64  `json:"overdue"`
	Done      int64  `json:"done"`
	Cancelled int64  `json:"cancelled"`
}

// cursor is the place of the last task of a page.
type cursor struct {
	Due    string `json:"d"`
	TaskID string `json:"t"`
}

func decodeCursor(s string) (*cursor, error) {
	return paging.Cursor(s, "cursor", "is not a cursor of the tasks", func(c cursor) bool { return c.TaskID != "" })
}

// question is the parameters, checked.
type question struct {
	Params
	limit  int
	after  *cursor
	cutoff domain.Date // overdue: open and due before it
}

func (params Params) check() (question, error) {
	if params.AsOf.IsZero() {
		return question{}, domain.Invalid("as_of", "is required")
	}
	limit, err := paging.Limit(params.Limit, DefaultLimit, MaxLimit)
	if err != nil {
		return question{}, err
	}
	qn := question{Params: params, limit: limit, cutoff: contact.OverdueBefore(params.AsOf, params.Zone)}
	switch params.Status {
	case "", StatusOpen, StatusOverdue, StatusDone, StatusCancelled:
	default:
		return question{}, domain.Invalid("status", "%q is not open, overdue, done or cancelled", params.Status)
	}
	for _, f := range [][2]string{{"due_from", params.DueFrom}, {"due_to", params.DueTo}} {
		if f[1] != "" {
			if _, err := domain.ParseDate(f[0], f[1]); err != nil {
				return question{}, err
			}
		}
	}
	if params.DueFrom != "" && params.DueTo != "" && params.DueFrom > params.DueTo {
		return question{}, domain.Invalid("due_to", "%s is before due_from %s", params.DueTo, params.DueFrom)
	}
	if qn.after, err = decodeCursor(params.Cursor); err != nil {
		return question{}, err
	}
	return qn, nil
}

// Query answers the tasks from the tables of set t. Invalid parameters return a domain error
// with code invalid naming the parameter.
func Query(ctx context.Context, db *projections.DB, t projections.Tables, params Params) (Answer, error) {
	qn, err := params.check()
	if err != nil {
		return Answer{}, err
	}
	asOf := params.AsOf.UTC()
	answer := Answer{AsOf: asOf, BusinessDate: qn.cutoff}
	err = db.ReadOnly(ctx, func(tx *sql.Tx) error {
		q := &query{db: db, tx: tx, t: t, asOf: asOf.UnixMicro()}
		if err := q.judge(ctx); err != nil {
			return err
		}
		// The counts first: a list planned per cutoff leaves the rest of the transaction so.
		if answer.Counts, err = q.counts(ctx, qn); err != nil {
			return err
		}
		answer.Tasks, err = q.list(ctx, qn)
		return err
	})
	if err != nil {
		return Answer{}, err
	}
	if len(answer.Tasks) > qn.limit {
		answer.Tasks = answer.Tasks[:qn.limit]
		last := answer.Tasks[qn.limit-1]
		answer.NextCursor = paging.Encode(cursor{Due: string(last.Due), TaskID: last.TaskID})
	}
	return answer, nil
}

// query runs the statements of one answer in one read transaction.
type query struct {
	db   *projections.DB
	tx   *sql.Tx
	t    projections.Tables
	asOf int64
	// now: as_of is at or after the latest business time in the tables, so the state of
	// every task at as_of is its current one, and the kept counts are the counts at as_of.
	now bool
}

func (q *query) rows(ctx context.Context, stmt string, args ...any) (*sql.Rows, error) {
	return q.tx.QueryContext(ctx, q.db.Dialect.Rebind(stmt), args...)
}

// judge finds whether the question is about now: one look at the end of the from_at index.
func (q *query) judge(ctx context.Context) error {
	var latest sql.NullInt64
	if err := q.tx.QueryRowContext(ctx, `SELECT MAX(from_at) FROM `+q.t.Name(tableStates)).Scan(&latest); err != nil {
		return fmt.Errorf("latest task change: %w", err)
	}
	q.now = !latest.Valid || q.asOf >= latest.Int64
	return nil
}

// at is the condition that keeps, of states s, the one each task was in at as_of.
func (q *query) at() (string, []any) {
	if q.now {
		return `s.to_at IS NULL`, nil
	}
	return `s.from_at <= ? AND (s.to_at IS NULL OR s.to_at > ?)`, []any{q.asOf, q.asOf}
}

// list reads a page of the tasks asked for, plus one to tell whether there is a next page.
func (q *query) list(ctx context.Context, qn question) ([]Task, error) {
	var ids []any
	if qn.ContactID != "" {
		var err error
		if ids, err = q.contacts(ctx, qn.ContactID); err != nil {
			return nil, err
		}
	}
	if custom := q.db.Dialect.Features().CustomPlans; custom != "" && qn.plannedPerCutoff() {
		if _, err := q.tx.ExecContext(ctx, custom); err != nil {
			return nil, fmt.Errorf("tasks: plan per cutoff: %w", err)
		}
	}
	stmt, args := q.listQuery(qn, ids)
	rows, err := q.rows(ctx, stmt, args...)
	if err != nil {
		return nil, fmt.Errorf("tasks: %w", err)
	}
	list := []Task{}
	for rows.Next() {
		var (
			tk   Task
			from int64
		)
		if err := rows.Scan(&tk.TaskID, &tk.ContactID, &tk.Title, &tk.Assignee, &tk.Due, &tk.Status, &from, &tk.Reason); err != nil {
			rows.Close()
			return nil, fmt.Errorf("tasks: %w", err)
		}
		tk.Since = time.UnixMicro(from).UTC()
		tk.Overdue = tk.Status == StatusOpen && tk.Due < qn.cutoff
		list = append(list, tk)
	}
	if err := closeRows(rows); err != nil {
		return nil, fmt.Errorf("tasks: %w", err)
	}
	return list, nil
}

// plannedPerCutoff tells that the list is planned for its business date each time it is
// asked: the overdue tasks, which a plan for any cutoff on PostgreSQL reads from the index of
// every current task by due date, past each task done or cancelled, instead of the index of
// the open ones.
func (qn question) plannedPerCutoff() bool { return qn.Status == StatusOverdue }

// listQuery is the question of a page: ids are the contacts of a contact_id filter.
func (q *query) listQuery(qn question, ids []any) (string, []any) {
	where, args := q.at()
	var conds []string
	add := func(cond string, values ...any) {
		conds = append(conds, cond)
		args = append(args, values...)
	}
	if qn.Assignee != "" {
		add(`s.assignee = ?`, qn.Assignee)
	}
	if qn.ContactID != "" {
		add(`s.contact_id IN (?`+strings.Repeat(", ?", len(ids)-1)+`)`, ids...)
	}
	switch qn.Status {
	case StatusOverdue:
		add(`s.status = '`+StatusOpen+`' AND s.due < ?`, string(qn.cutoff))
	case StatusOpen, StatusDone, StatusCancelled:
		add(`s.status = '` + qn.Status + `'`) // one of the constants: checked
	}
	if qn.DueFrom != "" {
		add(`s.due >= ?`, qn.DueFrom)
	}
	if qn.DueTo != "" {
		add(`s.due <= ?`, qn.DueTo)
	}
	if c := qn.after; c != nil {
		add(`(s.due > ? OR (s.due = ? AND s.task_id > ?))`, c.Due, c.Due, c.TaskID)
	}
	for _, c := range conds {
		where += ` AND ` + c
	}
	return `SELECT s.task_id, s.contact_id, t.title, s.assignee, s.due, s.status, s.from_at, s.reason
		FROM ` + q.t.Name(tableStates) + ` s JOIN ` + q.t.Name(tableTasks) + ` t ON t.task_id = s.task_id
		WHERE ` + where + ` ORDER BY s.due, s.task_id LIMIT ?`, append(args, qn.limit+1)
}

// contacts are the contact and every contact merged into it, as query arguments.
func (q *query) contacts(ctx context.Context, contactID string) ([]any, error) {
	ids, err := members.Of(ctx, q.tx, q.db.Dialect, q.t, contactID)
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	return args, err
}

// counts are the counts per assignee at as_of. About now, open, done and cancelled are the
// kept counts, and overdue is the open ones less the kept open tasks per due date over the
// dates from the business date on: the open tasks per due date add up to the open ones, and
// the dates still to come are few where the dates past grow with the history (a row per date,
// not per task). About a past time, they are counted from the states at that time.
func (q *query) counts(ctx context.Context, qn question) ([]Count, error) {
	stmt, args := q.countsQuery(qn)
	return q.scanCounts(ctx, stmt, args)
}

// countsQuery is the question of the counts.
func (q *query) countsQuery(qn question) (stmt string, args []any) {
	if q.now {
		stmt = `SELECT c.assignee, c.open, c.open - (SELECT COALESCE(SUM(d.open), 0) FROM ` + q.t.Name(tableDue) + ` d
			WHERE d.assignee = c.assignee AND d.due >= ?),
			c.done, c.cancelled FROM ` + q.t.Name(tableCounts) + ` c`
		args = []any{string(qn.cutoff)}
		if qn.Assignee != "" {
			stmt += ` WHERE c.assignee = ?`
			args = append(args, qn.Assignee)
		}
		stmt += ` ORDER BY c.assignee`
	} else {
		where, whereArgs := q.at()
		stmt = `SELECT s.assignee,
			SUM(CASE WHEN s.status = '` + StatusOpen + `' THEN 1 ELSE 0 END),
			SUM(CASE WHEN s.status = '` + StatusOpen + `' AND s.due < ? THEN 1 ELSE 0 END),
			SUM(CASE WHEN s.status = '` + StatusDone + `' THEN 1 ELSE 0 END),
			SUM(CASE WHEN s.status = '` + StatusCancelled + `' THEN 1 ELSE 0 END)
			FROM ` + q.t.Name(tableStates) + ` s WHERE ` + where
		args = append([]any{string(qn.cutoff)}, whereArgs...)
		if qn.Assignee != "" {
			stmt += ` AND s.assignee = ?`
			args = append(args, qn.Assignee)
		}
		stmt += ` GROUP BY s.assignee ORDER BY s.assignee`
	}
	return stmt, args
}

// scanCounts reads the counts, leaving out assignees without any task.
func (q *query) scanCounts(ctx context.Context, stmt string, args []any) ([]Count, error) {
	rows, err := q.rows(ctx, stmt, args...)
	if err != nil {
		return nil, fmt.Errorf("task counts: %w", err)
	}
	counts := []Count{}
	for rows.Next() {
		var c Count
		if err := rows.Scan(&c.Assignee, &c.Open, &c.Overdue, &c.Done, &c.Cancelled); err != nil {
			rows.Close()
			return nil, fmt.Errorf("task counts: %w", err)
		}
		if c.Open+c.Done+c.Cancelled > 0 {
			counts = append(counts, c)
		}
	}
	if err := closeRows(rows); err != nil {
		return nil, fmt.Errorf("task counts: %w", err)
	}
	return counts, nil
}

func closeRows(rows *sql.Rows) error {
	if err := rows.Err(); err != nil {
		rows.Close()
		return err
	}
	return rows.Close()
}
