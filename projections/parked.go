package projections

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

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

// parkNote says why an event is parked.
type parkNote struct {
	err      string
	attempts int
}

func insertParked(ctx context.Context, tx *Tx, projection string, t Tables, e eventstore.Event, note parkNote, now time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO `+ParkedTable+`
		(projection, table_set, event_id, stream, position, event_type, error, attempts, parked_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (table_set, event_id) DO NOTHING`,
		projection, t.Prefix(), e.ID, e.Stream, e.Position, e.Type, note.err, note.attempts, now.UTC().Format(parkedAtLayout))
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

// Parked lists parked events in id order (the order they were parked).
func (r *Runner) Parked(ctx context.Context, f ParkedFilter) ([]ParkedEvent, error) {
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
	rows, err := r.db.SQL.QueryContext(ctx, r.db.Dialect.Rebind(query), args...)
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

// RetryResult is what a retry of a parked event did.
type RetryResult struct {
	// Applied lists the parked events now applied, in stream order: the one retried first,
	// then those that waited behind it.
	Applied []ParkedEvent `json:"applied"`
	// Failed is the event that failed again, if any; it and the events behind it stay parked.
	Failed *ParkedEvent `json:"failed,omitempty"`
	// StillParked counts the events of the stream that remain parked.
	StillParked int `json:"still_parked"`
}

// RetryParked applies the parked event id again and, if it succeeds, the events of the same
// stream parked behind it, in stream order, each in its own transaction that also removes it
// from the queue. It stops at the first that fails again, which stays parked with its new
// error. Only the earliest parked event of a stream can be retried (ErrNotFirstParked):
// anything else would apply a stream out of order. It returns ErrParkedNotFound for an
// unknown id.
//
// The retry is serialized with the live handler of the projection, so no event of the
// stream is applied or parked in between.
func (r *Runner) RetryParked(ctx context.Context, id int64) (RetryResult, error) {
	row := r.db.SQL.QueryRowContext(ctx, r.db.Dialect.Rebind(`SELECT `+parkedColumns+` FROM `+ParkedTable+` WHERE id = ?`), id)
	target, err := scanParked(row)
	if errors.Is(err, sql.ErrNoRows) {
		return RetryResult{}, fmt.Errorf("parked event %d: %w", id, ErrParkedNotFound)
	}
	if err != nil {
		return RetryResult{}, fmt.Errorf("parked event %d: %w", id, err)
	}
	pj := r.byName[target.Projection]
	if pj == nil {
		return RetryResult{}, fmt.Errorf("parked event %d: projection set %s is not running here", id, target.TableSet)
	}
	pj.mu.Lock()
	defer pj.mu.Unlock()
	if t := pj.tables(); t.Prefix() != target.TableSet {
		return RetryResult{}, fmt.Errorf("parked event %d: projection set %s is not running here (%s is)", id, target.TableSet, t.Prefix())
	}

	var res RetryResult
	for {
		next, found, err := r.firstParked(ctx, pj.tables(), target.Stream)
		if err != nil {
			return res, err
		}
		if !found {
			break
		}
		if len(res.Applied) == 0 && next.ID != id {
			if next.Position > target.Position {
				// The event asked for was retried concurrently and is gone.
				return res, fmt.Errorf("parked event %d: %w", id, ErrParkedNotFound)
			}
			return res, &NotFirstError{ID: id, First: next.ID}
		}
		applyErr, err := r.reapply(ctx, pj, next)
		if err != nil {
			return res, err
		}
		if applyErr != nil {
			next.Attempts++
			next.Error = applyErr.Error()
			res.Failed = &next
			break
		}
		res.Applied = append(res.Applied, next)
		pj.unpark(next.Stream)
	}
	res.StillParked = pj.parkedIn(target.Stream)
	return res, nil
}

func (r *Runner) firstParked(ctx context.Context, t Tables, stream string) (ParkedEvent, bool, error) {
	row := r.db.SQL.QueryRowContext(ctx, r.db.Dialect.Rebind(`SELECT `+parkedColumns+` FROM `+ParkedTable+`
		WHERE table_set = ? AND stream = ? ORDER BY position LIMIT 1`), t.Prefix(), stream)
	p, err := scanParked(row)
	if errors.Is(err, sql.ErrNoRows) {
		return ParkedEvent{}, false, nil
	}
	if err != nil {
		return ParkedEvent{}, false, fmt.Errorf("parked events of %s: %w", stream, err)
	}
	return p, true, nil
}

// reapply applies one parked event and removes it from the queue in one transaction. The
// checkpoint does not move: it passed the event when it was parked. applyErr is the
// projection's refusal (recorded on the parked row); err is anything else.
func (r *Runner) reapply(ctx context.Context, pj *projector, p ParkedEvent) (applyErr, err error) {
	e, err := r.store.EventByID(ctx, p.EventID)
	if err != nil {
		return nil, fmt.Errorf("read parked event %s: %w", p.EventID, err)
	}
	tx, err := r.db.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin retry of %s: %w", p.EventID, err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	if applyErr = safeApply(ctx, pj.p, tx, pj.tables(), e); applyErr != nil {
		if err := tx.Rollback(); err != nil {
			return nil, fmt.Errorf("roll back retry of %s: %w", p.EventID, err)
		}
		_, err := r.db.SQL.ExecContext(ctx, r.db.Dialect.Rebind(`UPDATE `+ParkedTable+`
			SET error = ?, attempts = attempts + 1 WHERE id = ?`), storableText(applyErr.Error()), p.ID)
		if err != nil {
			return nil, fmt.Errorf("record failed retry of %s: %w", p.EventID, err)
		}
		return applyErr, nil
	}
	if _, err := tx.Exec(ctx, `DELETE FROM `+ParkedTable+` WHERE id = ?`, p.ID); err != nil {
		return nil, fmt.Errorf("unpark %s: %w", p.EventID, err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit retry of %s: %w", p.EventID, err)
	}
	pj.changes.Add(1)
	return nil, nil
}

// safeApply runs a projection's Apply, turning a panic into an error: a retry requested
// over HTTP must not take the server down.
func safeApply(ctx context.Context, p Projection, tx *Tx, t Tables, e eventstore.Event) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("panic: %v", v)
		}
	}()
	if err := p.Apply(ctx, tx, t, e); err != nil {
		return &ApplyError{Projection: p.Name(), Event: e, Err: err}
	}
	return nil
}

// loadParked returns how many events of each stream a set has parked.
func (r *Runner) loadParked(ctx context.Context, t Tables) (map[string]int, error) {
	rows, err := r.db.SQL.QueryContext(ctx, r.db.Dialect.Rebind(`SELECT stream, count(*) FROM `+ParkedTable+`
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
