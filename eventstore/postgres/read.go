package postgres

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
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

	// readAllBoundedSQL is readAllSQL that also marks an event whose transaction began before
	// the log's running appenders were read ($3, the first transaction id then unassigned)
	// when none of those appenders ($4) that is older still runs in the statement's snapshot:
	// a transaction of the cluster that never took a position (another schema's, a
	// migration's) does not hold the log back. See appenders.
	readAllBoundedSQL = `SELECT ` + eventColumns + `, tx < pg_snapshot_xmin(n.s) OR (tx < $3::text::xid8
    AND NOT EXISTS (SELECT FROM unnest($4::text[]::xid8[]) AS a(x)
        WHERE a.x < tx AND NOT pg_visible_in_snapshot(a.x, n.s)))
FROM events, (SELECT pg_current_snapshot() AS s) AS n WHERE position > $1 ORDER BY position LIMIT $2`

	// appendersSQL reads, in one pass over the lock table, the transactions that hold the
	// position sequence: append_events takes its positions with nextval right after the
	// transaction's id, under the position lock, and the sequence's lock is held until the
	// transaction ends. It answers whether the server is a standby (whose lock table does not
	// show the primary's transactions), the statement's snapshot's xmax (an id below it was
	// assigned before the lock table was read), how many holders have no backend (prepared
	// transactions), and the transaction ids each other holder has (its own and those of
	// its subtransactions, as pairs of arrays: the holder's pid, the 32-bit id).
	appendersSQL = `WITH l AS MATERIALIZED (
    SELECT locktype, database, relation, mode, granted, pid, transactionid FROM pg_locks),
h AS (
    SELECT DISTINCT pid FROM l
    WHERE locktype = 'relation' AND relation = 'events_position_seq'::regclass
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND mode = 'RowExclusiveLock' AND granted),
x AS (
    SELECT t.pid, t.transactionid::text::bigint AS xid FROM l AS t JOIN h ON h.pid = t.pid
    WHERE t.locktype = 'transactionid' AND t.mode = 'ExclusiveLock' AND t.granted)
SELECT pg_is_in_recovery(), pg_snapshot_xmax(pg_current_snapshot())::text,
    (SELECT count(*) FROM h WHERE pid IS NULL),
    (SELECT coalesce(array_agg(pid ORDER BY pid, xid), '{}') FROM x),
    (SELECT coalesce(array_agg(xid ORDER BY pid, xid), '{}') FROM x)`

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
		start    = time.Now()
		deadline = start.Add(s.opts.readWait)
		backoff  = 100 * time.Microsecond
		all      []eventstore.Event
		bound    *appenders // from boundAfter on: the appenders read before this query
	)
	for {
		prev := after
		var (
			events  []eventstore.Event
			blocked bool
			err     error
		)
		if bound == nil {
			events, blocked, err = s.query(ctx, readAllSQL, &prev, limit-len(all), after, limit-len(all))
		} else {
			events, blocked, err = s.query(ctx, readAllBoundedSQL, &prev, limit-len(all),
				after, limit-len(all), bound.next, bound.xids)
		}
		if err != nil {
			return nil, false, fmt.Errorf("read all after %d: %w", after, s.closedErr(err))
		}
		if all == nil {
			all = events
		} else {
			all = append(all, events...)
		}
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
		if time.Since(start) >= boundAfter {
			// Held back that long, it may be by a transaction that is no appender: ask which
			// appenders run, right before the next query.
			if bound, err = s.appenders(ctx); err != nil {
				return nil, false, fmt.Errorf("read all after %d: %w", after, s.closedErr(err))
			}
		}
	}
}

// boundAfter is how long ReadAll waits at a gap with the cluster's horizon before it reads
// which of the running transactions are the log's appenders. An append commits well within it.
const boundAfter = 10 * time.Millisecond

// appenders are the transactions that hold positions of the log and had not ended when the
// lock table was read, and the first transaction id not yet assigned just before then.
//
// Why an event whose transaction is below next may be returned once none of xids below its own
// still runs in the reader's (later) snapshot: positions are taken in transaction id order, so
// an append that holds a position below the event's has a lower transaction id, below next
// too; it had taken its id and positions, and with them the sequence's lock, before next was
// read, so if it still runs at the reader's snapshot it ran throughout and is in xids. One that
// ended before that snapshot is seen by it: its events are read, or it wrote none.
type appenders struct {
	next string   // xid8, as text
	xids []string // xid8s, as text
}

// appenders reads the log's running appenders. A holder of the sequence without a
// transaction id took no position; one without a backend (a prepared transaction) is not
// known, nor is any holder on a standby: appenders then returns nil, and the cluster's
// horizon holds.
func (s *Store) appenders(ctx context.Context) (*appenders, error) {
	var (
		standby  bool
		nextText string
		unknown  int64
		pids     []int32
		held     []int64
	)
	if err := s.pool.QueryRow(ctx, appendersSQL).Scan(&standby, &nextText, &unknown, &pids, &held); err != nil {
		return nil, fmt.Errorf("running appenders: %w", err)
	}
	if standby || unknown > 0 {
		return nil, nil
	}
	next, err := strconv.ParseUint(nextText, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("running appenders: next transaction id %q: %w", nextText, err)
	}
	if len(pids) != len(held) {
		return nil, fmt.Errorf("running appenders: %d holders for %d transaction ids", len(pids), len(held))
	}
	a := &appenders{next: nextText}
	for _, wide := range oldestPerHolder(next, pids, held) {
		a.xids = append(a.xids, strconv.FormatUint(wide, 10))
	}
	return a, nil
}

// oldestPerHolder returns, in increasing order, each holder's oldest transaction id assigned
// before next (its own, below those of its subtransactions), from the holders' pids and 32-bit
// ids side by side: each id is widened before they are compared, since they may lie on both
// sides of a wraparound.
func oldestPerHolder(next uint64, pids []int32, xids []int64) []uint64 {
	oldest := make(map[int32]uint64, len(pids))
	for i, xid := range xids {
		wide, ok := widenXID(next, uint32(xid))
		if !ok {
			continue
		}
		if o, seen := oldest[pids[i]]; !seen || wide < o {
			oldest[pids[i]] = wide
		}
	}
	out := make([]uint64, 0, len(oldest))
	for _, wide := range oldest {
		out = append(out, wide)
	}
	slices.Sort(out)
	return out
}

// widenXID returns the 64-bit transaction id (xid8) of xid, a 32-bit id, when it was assigned
// before next (ids wrap around: the one of the latest epoch below next); an id assigned since
// (false) cannot hold a position below an event whose transaction is below next.
func widenXID(next uint64, xid uint32) (uint64, bool) {
	back := uint32(next) - xid
	if back == 0 || back > 1<<31 {
		return 0, false
	}
	return next - uint64(back), true
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
func (s *Store) query(ctx context.Context, sql string, gate *int64, limit int, args ...any) ([]eventstore.Event, bool, error) {
	// Binary results are what decodeRow reads fastest; a connection in simple protocol mode
	// ignores the request, and decodeRow then scans.
	rows, err := s.pool.Query(ctx, sql, append([]any{pgx.QueryResultFormats{pgx.BinaryFormatCode}}, args...)...)
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	// A page is full more often than not: after a first guess, grow straight to the limit
	// rather than copying a large slice of large structs over and over.
	events := make([]eventstore.Event, 0, min(max(limit, 0), 256))
	d := newRowDecoder(rows, gate != nil)
	for rows.Next() {
		if len(events) == cap(events) {
			grown := make([]eventstore.Event, len(events), max(min(limit, maxPrealloc), 2*cap(events)))
			copy(grown, events)
			events = grown
		}
		events = append(events, eventstore.Event{}) // decoded in place: an Event is large
		e := &events[len(events)-1]
		old, err := d.decode(rows, e)
		if err != nil {
			return nil, false, err
		}
		if gate != nil {
			if !old && e.Position != *gate+1 {
				rows.Close()
				return events[:len(events)-1], true, rows.Err()
			}
			*gate = e.Position
		}
	}
	return events, false, rows.Err()
}

// maxPrealloc bounds how many events query makes room for before it sees them.
const maxPrealloc = 16 << 10

// rowDecoder turns rows of eventColumns (and the gate's boolean) into events.
type rowDecoder struct {
	binary bool              // every column came in binary format: decode the raw values
	names  map[string]string // stream names and types seen, shared by their events
	text   []byte            // scratch for the ID and metadata of a row
	arena  []byte            // where byte slices are cut from; see carve
	// The scanning fallback.
	dest               []any
	meta               []byte
	occurred, recorded time.Time
	old                bool
}

func newRowDecoder(rows pgx.Rows, gated bool) *rowDecoder {
	d := &rowDecoder{binary: true, names: make(map[string]string)}
	for _, f := range rows.FieldDescriptions() {
		if f.Format != pgx.BinaryFormatCode {
			d.binary = false
		}
	}
	d.dest = []any{nil, nil, nil, nil, nil, nil, &d.meta, &d.occurred, &d.recorded, nil, nil}
	if gated {
		d.dest = append(d.dest, &d.old)
	}
	return d
}

// pgEpoch is where PostgreSQL's binary timestamps count microseconds from.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()

func (d *rowDecoder) decode(rows pgx.Rows, e *eventstore.Event) (bool, error) {
	if !d.binary {
		d.dest[0], d.dest[1], d.dest[2], d.dest[3], d.dest[4], d.dest[5], d.dest[9], d.dest[10] =
			&e.Position, &e.ID, &e.Stream, &e.Version, &e.Type, &e.Data, &e.PrevHash, &e.Hash
		if err := rows.Scan(d.dest...); err != nil {
			return false, err
		}
		e.MetadataJSON = bytes.Clone(d.meta)
		if err := decodeMetadata(string(d.meta), &e.Metadata); err != nil {
			return false, fmt.Errorf("metadata of event %s: %w", e.ID, err)
		}
		e.OccurredAt, e.RecordedAt = d.occurred.UTC(), d.recorded.UTC()
		return d.old, nil
	}
	v := rows.RawValues()
	if len(v) != len(d.dest) || len(v[0]) != 8 || len(v[3]) != 8 || len(v[7]) != 8 || len(v[8]) != 8 ||
		(len(v) > 11 && len(v[11]) != 1) {
		return false, fmt.Errorf("unexpected event row: %d columns", len(v))
	}
	e.Position = int64(binary.BigEndian.Uint64(v[0]))
	// One string holds the ID and the metadata, whose fields are parts of it.
	d.text = append(append(d.text[:0], v[1]...), v[6]...)
	text := string(d.text)
	e.ID = text[:len(v[1])]
	e.Stream = d.name(v[2])
	e.Version = int64(binary.BigEndian.Uint64(v[3]))
	e.Type = d.name(v[4])
	e.Data = d.carve(v[5])
	e.PrevHash = d.carve(v[9])
	e.Hash = d.carve(v[10])
	e.MetadataJSON = d.carve(v[6]) // json's binary form is its text, as stored
	if err := decodeMetadata(text[len(v[1]):], &e.Metadata); err != nil {
		return false, fmt.Errorf("metadata of event %s: %w", e.ID, err)
	}
	e.OccurredAt = time.UnixMicro(pgEpoch + int64(binary.BigEndian.Uint64(v[7]))).UTC()
	e.RecordedAt = time.UnixMicro(pgEpoch + int64(binary.BigEndian.Uint64(v[8]))).UTC()
	return len(v) > 11 && v[11][0] == 1, nil
}

// name returns b as a string, the same string for the same bytes within one query.
func (d *rowDecoder) name(b []byte) string {
	if s, ok := d.names[string(b)]; ok {
		return s
	}
	s := string(b)
	d.names[s] = s
	return s
}

// arenaSize is the size of the buffers that the byte slices of events are cut from: one
// allocation for dozens of events instead of three per event.
const arenaSize = 64 << 10

// carve returns a copy of src cut from the arena, nil for a NULL src. Each copy is capped, so
// that appending to one never writes into the next; a caller that keeps one event keeps its
// arena alive, at most arenaSize bytes.
func (d *rowDecoder) carve(src []byte) []byte {
	if src == nil {
		return nil
	}
	if len(src) > arenaSize/4 {
		return append([]byte(nil), src...)
	}
	if cap(d.arena)-len(d.arena) < len(src) {
		d.arena = make([]byte, 0, arenaSize)
	}
	start := len(d.arena)
	d.arena = append(d.arena, src...)
	return d.arena[start:len(d.arena):len(d.arena)]
}

// LastPosition implements eventstore.Heads: the highest committed position, also when a
// transaction that took a lower one still runs (ReadAll stops before it).
func (s *Store) LastPosition(ctx context.Context) (int64, error) {
	if s.closed.Load() {
		return 0, eventstore.ErrClosed
	}
	var pos int64
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(max(position), 0) FROM events`).Scan(&pos); err != nil {
		return 0, fmt.Errorf("last position: %w", s.closedErr(err))
	}
	return pos, nil
}

// DiskSize returns the bytes the tables of the store's schema take, indexes and TOAST
// included.
func (s *Store) DiskSize(ctx context.Context) (int64, error) {
	var size int64
	err := s.pool.QueryRow(ctx, `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'm')`, s.opts.schema).Scan(&size)
	if err != nil {
		return 0, fmt.Errorf("size of the store: %w", err)
	}
	return size, nil
}
