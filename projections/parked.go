package projections

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/eventcrm/crm/eventstore"
)

// ParkedTable is the poison queue of every projection: events a projection could not apply,
// and the later events of the same streams, held back so that per-stream order holds.
const ParkedTable = "projection_parked"

// parkedAtLayout is fixed-width, so parked_at sorts as text in both dialects and reads well
// in an analyst's SQL tool.
const parkedAtLayout = "2006-01-02T15:04:05.000000Z"

func parkedSchema(d Dialect) []string {
	return []string{
		`CREATE TABLE IF NOT EXISTS ` + ParkedTable + ` (
			id ` + d.AutoID() + `,
			projection TEXT    NOT NULL,
			table_set  TEXT    NOT NULL,
			event_id   TEXT    NOT NULL,
			stream     TEXT    NOT NULL,
			position   BIGINT  NOT NULL,
			event_type TEXT    NOT NULL,
			error      TEXT    NOT NULL,
			attempts   INTEGER NOT NULL,
			parked_at  TEXT    NOT NULL,
			UNIQUE (table_set, event_id)
		)`,
		`CREATE INDEX IF NOT EXISTS ` + ParkedTable + `_stream ON ` + ParkedTable + ` (table_set, stream, position)`,
	}
}

// ParkedEvent is an event a projection has set aside: either it failed to apply after its
// retries (Attempts > 0), or it waits behind such an event of the same stream (Attempts 0).
type ParkedEvent struct {
	ID         int64     `json:"id"`
	Projection string    `json:"projection"`
	TableSet   string    `json:"table_set"`
	EventID    string    `json:"event_id"`
	Stream     string    `json:"stream"`
	Position   int64     `json:"position"`
	EventType  string    `json:"event_type"`
	Error      string    `json:"error"`
	Attempts   int       `json:"attempts"`
	ParkedAt   time.Time `json:"parked_at"`
}

// Errors of the poison queue.
var (
	// ErrParkedNotFound: no parked event has that id.
	ErrParkedNotFound = errors.New("parked event not found")
	// ErrNotFirstParked: an event parked behind an earlier one of its stream cannot be retried
	// alone; see NotFirstError.
	ErrNotFirstParked = errors.New("an earlier event of the stream is parked")
)

// NotFirstError names the parked event to retry instead.
type NotFirstError struct {
	ID    int64 // the event asked for
	First int64 // the earliest parked event of the same stream and projection
}

func (e *NotFirstError) Error() string {
	return fmt.Sprintf("parked event %d waits behind parked event %d of the same stream: retry %d", e.ID, e.First, e.First)
}

// Unwrap makes errors.Is(err, ErrNotFirstParked) hold.
func (e *NotFirstError) Unwrap() error { return ErrNotFirstParked }

// ParkNote says why an event is parked: the error that refused it (or that it waits behind
// an earlier parked event of its stream) and how often it was tried.
type ParkNote struct {
	Err      string
	Attempts int
}

// InsertParked parks e of set t in tx; an event parked already stays as it was.
func InsertParked(ctx context.Context, tx *Tx, projection string, t Tables, e eventstore.Event, note ParkNote, now time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO `+ParkedTable+`
		(projection, table_set, event_id, stream, position, event_type, error, attempts, parked_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (table_set, event_id) DO NOTHING`,
		projection, t.Prefix(), e.ID, e.Stream, e.Position, e.Type, note.Err, note.Attempts, now.UTC().Format(parkedAtLayout))
	if err != nil {
		return fmt.Errorf("park event %s: %w", e.ID, err)
	}
	return nil
}

const parkedColumns = `id, projection, table_set, event_id, stream, position, event_type, error, attempts, parked_at`

type rowScanner interface{ Scan(dest ...any) error }

func scanParked(row rowScanner) (ParkedEvent, error) {
	var (
		p  ParkedEvent
		at string
	)
	if err := row.Scan(&p.ID, &p.Projection, &p.TableSet, &p.EventID, &p.Stream, &p.Position, &p.EventType, &p.Error, &p.Attempts, &at); err != nil {
		return ParkedEvent{}, err
	}
	t, err := time.Parse(parkedAtLayout, at)
	if err != nil {
		return ParkedEvent{}, fmt.Errorf("parked event %d: parked_at %q: %w", p.ID, at, err)
	}
	p.ParkedAt = t
	return p, nil
}

// ParkedFilter selects parked events.
type ParkedFilter struct {
	// Projection, when set, keeps the events of that projection only.
	Projection string
	// AfterID pages: only events with a larger id.
	AfterID int64
	// Limit caps the answer (default and maximum 1000).
	Limit int
}

// ParkedErrorText is the error text kept on a parked row: a panic's value without its stack
// (which went to the log).
func ParkedErrorText(err error) string {
	var pe middleware.RecoveredPanicError
	if errors.As(err, &pe) {
		return fmt.Sprintf("panic: %v", pe.V)
	}
	s := err.Error()
	if len(s) > 2000 {
		s = s[:2000] + "…"
	}
	return s
}

// ListParked lists parked events in id order (the order they were parked).
func (db *DB) ListParked(ctx context.Context, f ParkedFilter) ([]ParkedEvent, error) {
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 1000
	}
	query := `SELECT ` + parkedColumns + ` FROM ` + ParkedTable + ` WHERE id > ?`
	args := []any{f.AfterID}
	if f.Projection != "" {
		query += ` AND projection = ?`
		args = append(args, f.Projection)
	}
	query += ` ORDER BY id LIMIT ?`
	args = append(args, f.Limit)
	rows, err := db.SQL.QueryContext(ctx, db.Dialect.Rebind(query), args...)
	if err != nil {
		return nil, fmt.Errorf("list parked events: %w", err)
	}
	defer rows.Close()
	list := []ParkedEvent{}
	for rows.Next() {
		p, err := scanParked(rows)
		if err != nil {
			return nil, fmt.Errorf("list parked events: %w", err)
		}
		list = append(list, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list parked events: %w", err)
	}
	return list, nil
}

// ParkedByID returns the parked event id; ErrParkedNotFound when there is none.
func (db *DB) ParkedByID(ctx context.Context, id int64) (ParkedEvent, error) {
	row := db.SQL.QueryRowContext(ctx, db.Dialect.Rebind(`SELECT `+parkedColumns+` FROM `+ParkedTable+` WHERE id = ?`), id)
	p, err := scanParked(row)
	if errors.Is(err, sql.ErrNoRows) {
		return ParkedEvent{}, fmt.Errorf("parked event %d: %w", id, ErrParkedNotFound)
	}
	if err != nil {
		return ParkedEvent{}, fmt.Errorf("parked event %d: %w", id, err)
	}
	return p, nil
}

// FirstParked returns the earliest parked event of stream in set t; found is false when
// the stream has none.
func (db *DB) FirstParked(ctx context.Context, t Tables, stream string) (p ParkedEvent, found bool, err error) {
	row := db.SQL.QueryRowContext(ctx, db.Dialect.Rebind(`SELECT `+parkedColumns+` FROM `+ParkedTable+`
		WHERE table_set = ? AND stream = ? ORDER BY position LIMIT 1`), t.Prefix(), stream)
	p, err = scanParked(row)
	if errors.Is(err, sql.ErrNoRows) {
		return ParkedEvent{}, false, nil
	}
	if err != nil {
		return ParkedEvent{}, false, fmt.Errorf("parked events of %s: %w", stream, err)
	}
	return p, true, nil
}

// ParkedCounts returns how many events of each stream set t has parked.
func (db *DB) ParkedCounts(ctx context.Context, t Tables) (map[string]int, error) {
	rows, err := db.SQL.QueryContext(ctx, db.Dialect.Rebind(`SELECT stream, count(*) FROM `+ParkedTable+`
		WHERE table_set = ? GROUP BY stream`), t.Prefix())
	if err != nil {
		return nil, fmt.Errorf("parked events of %s: %w", t.Prefix(), err)
	}
	defer rows.Close()
	parked := map[string]int{}
	for rows.Next() {
		var (
			stream string
			n      int
		)
		if err := rows.Scan(&stream, &n); err != nil {
			return nil, fmt.Errorf("parked events of %s: %w", t.Prefix(), err)
		}
		parked[stream] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("parked events of %s: %w", t.Prefix(), err)
	}
	return parked, nil
}

// RecordFailedRetry keeps p parked with the error of its latest try, one attempt more.
func (db *DB) RecordFailedRetry(ctx context.Context, p ParkedEvent, applyErr error) error {
	_, err := db.SQL.ExecContext(ctx, db.Dialect.Rebind(`UPDATE `+ParkedTable+`
		SET error = ?, attempts = attempts + 1 WHERE id = ?`), storableText(applyErr.Error()), p.ID)
	if err != nil {
		return fmt.Errorf("record failed retry of %s: %w", p.EventID, err)
	}
	return nil
}

// Unpark removes p from the poison queue in tx, the transaction that applied it.
func Unpark(ctx context.Context, tx *Tx, p ParkedEvent) error {
	if _, err := tx.Exec(ctx, `DELETE FROM `+ParkedTable+` WHERE id = ?`, p.ID); err != nil {
		return fmt.Errorf("unpark %s: %w", p.EventID, err)
	}
	return nil
}
