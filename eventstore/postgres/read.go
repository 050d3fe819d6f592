package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/eventcrm/crm/eventstore"
	"github.com/jackc/pgx/v5"
)

const eventColumns = `position, id, stream, version, type, data, metadata, occurred_at, recorded_at, prev_hash, hash`

const (
	readStreamSQL = `SELECT ` + eventColumns + ` FROM events
WHERE stream = $1 AND version >= $2 ORDER BY version LIMIT $3`

	// readAllSQL marks the events whose transaction is older than every running one: no
	// transaction that may take a lower position still runs (see append_events). ReadAll
	// also returns an event that directly follows the previous one, whatever its
	// transaction: no position between them is left to commit. It stops at the first event
	// that is neither. The subquery runs once, with the statement's own snapshot.
	readAllSQL = `SELECT ` + eventColumns + `, tx < (SELECT pg_snapshot_xmin(pg_current_snapshot()))
FROM events WHERE position > $1 ORDER BY position LIMIT $2`

	eventByIDSQL = `SELECT ` + eventColumns + ` FROM events WHERE id = $1`
)

// ReadStream implements eventstore.Store. A stream's versions need no watermark: an append
// to a stream waits for the previous one to commit (on the head row), so they become visible
// in order.
func (s *Store) ReadStream(ctx context.Context, stream string, from int64, limit int) ([]eventstore.Event, error) {
	if s.closed.Load() {
		return nil, eventstore.ErrClosed
	}
	events, _, err := s.query(ctx, readStreamSQL, nil, limit, stream, from, max(limit, 0))
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", stream, s.closedErr(err))
	}
	if len(events) > 0 {
		last := events[len(events)-1]
		s.heads.offer(stream, head{version: last.Version, hash: last.Hash})
		return events, nil
	}
	// No event from there on: tell an empty tail from a missing stream.
	var version int64
	err = s.pool.QueryRow(ctx, "SELECT version FROM streams WHERE stream = $1", stream).Scan(&version)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, fmt.Errorf("read stream %s: %w", stream, eventstore.ErrStreamNotFound)
	case err != nil:
		return nil, fmt.Errorf("read stream %s: %w", stream, s.closedErr(err))
	case version >= from && limit > 0:
		// The stream's first events committed between the two queries: read again.
		return s.ReadStream(ctx, stream, from, limit)
	}
	return events, nil
}

// ReadAll implements eventstore.Store. When it meets an event that a running transaction may
// still precede (an append that took a lower position and has not committed), it waits for
// that transaction, up to the read wait (see WithReadWait), so that what committed before
// the call is returned. Past the read wait it returns the events before that one.
func (s *Store) ReadAll(ctx context.Context, after int64, limit int) ([]eventstore.Event, error) {
	events, _, err := s.readAll(ctx, after, limit)
	return events, err
}

// readAll is ReadAll that also reports whether it stopped before an event that is stored but
// not yet safe to return.
func (s *Store) readAll(ctx context.Context, after int64, limit int) ([]eventstore.Event, bool, error) {
	if s.closed.Load() {
		return nil, false, eventstore.ErrClosed
	}
	if limit <= 0 {
		return nil, false, nil
	}
	var (
		deadline = time.Now().Add(s.opts.readWait)
		backoff  = 100 * time.Microsecond
		all      []eventstore.Event
	)
	for {
		prev := after
		events, blocked, err := s.query(ctx, readAllSQL, &prev, limit-len(all), after, limit-len(all))
		if err != nil {
			return nil, false, fmt.Errorf("read all after %d: %w", after, s.closedErr(err))
		}
		all = append(all, events...)
		after = prev
		wait := time.Until(deadline)
		if !blocked || len(all) == limit || wait <= 0 {
			return all, blocked, nil
		}
		// Usually an append of a moment ago that is committing right now.
		if err := sleep(ctx, min(backoff, wait)); err != nil {
			return nil, false, fmt.Errorf("read all after %d: %w", after, err)
		}
		backoff = min(2*backoff, 20*time.Millisecond)
	}
}

// EventByID implements eventstore.Store.
func (s *Store) EventByID(ctx context.Context, id string) (eventstore.Event, error) {
	if s.closed.Load() {
		return eventstore.Event{}, eventstore.ErrClosed
	}
	events, _, err := s.query(ctx, eventByIDSQL, nil, 1, id)
	if err != nil {
		return eventstore.Event{}, fmt.Errorf("event %s: %w", id, s.closedErr(err))
	}
	if len(events) == 0 {
		return eventstore.Event{}, fmt.Errorf("event %s: %w", id, eventstore.ErrEventNotFound)
	}
	return events[0], nil
}

// query runs a query that selects eventColumns. With a gate, the query also selects whether
// the event's transaction is older than every running one, and query returns the events up
// to the first that is neither that nor the direct successor of *gate, the position before
// it; it reports whether it stopped there and leaves the last position returned in *gate.
func (s *Store) query(ctx context.Context, sql string, gate *int64, sizeHint int, args ...any) ([]eventstore.Event, bool, error) {
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	events := make([]eventstore.Event, 0, min(max(sizeHint, 0), 1024))
	var (
		meta               []byte
		occurred, recorded time.Time
		old                bool
	)
	dest := []any{nil, nil, nil, nil, nil, nil, &meta, &occurred, &recorded, nil, nil}
	if gate != nil {
		dest = append(dest, &old)
	}
	for rows.Next() {
		var e eventstore.Event
		dest[0], dest[1], dest[2], dest[3], dest[4], dest[5], dest[9], dest[10] =
			&e.Position, &e.ID, &e.Stream, &e.Version, &e.Type, &e.Data, &e.PrevHash, &e.Hash
		if err := rows.Scan(dest...); err != nil {
			return nil, false, err
		}
		if gate != nil {
			if !old && e.Position != *gate+1 {
				rows.Close()
				return events, true, rows.Err()
			}
			*gate = e.Position
		}
		if err := json.Unmarshal(meta, &e.Metadata); err != nil {
			return nil, false, fmt.Errorf("metadata of event %s: %w", e.ID, err)
		}
		e.OccurredAt = occurred.UTC()
		e.RecordedAt = recorded.UTC()
		events = append(events, e)
	}
	return events, false, rows.Err()
}
