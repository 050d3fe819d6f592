package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/eventcrm/crm/eventstore"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// maxAttempts bounds how often one append retries after the head moved under it. Each
// retry means another append to the same stream succeeded; appends through one Store do not
// compete like that (see writeBatch), so it takes a storm of appends from many processes to
// one stream to run out.
const maxAttempts = 1000

// head is a stream's version and the hash of its last event. A pair read from the log stays
// true forever, which is what makes caching it safe: the database refuses a head that moved.
type head struct {
	version int64
	hash    []byte
}

// Append implements eventstore.Store. Once the Store knows the stream's head (it appended to
// or read the stream before, or expected is NoStream) the append is one round trip.
func (s *Store) Append(ctx context.Context, stream string, expected int64, events []eventstore.EventData) (eventstore.AppendResult, error) {
	if s.closed.Load() {
		return eventstore.AppendResult{}, eventstore.ErrClosed
	}
	if err := eventstore.ValidateAppend(stream, expected, events); err != nil {
		return eventstore.AppendResult{}, err
	}
	res, h, err := s.appendTo(ctx, s.pool, s.submit, stream, expected, events)
	if err != nil {
		var conflict *eventstore.VersionConflictError
		if errors.As(err, &conflict) {
			return eventstore.AppendResult{}, err // already names the stream
		}
		if !errors.Is(err, eventstore.ErrDuplicateEventID) {
			// The append may or may not have committed: forget the head rather than trust it.
			s.heads.forget(stream)
		}
		return eventstore.AppendResult{}, fmt.Errorf("append %s: %w", stream, s.closedErr(err))
	}
	if h != nil {
		s.heads.offer(stream, *h)
		s.wake.Notify()
		s.requestNotify()
	}
	return res, nil
}

// appendTo runs an append: it reads with q and writes with write. It returns the new head
// when it wrote the events, nil when the append was an idempotent retry.
//
// Append writes through the Store's writers; tests write with writeIn, in a transaction they
// hold open (where a stale head is an error: append_events must start its transaction).
func (s *Store) appendTo(ctx context.Context, q querier, write func(context.Context, *appendCall) appendOutcome, stream string, expected int64, events []eventstore.EventData) (eventstore.AppendResult, *head, error) {
	now := eventstore.NormalizeTime(s.opts.now())
	rows := newAppendRows(stream, events, now)

	cur, ok := s.heads.get(stream)
	fresh := false // cur was read from the database during this append
	switch {
	case ok:
	case expected == eventstore.NoStream:
		// cur is the zero head: right unless this is a conflict, which the database tells.
	default:
		var err error
		if cur, err = readHead(ctx, q, stream); err != nil {
			return eventstore.AppendResult{}, nil, err
		}
		fresh = true
	}
	for range maxAttempts {
		if expected != eventstore.AnyVersion && cur.version != expected {
			if !fresh {
				var err error
				if cur, err = readHead(ctx, q, stream); err != nil {
					return eventstore.AppendResult{}, nil, err
				}
				fresh = true
				continue
			}
			return s.conflict(ctx, q, stream, expected, cur.version, events)
		}
		rows.chain(cur)
		out := write(ctx, &appendCall{stream: stream, expected: expected, head: cur, rows: rows})
		var pgErr *pgconn.PgError
		switch err := out.err; {
		case errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "events_id_key":
			res, err := s.retried(ctx, q, stream, events)
			return res, nil, err
		case errors.As(err, &pgErr) && pgErr.Code == "23505":
			// Not expected (the head row serializes a stream's appends), but a unique
			// violation is a conflict, never a raw driver error: read the head and decide.
			if cur, err = readHead(ctx, q, stream); err != nil {
				return eventstore.AppendResult{}, nil, err
			}
			fresh = true
			continue
		case err != nil:
			return eventstore.AppendResult{}, nil, err
		case !out.appended:
			cur, fresh = out.head, true
			continue
		}
		return eventstore.AppendResult{Version: out.head.version, Position: out.position}, &out.head, nil
	}
	return eventstore.AppendResult{}, nil, &eventstore.VersionConflictError{Stream: stream, Expected: expected, Actual: cur.version}
}

// conflict reports a failed expected-version check, unless the append is a retry of one that
// succeeded.
func (s *Store) conflict(ctx context.Context, q querier, stream string, expected, actual int64, events []eventstore.EventData) (eventstore.AppendResult, *head, error) {
	res, err := s.retried(ctx, q, stream, events)
	switch {
	case err == nil:
		return res, nil, nil
	case errors.Is(err, errNotStored):
		return eventstore.AppendResult{}, nil, &eventstore.VersionConflictError{Stream: stream, Expected: expected, Actual: actual}
	default:
		return eventstore.AppendResult{}, nil, err
	}
}

// errNotStored: none of the event IDs of an append is stored.
var errNotStored = errors.New("no event id stored")

// retriedSQL finds stored events by ID, with what tells whether they are one whole append:
// the events of one stream that one transaction wrote. A transaction may hold the appends of
// many streams (see writeLoop), but never two that succeeded on one stream: the second was
// chained to the head the first replaced.
const retriedSQL = `SELECT e.id, e.stream, e.version, e.position, e.tx::text,
	EXISTS (SELECT 1 FROM events b WHERE b.stream = e.stream AND b.version = e.version - 1 AND b.tx = e.tx),
	EXISTS (SELECT 1 FROM events a WHERE a.stream = e.stream AND a.version = e.version + 1 AND a.tx = e.tx)
FROM events e WHERE e.id = ANY($1)`

// retried returns the result of the stored append whose events are exactly events, in order,
// in stream: an idempotent retry. It returns errNotStored when no ID is stored and
// ErrDuplicateEventID when some are, but not as that append.
func (s *Store) retried(ctx context.Context, q querier, stream string, events []eventstore.EventData) (eventstore.AppendResult, error) {
	ids := make([]string, len(events))
	for i, e := range events {
		ids[i] = e.ID
	}
	type stored struct {
		stream        string
		version, pos  int64
		tx            string
		before, after bool
	}
	rows, err := q.Query(ctx, retriedSQL, ids)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	found := make(map[string]stored, len(events))
	var id string
	var st stored
	_, err = pgx.ForEachRow(rows, []any{&id, &st.stream, &st.version, &st.pos, &st.tx, &st.before, &st.after}, func() error {
		found[id] = st
		return nil
	})
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	if len(found) == 0 {
		return eventstore.AppendResult{}, errNotStored
	}
	first, last := found[events[0].ID], found[events[len(events)-1].ID]
	exact := len(found) == len(events) && !first.before && !last.after
	for i, e := range events {
		f, ok := found[e.ID]
		if !exact || !ok || f.stream != stream || f.tx != first.tx ||
			f.version != first.version+int64(i) || f.pos != first.pos+int64(i) {
			exact = false
			break
		}
	}
	if !exact {
		for _, e := range events {
			if _, ok := found[e.ID]; ok {
				return eventstore.AppendResult{}, fmt.Errorf("event id %s: %w", e.ID, eventstore.ErrDuplicateEventID)
			}
		}
	}
	return eventstore.AppendResult{Version: last.version, Position: last.pos}, nil
}

func readHead(ctx context.Context, q querier, stream string) (head, error) {
	var h head
	err := q.QueryRow(ctx, "SELECT version, hash FROM streams WHERE stream = $1", stream).Scan(&h.version, &h.hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return head{}, nil
	}
	if err != nil {
		return head{}, fmt.Errorf("read head: %w", err)
	}
	return h, nil
}

// appendRows holds an append as the column arrays append_events takes.
type appendRows struct {
	stream     string
	events     []eventstore.EventData
	recordedAt time.Time
	ids        []string
	types      []string
	data       [][]byte
	metadata   []string
	metaJSON   [][]byte // the bytes of metadata, which the hashes cover
	occurredAt []time.Time
	hashes     [][]byte
}

func newAppendRows(stream string, events []eventstore.EventData, now time.Time) *appendRows {
	r := &appendRows{
		stream:     stream,
		events:     events,
		recordedAt: now,
		ids:        make([]string, len(events)),
		types:      make([]string, len(events)),
		data:       make([][]byte, len(events)),
		metadata:   make([]string, len(events)),
		metaJSON:   make([][]byte, len(events)),
		occurredAt: make([]time.Time, len(events)),
		hashes:     make([][]byte, len(events)),
	}
	for i, e := range events {
		// Data is copied: a caller that gives up waiting may reuse its slices while a writer
		// still sends them.
		r.ids[i], r.types[i], r.data[i] = e.ID, e.Type, bytes.Clone(e.Data)
		// The one encoding of the metadata: stored and hashed as these bytes.
		r.metaJSON[i] = eventstore.EncodeMetadata(e.Metadata)
		r.metadata[i] = string(r.metaJSON[i])
		r.occurredAt[i] = now
		if !e.OccurredAt.IsZero() {
			r.occurredAt[i] = eventstore.NormalizeTime(e.OccurredAt)
		}
	}
	return r
}

// recordedAts is recordedAt for every event.
func (r *appendRows) recordedAts() []time.Time {
	at := make([]time.Time, len(r.ids))
	for i := range at {
		at[i] = r.recordedAt
	}
	return at
}

// chain computes the hashes of the events as the successors of h.
func (r *appendRows) chain(h head) {
	prev := h.hash
	for i, e := range r.events {
		r.hashes[i] = eventstore.ChainHash(prev, eventstore.Event{
			ID:           e.ID,
			Stream:       r.stream,
			Version:      h.version + int64(i) + 1,
			Type:         e.Type,
			Data:         r.data[i],
			MetadataJSON: r.metaJSON[i],
			OccurredAt:   r.occurredAt[i],
			RecordedAt:   r.recordedAt,
		})
		prev = r.hashes[i]
	}
}

// headCache remembers stream heads. An entry is a hint: the database checks it on append.
type headCache struct {
	mu    sync.Mutex
	max   int
	heads map[string]head
}

func newHeadCache(max int) *headCache {
	return &headCache{max: max, heads: make(map[string]head)}
}

func (c *headCache) get(stream string) (head, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.heads[stream]
	return h, ok
}

// offer records h unless a later head of the stream is known.
func (c *headCache) offer(stream string, h head) {
	if c.max == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.heads[stream]; ok && old.version >= h.version {
		return
	}
	if len(c.heads) >= c.max {
		// Drop an arbitrary eighth: cheaper than an LRU, and a missing head costs one read.
		n := c.max/8 + 1
		for k := range c.heads {
			delete(c.heads, k)
			if n--; n == 0 {
				break
			}
		}
	}
	c.heads[stream] = h
}

func (c *headCache) forget(stream string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.heads, stream)
}
