package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/eventcrm/crm/eventstore"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Limits of one batch of appends.
const (
	maxBatchAppends = 256
	maxBatchEvents  = 4096
)

const appendSQL = `SELECT r_appended, r_version, r_hash, r_position
FROM append_events($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`

// appendCall is one append ready for append_events: its events chained to head.
type appendCall struct {
	ctx      context.Context
	stream   string
	expected int64
	head     head
	rows     *appendRows
	reply    chan appendOutcome // buffered: the writer never waits for the caller
}

// appendOutcome is what append_events answered for one append: appended, or the actual head.
type appendOutcome struct {
	appended bool
	head     head
	position int64
	err      error
}

// submit hands c to the writers and waits for its outcome. An error of the context is an
// unknown outcome: the append may still be written.
func (s *Store) submit(ctx context.Context, c *appendCall) appendOutcome {
	c.ctx = ctx
	c.reply = make(chan appendOutcome, 1)
	select {
	case s.calls <- c:
	case <-ctx.Done():
		return appendOutcome{err: ctx.Err()}
	case <-s.bg.Done():
		return appendOutcome{err: eventstore.ErrClosed}
	}
	select {
	case out := <-c.reply:
		return out
	case <-ctx.Done():
		return appendOutcome{err: ctx.Err()}
	case <-s.bg.Done():
		return appendOutcome{err: eventstore.ErrClosed}
	}
}

// writeLoop is one of the Store's writers. It takes every append waiting when it is free
// and writes them in one transaction: concurrent appends share one round trip, one position
// lock, one commit and one WAL flush. Separate transactions would each pay for their
// statement, lock and commit, which on a machine with few cores caps concurrent appends near
// the sequential rate. Every append is still checked and answered on its own.
func (s *Store) writeLoop() {
	for {
		var first *appendCall
		select {
		case <-s.bg.Done():
			return
		case first = <-s.calls:
		}
		batch := []*appendCall{first}
		events := len(first.rows.ids)
	drain:
		for len(batch) < maxBatchAppends && events < maxBatchEvents {
			select {
			case c := <-s.calls:
				batch = append(batch, c)
				events += len(c.rows.ids)
			default:
				break drain
			}
		}
		s.writeBatch(batch)
	}
}

// writeBatch writes batch and answers every call of it.
func (s *Store) writeBatch(batch []*appendCall) {
	// Callers that gave up before their append was sent get a certain answer: not written.
	live := batch[:0]
	for _, c := range batch {
		if err := c.ctx.Err(); err != nil {
			c.reply <- appendOutcome{err: err}
			continue
		}
		live = append(live, c)
	}
	if len(live) == 0 {
		return
	}
	// Sorted by stream, so that appends to one stream are neighbours; stable, so that they
	// keep their order.
	slices.SortStableFunc(live, func(a, b *appendCall) int { return strings.Compare(a.stream, b.stream) })
	segs, rest := segments(live)
	ctx, cancel := abandonable(s.bg, live)
	defer cancel()
	outs, err := callAppend(ctx, s.pool, segs)
	if err != nil && len(live) > 1 && soloRetry(err) {
		// The failure may belong to one append only (a duplicate event ID): write each on
		// its own so that the others succeed and the culprit gets its own error. Chained
		// appends come after the ones they are chained to, which makes them fit again.
		for _, c := range live {
			outs, err := callAppend(ctx, s.pool, []segment{{c}})
			if err != nil {
				c.reply <- appendOutcome{err: err}
				continue
			}
			c.reply <- outs[0]
		}
		return
	}
	if err != nil {
		for _, c := range live {
			c.reply <- appendOutcome{err: err}
		}
		return
	}
	for i, seg := range segs {
		seg.answer(outs[i])
	}
	if len(rest) > 0 {
		s.answerRest(ctx, rest)
	}
}

// segment is the appends of a batch to one stream that append_events writes as one: the
// first, and those after it that take any version, each chained to the one before. A hot
// stream then takes all its waiting appends in one transaction, where otherwise only the
// first would succeed and the others would retry, one per batch, and starve. If the first
// fails, so do the ones chained to it, and they retry as they would have.
type segment []*appendCall

// segments groups calls, sorted by stream, into segments. The appends that expect a version
// of a stream that already has a segment cannot be chained (they expect the version before
// it) and are returned apart.
func segments(calls []*appendCall) (segs []segment, rest []*appendCall) {
	for i := 0; i < len(calls); {
		seg := segment{calls[i]}
		j := i + 1
		for ; j < len(calls) && calls[j].stream == calls[i].stream; j++ {
			c := calls[j]
			if c.expected != eventstore.AnyVersion {
				rest = append(rest, c)
				continue
			}
			prev := seg[len(seg)-1]
			c.head = head{
				version: prev.head.version + int64(len(prev.rows.ids)),
				hash:    prev.rows.hashes[len(prev.rows.hashes)-1],
			}
			c.rows.chain(c.head)
			seg = append(seg, c)
		}
		segs = append(segs, seg)
		i = j
	}
	return segs, rest
}

// answer replies to the calls of seg, given what append_events answered for it.
func (seg segment) answer(out appendOutcome) {
	if !out.appended {
		for _, c := range seg {
			c.reply <- out
		}
		return
	}
	after := 0 // events of the segment after the call
	for i := len(seg) - 1; i >= 0; i-- {
		c := seg[i]
		c.reply <- appendOutcome{
			appended: true,
			head:     head{version: c.head.version + int64(len(c.rows.ids)), hash: c.rows.hashes[len(c.rows.hashes)-1]},
			position: out.position - int64(after),
		}
		after += len(c.rows.ids)
	}
}

// answerRest replies to the appends that were not written because they expected a version
// of a stream that another append of the batch just moved: not appended, and the head as it
// is now, from which their callers decide.
func (s *Store) answerRest(ctx context.Context, rest []*appendCall) {
	streams := make([]string, len(rest))
	for i, c := range rest {
		streams[i] = c.stream
	}
	heads := make(map[string]head, len(rest))
	rows, err := s.pool.Query(ctx, "SELECT stream, version, hash FROM streams WHERE stream = ANY($1)", streams)
	if err == nil {
		var stream string
		var h head
		_, err = pgx.ForEachRow(rows, []any{&stream, &h.version, &h.hash}, func() error {
			heads[stream] = h
			return nil
		})
	}
	for _, c := range rest {
		if err != nil {
			c.reply <- appendOutcome{err: fmt.Errorf("read head: %w", err)}
			continue
		}
		c.reply <- appendOutcome{head: heads[c.stream]}
	}
}

// abandonable returns a context for writing calls that ends when parent does or when every
// caller has given up: a batch stuck on a lock nobody waits for any more must not hold its
// writer forever.
func abandonable(parent context.Context, calls []*appendCall) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	var waiting atomic.Int64
	waiting.Store(int64(len(calls)))
	stops := make([]func() bool, len(calls))
	for i, c := range calls {
		stops[i] = context.AfterFunc(c.ctx, func() {
			if waiting.Add(-1) == 0 {
				cancel()
			}
		})
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel()
	}
}

// soloRetry reports whether a failed batch may succeed in part when its appends run alone.
func soloRetry(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "23505", "40P01", "40001": // unique violation, deadlock, serialization failure
		return true
	}
	return false
}

// callAppend runs append_events for segs, one append per segment, in one implicit
// transaction, on q.
func callAppend(ctx context.Context, q querier, segs []segment) ([]appendOutcome, error) {
	var (
		streams    = make([]string, len(segs))
		heads      = make([]int64, len(segs))
		headHashes = make([][]byte, len(segs))
		counts     = make([]int32, len(segs))
		ids        []string
		types      []string
		data       [][]byte
		metadata   []string
		occurredAt []time.Time
		recordedAt []time.Time
		hashes     [][]byte
	)
	if len(segs) == 1 && len(segs[0]) == 1 { // the common case: no copies
		r := segs[0][0].rows
		ids, types, data, metadata, occurredAt, hashes = r.ids, r.types, r.data, r.metadata, r.occurredAt, r.hashes
		recordedAt = r.recordedAts()
	} else {
		n := 0
		for _, seg := range segs {
			for _, c := range seg {
				n += len(c.rows.ids)
			}
		}
		ids, types, data = make([]string, 0, n), make([]string, 0, n), make([][]byte, 0, n)
		metadata, occurredAt, recordedAt = make([]string, 0, n), make([]time.Time, 0, n), make([]time.Time, 0, n)
		hashes = make([][]byte, 0, n)
		for _, seg := range segs {
			for _, c := range seg {
				r := c.rows
				ids, types, data = append(ids, r.ids...), append(types, r.types...), append(data, r.data...)
				metadata, occurredAt = append(metadata, r.metadata...), append(occurredAt, r.occurredAt...)
				recordedAt, hashes = append(recordedAt, r.recordedAts()...), append(hashes, r.hashes...)
			}
		}
	}
	for i, seg := range segs {
		first := seg[0]
		streams[i], heads[i], headHashes[i] = first.stream, first.head.version, first.head.hash
		for _, c := range seg {
			counts[i] += int32(len(c.rows.ids))
		}
	}
	rows, err := q.Query(ctx, appendSQL, streams, heads, headHashes, counts,
		ids, types, data, metadata, occurredAt, recordedAt, hashes)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	outs := make([]appendOutcome, 0, len(segs))
	for rows.Next() {
		var (
			out      appendOutcome
			position *int64
		)
		if err := rows.Scan(&out.appended, &out.head.version, &out.head.hash, &position); err != nil {
			return nil, err
		}
		if position != nil {
			out.position = *position
		}
		outs = append(outs, out)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(outs) != len(segs) {
		return nil, fmt.Errorf("append_events answered %d appends of %d", len(outs), len(segs))
	}
	return outs, nil
}
