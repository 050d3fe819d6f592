package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/eventcrm/crm/eventstore"
)

const eventColumns = "position, id, stream, version, type, data, metadata, occurred_at, recorded_at, prev_hash, hash"

type readStatements struct {
	stream, all, byID, streamExists, checkpoint *sql.Stmt
}

func (r *readStatements) prepare(ctx context.Context, db *sql.DB) error {
	for _, p := range []struct {
		stmt  **sql.Stmt
		query string
	}{
		{&r.stream, "SELECT " + eventColumns + " FROM events WHERE stream = ? AND version >= ? ORDER BY version LIMIT ?"},
		{&r.all, "SELECT " + eventColumns + " FROM events WHERE position > ? ORDER BY position LIMIT ?"},
		{&r.byID, "SELECT " + eventColumns + " FROM events WHERE id = ?"},
		{&r.streamExists, "SELECT 1 FROM streams WHERE stream = ?"},
		{&r.checkpoint, "SELECT position FROM checkpoints WHERE name = ?"},
	} {
		stmt, err := db.PrepareContext(ctx, p.query)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", p.query, err)
		}
		*p.stmt = stmt
	}
	return nil
}

func (r *readStatements) close() error {
	var errs []error
	for _, s := range []*sql.Stmt{r.stream, r.all, r.byID, r.streamExists, r.checkpoint} {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	return errors.Join(errs...)
}

// Append implements eventstore.Store. It returns once the events are durable (or refused).
// An Append that returns its context's error may still have been written; retrying it with
// the same event IDs is safe.
func (s *Store) Append(ctx context.Context, stream string, expected int64, events []eventstore.EventData) (eventstore.AppendResult, error) {
	if err := eventstore.ValidateAppend(stream, expected, events); err != nil {
		return eventstore.AppendResult{}, err
	}
	if s.isClosed() {
		return eventstore.AppendResult{}, eventstore.ErrClosed
	}
	if s.w == nil {
		return eventstore.AppendResult{}, fmt.Errorf("append %s: %w", stream, ErrReadOnly)
	}
	// Encode here, on the caller's goroutine, to keep the single writer's work small.
	pending := make([]pendingEvent, len(events))
	for i, e := range events {
		// The one encoding of the metadata: stored and hashed as these bytes.
		meta := eventstore.EncodeMetadata(e.Metadata)
		data := bytes.Clone(e.Data) // the caller may reuse its slice once Append returns
		if data == nil {
			data = []byte{}
		}
		var occurred time.Time
		if !e.OccurredAt.IsZero() {
			occurred = eventstore.NormalizeTime(e.OccurredAt)
		}
		pending[i] = pendingEvent{id: e.ID, typ: e.Type, data: data, metaJSON: meta, occurredAt: occurred}
	}
	res, err := s.w.submit(&request{ctx: ctx, stream: stream, expected: expected, events: pending, done: make(chan response, 1)})
	if err != nil {
		var conflict *eventstore.VersionConflictError
		if errors.As(err, &conflict) {
			return eventstore.AppendResult{}, err // already names the stream
		}
		return eventstore.AppendResult{}, fmt.Errorf("append %s: %w", stream, err)
	}
	return res, nil
}

// ReadStream implements eventstore.Store.
func (s *Store) ReadStream(ctx context.Context, stream string, from int64, limit int) ([]eventstore.Event, error) {
	if s.isClosed() {
		return nil, eventstore.ErrClosed
	}
	events, err := s.query(ctx, s.readStmt.stream, limit, stream, from, max(limit, 0))
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", stream, s.closedErr(err))
	}
	if len(events) > 0 {
		return events, nil
	}
	// No event from there on: tell an empty tail from a missing stream.
	var one int
	err = s.readStmt.streamExists.QueryRowContext(ctx, stream).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("read stream %s: %w", stream, eventstore.ErrStreamNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", stream, s.closedErr(err))
	}
	return events, nil
}

// ReadAll implements eventstore.Store. Positions are assigned by the single writer inside its
// transaction, so they become visible in order and ReadAll never skips one.
func (s *Store) ReadAll(ctx context.Context, after int64, limit int) ([]eventstore.Event, error) {
	if s.isClosed() {
		return nil, eventstore.ErrClosed
	}
	events, err := s.query(ctx, s.readStmt.all, limit, after, max(limit, 0))
	if err != nil {
		return nil, fmt.Errorf("read all after %d: %w", after, s.closedErr(err))
	}
	return events, nil
}

// EventByID implements eventstore.Store.
func (s *Store) EventByID(ctx context.Context, id string) (eventstore.Event, error) {
	if s.isClosed() {
		return eventstore.Event{}, eventstore.ErrClosed
	}
	events, err := s.query(ctx, s.readStmt.byID, 1, id)
	if err != nil {
		return eventstore.Event{}, fmt.Errorf("event %s: %w", id, s.closedErr(err))
	}
	if len(events) == 0 {
		return eventstore.Event{}, fmt.Errorf("event %s: %w", id, eventstore.ErrEventNotFound)
	}
	return events[0], nil
}

func (s *Store) query(ctx context.Context, stmt *sql.Stmt, sizeHint int, args ...any) ([]eventstore.Event, error) {
	rows, err := stmt.QueryContext(ctx, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	events := make([]eventstore.Event, 0, min(max(sizeHint, 0), 1024))
	var (
		occurred, recorded int64
	)
	for rows.Next() {
		var e eventstore.Event
		if err := rows.Scan(&e.Position, &e.ID, &e.Stream, &e.Version, &e.Type, &e.Data, &e.MetadataJSON,
			&occurred, &recorded, &e.PrevHash, &e.Hash); err != nil {
			return nil, err
		}
		if err := decodeMetadata(e.MetadataJSON, &e.Metadata); err != nil {
			return nil, fmt.Errorf("metadata of event %s: %w", e.ID, err)
		}
		e.OccurredAt = time.UnixMicro(occurred).UTC()
		e.RecordedAt = time.UnixMicro(recorded).UTC()
		if len(e.PrevHash) == 0 {
			e.PrevHash = nil
		}
		events = append(events, e)
	}
	return events, rows.Err()
}

// Subscribe implements eventstore.Store. The writer wakes subscriptions after every commit;
// they also poll, to see what another process writes to the same file.
func (s *Store) Subscribe(ctx context.Context, after int64) (eventstore.Subscription, error) {
	return s.subs.Start(ctx, func(ctx context.Context) (eventstore.Subscription, error) {
		return eventstore.PollSubscribe(ctx, s.ReadAll, after, eventstore.PollConfig{
			Wake:     s.notifier.Wait,
			Interval: s.opts.pollInterval,
		}), nil
	})
}

// LoadCheckpoint implements eventstore.Checkpoints.
func (s *Store) LoadCheckpoint(ctx context.Context, name string) (int64, error) {
	if s.isClosed() {
		return 0, eventstore.ErrClosed
	}
	var pos int64
	err := s.readStmt.checkpoint.QueryRowContext(ctx, name).Scan(&pos)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("load checkpoint %s: %w", name, s.closedErr(err))
	}
	return pos, nil
}

// SaveCheckpoint implements eventstore.Checkpoints. The save goes through the writer, so it
// shares a commit with the appends of the moment instead of competing for the write lock.
func (s *Store) SaveCheckpoint(ctx context.Context, name string, position int64) error {
	if s.isClosed() {
		return eventstore.ErrClosed
	}
	if s.w == nil {
		return fmt.Errorf("save checkpoint %s: %w", name, ErrReadOnly)
	}
	_, err := s.w.submit(&request{ctx: ctx, checkpoint: &checkpointSave{name: name, position: position}, done: make(chan response, 1)})
	if err != nil {
		return fmt.Errorf("save checkpoint %s: %w", name, err)
	}
	return nil
}

// LastPosition implements eventstore.Heads. SQLite commits one writer at a time, so it is
// also the last position ReadAll returns.
func (s *Store) LastPosition(ctx context.Context) (int64, error) {
	var pos int64
	if err := s.read.QueryRowContext(ctx, `SELECT coalesce(max(position), 0) FROM events`).Scan(&pos); err != nil {
		return 0, fmt.Errorf("last position: %w", s.closedErr(err))
	}
	return pos, nil
}
