package timeline

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/members"
	"github.com/eventcrm/crm/projections/paging"
)

// Page sizes of a timeline.
const (
	DefaultLimit = 50
	MaxLimit     = 200
)

// Params is the question asked of one contact's timeline.
type Params struct {
	ContactID string `json:"contact_id"`
	// Types keeps the entries of these kinds (see Kinds); empty keeps all.
	Types []string `json:"types,omitempty"`
	// Before asks for the entries older than a point: a next_before of an earlier page, or an
	// RFC 3339 time (the entries that occurred before it).
	Before string `json:"before,omitempty"`
	// Limit is the page size: DefaultLimit when 0, at most MaxLimit.
	Limit int `json:"limit,omitempty"`
	// Now is the time of the question (required): a task still open is overdue when its due
	// date is before Now's business date.
	Now time.Time `json:"now"`
	// Zone is the business time zone Now's business date is taken in (UTC when nil).
	Zone *time.Location `json:"-"`
}

// Answer is one page of a contact's timeline, newest first.
type Answer struct {
	ContactID string `json:"contact_id"`
	// BusinessDate is the date open tasks are judged overdue against.
	BusinessDate domain.Date `json:"business_date"`
	Entries      []Entry     `json:"entries"`
	// NextBefore asks for the next (older) page as ?before=; empty on the last page.
	NextBefore string `json:"next_before,omitempty"`
}

// Entry is one event on the timeline.
type Entry struct {
	Position   int64     `json:"position"`
	OccurredAt time.Time `json:"occurred_at"`
	// Type is the entry's kind (see Kinds), Event the persisted type of its event.
	Type  string `json:"type"`
	Event string `json:"event"`
	Actor string `json:"actor"`
	// ContactID is the contact the event was recorded for: on a merge survivor's timeline,
	// the duplicate's entries keep the duplicate's id.
	ContactID string `json:"contact_id"`
	// SubjectID is the task, deal, touchpoint, purchase, survey or note the event is about.
	SubjectID string `json:"subject_id,omitempty"`
	// Title is the task's or the deal's title when the event happened.
	Title string `json:"title,omitempty"`
	// Data is the event's data as recorded.
	Data json.RawMessage `json:"data"`
	// Task is the current state of the entry's task (task entries only).
	Task *Task `json:"task,omitempty"`
}

// Task is a task's state now: its status, due date and, while open, whether it is overdue at
// the question's time.
type Task struct {
	Status  string      `json:"status"`
	Due     domain.Date `json:"due"`
	Overdue bool        `json:"overdue"`
}

// cursor is the place of the last entry of a page: the next page holds the entries before it
// in (occurred_at, position) order. A time given as before is the cursor (at, 0).
type cursor struct {
	At       int64 `json:"a"`
	Position int64 `json:"p"`
}

func parseBefore(s string) (*cursor, error) {
	if s == "" {
		return nil, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return &cursor{At: t.UnixMicro()}, nil
	}
	var c cursor
	if !paging.Decode(s, &c) || c.Position < 1 {
		return nil, domain.Invalid("before", "%q is neither an RFC 3339 time nor a next_before of the timeline", s)
	}
	return &c, nil
}

// question is a timeline's parameters, checked.
type question struct {
	types  []string
	limit  int
	before *cursor
}

func (params Params) check() (question, error) {
	if params.ContactID == "" {
		return question{}, domain.Invalid("contact_id", "is required")
	}
	if params.Now.IsZero() {
		return question{}, domain.Invalid("now", "is required")
	}
	limit, err := paging.Limit(params.Limit, DefaultLimit, MaxLimit)
	if err != nil {
		return question{}, err
	}
	for _, k := range params.Types {
		if !slices.Contains(Kinds(), k) {
			return question{}, domain.Invalid("types", "%q is not one of %s", k, strings.Join(Kinds(), ", "))
		}
	}
	before, err := parseBefore(params.Before)
	if err != nil {
		return question{}, err
	}
	return question{types: params.Types, limit: limit, before: before}, nil
}

// Query answers one page of a contact's timeline from the tables of set t. Invalid parameters
// return a domain error with code invalid naming the parameter; a contact with no entry at all
// is not found.
func Query(ctx context.Context, db *projections.DB, t projections.Tables, params Params) (Answer, error) {
	qn, err := params.check()
	if err != nil {
		return Answer{}, err
	}
	answer := Answer{ContactID: params.ContactID, BusinessDate: contact.OverdueBefore(params.Now, params.Zone), Entries: []Entry{}}
	read := func(q query) (err error) {
		if answer.Entries, err = q.page(ctx, params.ContactID, qn, answer.BusinessDate); err != nil {
			return err
		}
		if len(answer.Entries) == 0 && qn.before == nil {
			return q.mustExist(ctx, params.ContactID)
		}
		return nil
	}
	if db.Dialect == projections.Postgres {
		// The page is one statement, which sees one state: one round trip, no transaction
		// around it (an empty page asks once more whether the contact exists).
		err = read(query{db: db, conn: db.SQL, t: t})
	} else {
		err = db.ReadOnly(ctx, func(tx *sql.Tx) error { return read(query{db: db, conn: tx, tx: tx, t: t}) })
	}
	if err != nil {
		return Answer{}, err
	}
	if len(answer.Entries) > qn.limit {
		answer.Entries = answer.Entries[:qn.limit]
		last := answer.Entries[qn.limit-1]
		answer.NextBefore = paging.Encode(cursor{At: last.OccurredAt.UnixMicro(), Position: last.Position})
	}
	return answer, nil
}

// query runs the statements of one answer: on PostgreSQL one statement on the pool, on
// SQLite in one read transaction (tx).
type query struct {
	db   *projections.DB
	conn interface {
		QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
		QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	}
	tx *sql.Tx // SQLite only
	t  projections.Tables
}

func (q *query) rows(ctx context.Context, stmt string, args ...any) (*sql.Rows, error) {
	return q.conn.QueryContext(ctx, q.db.Dialect.Rebind(stmt), args...)
}

// page reads up to limit+1 entries of the contact and of every contact merged into it,
// newest first, from the index on (contact_id, occurred_at, position), with the current state
// of their tasks. Only a task entry looks its task up: the key of any other entry is NULL,
// which matches nothing without a descent of the tasks' index (on PostgreSQL a page of 50
// entries, a third of them tasks, touches about half the pages it did when every entry probed
// the index by its subject).
//
// On PostgreSQL the merged contacts are read in the same statement: each contact's newest
// limit+1 entries in index order (a lateral join), the page the newest of those. On SQLite,
// whose statements cost no round trip, they are read first, and the page is one range of the
// index for a contact that absorbed none.
func (q *query) page(ctx context.Context, contactID string, qn question, overdueBefore domain.Date) ([]Entry, error) {
	stmt, args, err := q.pageQuery(ctx, contactID, qn)
	if err != nil {
		return nil, err
	}
	rows, err := q.rows(ctx, stmt, args...)
	if err != nil {
		return nil, fmt.Errorf("timeline: %w", err)
	}
	entries := []Entry{}
	for rows.Next() {
		e, err := scanEntry(rows, overdueBefore)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("timeline: %w", err)
		}
		entries = append(entries, e)
	}
	if err := closeRows(rows); err != nil {
		return nil, fmt.Errorf("timeline: %w", err)
	}
	return entries, nil
}

// pageQuery is the statement of a page (see page), with its arguments.
func (q *query) pageQuery(ctx context.Context, contactID string, qn question) (string, []any, error) {
	var (
		cond string
		args []any
	)
	if len(qn.types) > 0 {
		cond += ` AND e.kind` + in(len(qn.types))
		args = append(args, anys(qn.types)...)
	}
	if c := qn.before; c != nil {
		cond += ` AND (e.occurred_at < ? OR (e.occurred_at = ? AND e.position < ?))`
		args = append(args, c.At, c.At, c.Position)
	}
	const newest = ` ORDER BY e.occurred_at DESC, e.position DESC LIMIT ?`
	var from string
	if q.db.Dialect == projections.Postgres {
		from = `(SELECT CAST(? AS TEXT) AS id UNION ALL SELECT member FROM ` + q.t.Name(members.TableName) + ` WHERE survivor = ?) ids
			CROSS JOIN LATERAL (SELECT * FROM ` + q.t.Name(tableEntries) + ` e WHERE e.contact_id = ids.id` + cond + newest + `) e`
		args = append(append([]any{contactID, contactID}, args...), qn.limit+1)
		cond = ""
	} else {
		ids, err := members.Of(ctx, q.tx, q.db.Dialect, q.t, contactID)
		if err != nil {
			return "", nil, err
		}
		from = q.t.Name(tableEntries) + ` e`
		cond = ` AND e.contact_id` + in(len(ids)) + cond
		args = append(anys(ids), args...)
	}
	stmt := `SELECT e.position, e.contact_id, e.occurred_at, e.kind, e.event, e.actor, e.subject, e.title, e.data,
		t.status, t.due
		FROM ` + from + ` LEFT JOIN ` + q.t.Name(tableTasks) + ` t
		ON t.task_id = CASE WHEN e.kind = '` + KindTask + `' THEN e.subject END WHERE TRUE` + cond + newest
	return stmt, append(args, qn.limit+1), nil
}

func scanEntry(rows *sql.Rows, overdueBefore domain.Date) (Entry, error) {
	var (
		e           Entry
		at          int64
		data        string
		status, due sql.NullString
	)
	if err := rows.Scan(&e.Position, &e.ContactID, &at, &e.Type, &e.Event, &e.Actor, &e.SubjectID, &e.Title, &data,
		&status, &due); err != nil {
		return Entry{}, err
	}
	e.OccurredAt = time.UnixMicro(at).UTC()
	e.Data = json.RawMessage(data)
	if status.Valid {
		d := domain.Date(due.String)
		e.Task = &Task{Status: status.String, Due: d, Overdue: status.String == StatusOpen && d < overdueBefore}
	}
	return e, nil
}

// mustExist tells an unknown contact from one whose page is empty.
func (q *query) mustExist(ctx context.Context, contactID string) error {
	var one int
	err := q.conn.QueryRowContext(ctx, q.db.Dialect.Rebind(`SELECT 1 FROM `+q.t.Name(tableEntries)+
		` WHERE contact_id = ? LIMIT 1`), contactID).Scan(&one)
	switch {
	case err == sql.ErrNoRows:
		return domain.NotFound("contact %s not found", contactID)
	case err != nil:
		return fmt.Errorf("contact %s: %w", contactID, err)
	}
	return nil
}

// in is " = ?" for one value, else " IN (?, ...)": one value keeps the page a single range of
// the index.
func in(n int) string {
	if n == 1 {
		return " = ?"
	}
	return " IN (?" + strings.Repeat(", ?", n-1) + ")"
}

func anys(values []string) []any {
	out := make([]any, len(values))
	for i, v := range values {
		out[i] = v
	}
	return out
}

func closeRows(rows *sql.Rows) error {
	if err := rows.Err(); err != nil {
		rows.Close()
		return err
	}
	return rows.Close()
}
