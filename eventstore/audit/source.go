package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eventcrm/crm/eventstore"
)

// Source reads the stored log. Rows returned belong to the caller.
type Source interface {
	// ReadAfter returns up to limit rows with position > after, in position order.
	ReadAfter(ctx context.Context, after int64, limit int) ([]Row, error)
	// ReadStream returns up to limit rows of stream with version >= from, in version order;
	// none (and no error) when there are none.
	ReadStream(ctx context.Context, stream string, from int64, limit int) ([]Row, error)
}

// StoreSource reads through an eventstore.Store: any backend, with the store's guarantees
// (PostgreSQL's ReadAll never skips a position still committing) and the metadata bytes the
// store read with each event. Feed a Tree with it; verify with a raw source where the backend
// has one, which reads the rows without the store's code in between.
func StoreSource(s eventstore.Store) Source { return storeSource{s} }

type storeSource struct{ s eventstore.Store }

func (s storeSource) ReadAfter(ctx context.Context, after int64, limit int) ([]Row, error) {
	events, err := s.s.ReadAll(ctx, after, limit)
	if err != nil {
		return nil, err
	}
	return rowsOf(events), nil
}

func (s storeSource) ReadStream(ctx context.Context, stream string, from int64, limit int) ([]Row, error) {
	events, err := s.s.ReadStream(ctx, stream, from, limit)
	if errors.Is(err, eventstore.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return rowsOf(events), nil
}

func rowsOf(events []eventstore.Event) []Row {
	rows := make([]Row, len(events))
	for i, e := range events {
		rows[i] = RowOf(e)
	}
	return rows
}

const rowColumns = "position, id, stream, version, type, data, metadata, occurred_at, recorded_at, prev_hash, hash"

// SQLQuerier is what SQLiteSource reads with: a *sql.DB, *sql.Conn or *sql.Tx.
type SQLQuerier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// SQLiteSource reads the events table of the SQLite store (eventstore/sqlite) directly, as
// stored. q may be the store's DB(), a connection to a copy of the file, or a transaction:
// verification sees what the transaction sees. The single SQLite writer makes positions
// visible in order, so a SQLiteSource can also feed a Tree.
func SQLiteSource(q SQLQuerier) Source { return sqliteSource{q} }

type sqliteSource struct{ q SQLQuerier }

func (s sqliteSource) ReadAfter(ctx context.Context, after int64, limit int) ([]Row, error) {
	return s.query(ctx, limit, "SELECT "+rowColumns+" FROM events WHERE position > ? ORDER BY position LIMIT ?", after, limit)
}

func (s sqliteSource) ReadStream(ctx context.Context, stream string, from int64, limit int) ([]Row, error) {
	return s.query(ctx, limit, "SELECT "+rowColumns+" FROM events WHERE stream = ? AND version >= ? ORDER BY version LIMIT ?", stream, from, limit)
}

func (s sqliteSource) query(ctx context.Context, limit int, query string, args ...any) ([]Row, error) {
	rows, err := s.q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	defer rows.Close()
	out := make([]Row, 0, min(max(limit, 0), 8192))
	for rows.Next() {
		var r Row
		if err := rows.Scan(&r.Position, &r.ID, &r.Stream, &r.Version, &r.Type, &r.Data, &r.Metadata,
			&r.OccurredAt, &r.RecordedAt, &r.PrevHash, &r.Hash); err != nil {
			return nil, fmt.Errorf("read events: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	return out, nil
}

// PgxQuerier is what PostgresSource reads with: a pgxpool.Pool, pgx.Conn or pgx.Tx whose
// search_path is the store's schema (as postgres.Store's Pool is).
type PgxQuerier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// PostgresSource reads the events table of the PostgreSQL store (eventstore/postgres)
// directly, as stored; q may be a transaction. It reads committed rows by position and does
// not wait for transactions still committing, so a Tree must be fed through StoreSource:
// this source is for verifying what the tree already holds.
func PostgresSource(q PgxQuerier) Source { return postgresSource{q} }

type postgresSource struct{ q PgxQuerier }

// The metadata column is json, which keeps the text it was given: ::text returns it as stored.
const pgRowColumns = "position, id, stream, version, type, data, metadata::text, occurred_at, recorded_at, prev_hash, hash"

func (s postgresSource) ReadAfter(ctx context.Context, after int64, limit int) ([]Row, error) {
	return s.query(ctx, limit, "SELECT "+pgRowColumns+" FROM events WHERE position > $1 ORDER BY position LIMIT $2", after, limit)
}

func (s postgresSource) ReadStream(ctx context.Context, stream string, from int64, limit int) ([]Row, error) {
	return s.query(ctx, limit, "SELECT "+pgRowColumns+" FROM events WHERE stream = $1 AND version >= $2 ORDER BY version LIMIT $3", stream, from, limit)
}

func (s postgresSource) query(ctx context.Context, limit int, query string, args ...any) ([]Row, error) {
	rows, err := s.q.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	defer rows.Close()
	out := make([]Row, 0, min(max(limit, 0), 8192))
	var occurred, recorded time.Time
	for rows.Next() {
		var r Row
		if err := rows.Scan(&r.Position, &r.ID, &r.Stream, &r.Version, &r.Type, &r.Data, &r.Metadata,
			&occurred, &recorded, &r.PrevHash, &r.Hash); err != nil {
			return nil, fmt.Errorf("read events: %w", err)
		}
		r.OccurredAt, r.RecordedAt = occurred.UnixMicro(), recorded.UnixMicro()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	return out, nil
}

type batch struct {
	rows []Row
	err  error
}

// prefetch reads src from after on in a goroutine of its own, a batch ahead of its reader:
// reading and hashing then use both cores. The channel closes after the first short batch,
// an error, or the end of ctx.
func prefetch(ctx context.Context, src Source, after int64, size int) <-chan batch {
	out := make(chan batch, 1)
	go func() {
		defer close(out)
		for {
			rows, err := src.ReadAfter(ctx, after, size)
			if err != nil {
				err = fmt.Errorf("read log after %d: %w", after, err)
			}
			select {
			case out <- batch{rows: rows, err: err}:
			case <-ctx.Done():
				return
			}
			if err != nil || len(rows) < size {
				return
			}
			after = rows[len(rows)-1].Position
		}
	}()
	return out
}
