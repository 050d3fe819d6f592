package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/eventcrm/crm/eventstore"
	sqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// maxCachedHeads bounds the writer's cache of stream heads; past it the cache starts over.
const maxCachedHeads = 100_000

// request is one append or checkpoint save waiting for the writer.
type request struct {
	ctx      context.Context
	stream   string
	expected int64
	events   []pendingEvent
	// checkpoint, when not nil, makes this a checkpoint save instead of an append.
	checkpoint *checkpointSave
	done       chan response // buffered: the writer never waits for the caller
}

type pendingEvent struct {
	id         string
	typ        string
	data       []byte
	metaJSON   []byte    // stored and hashed as it is
	occurredAt time.Time // normalized; zero means "when recorded"
}

type checkpointSave struct {
	name     string
	position int64
}

type response struct {
	res eventstore.AppendResult
	err error
}

// head is the last version of a stream and the hash of its last event.
type head struct {
	version int64
	hash    []byte
}

// writer owns the single write connection. It commits the requests that queued up during the
// previous commit in one transaction, each inside its own savepoint, so that one fsync
// acknowledges many appends while each append still succeeds or fails on its own.
type writer struct {
	conn     *sql.Conn
	reqs     chan *request
	stop     chan struct{} // closed by shutdown
	done     chan struct{} // closed when run returns
	maxBatch int
	now      func() time.Time
	notify   func()

	// heads caches committed stream heads, so most appends skip the lookup. It is dropped when
	// PRAGMA data_version says another connection (another process) wrote to the file.
	heads       map[string]head
	dataVersion int64
	// batchHeads holds the heads written by the current transaction until it commits, and
	// batchEvents counts its events.
	batchHeads  map[string]head
	batchEvents int64

	stmt writeStatements

	commits, requests, events atomic.Int64
}

type writeStatements struct {
	begin, commit, rollback               *sql.Stmt
	savepoint, release, rollbackTo        *sql.Stmt
	dataVersion, head, insert, upsertHead *sql.Stmt
	locate, saveCheckpoint                *sql.Stmt
}

func newWriter(ctx context.Context, conn *sql.Conn, opts options, notify func()) (*writer, error) {
	w := &writer{
		conn:        conn,
		reqs:        make(chan *request, opts.maxBatch),
		stop:        make(chan struct{}),
		done:        make(chan struct{}),
		maxBatch:    opts.maxBatch,
		now:         opts.now,
		notify:      notify,
		heads:       make(map[string]head),
		dataVersion: -1,
		batchHeads:  make(map[string]head),
	}
	for _, p := range []struct {
		stmt  **sql.Stmt
		query string
	}{
		// IMMEDIATE takes the write lock at once, so a commit cannot fail for a lock
		// upgrade after the batch was executed.
		{&w.stmt.begin, "BEGIN IMMEDIATE"},
		{&w.stmt.commit, "COMMIT"},
		{&w.stmt.rollback, "ROLLBACK"},
		{&w.stmt.savepoint, "SAVEPOINT request"},
		{&w.stmt.release, "RELEASE request"},
		{&w.stmt.rollbackTo, "ROLLBACK TO request"},
		{&w.stmt.dataVersion, "PRAGMA data_version"},
		{&w.stmt.head, "SELECT version, hash FROM streams WHERE stream = ?"},
		{&w.stmt.insert, `INSERT INTO events
			(id, stream, version, type, data, metadata, occurred_at, recorded_at, prev_hash, hash)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&w.stmt.upsertHead, `INSERT INTO streams (stream, version, hash) VALUES (?, ?, ?)
			ON CONFLICT (stream) DO UPDATE SET version = excluded.version, hash = excluded.hash`},
		{&w.stmt.locate, "SELECT stream, version, position FROM events WHERE id = ?"},
		{&w.stmt.saveCheckpoint, `INSERT INTO checkpoints (name, position) VALUES (?, ?)
			ON CONFLICT (name) DO UPDATE SET position = excluded.position`},
	} {
		stmt, err := conn.PrepareContext(ctx, p.query)
		if err != nil {
			w.closeStatements()
			return nil, fmt.Errorf("prepare %q: %w", p.query, err)
		}
		*p.stmt = stmt
	}
	return w, nil
}

func (w *writer) stats() Stats {
	return Stats{Commits: w.commits.Load(), Requests: w.requests.Load(), Events: w.events.Load()}
}

// submit hands r to the writer and waits for its answer.
func (w *writer) submit(r *request) (eventstore.AppendResult, error) {
	select {
	case <-w.stop:
		return eventstore.AppendResult{}, eventstore.ErrClosed
	default:
	}
	select {
	case w.reqs <- r:
	case <-w.stop:
		return eventstore.AppendResult{}, eventstore.ErrClosed
	case <-r.ctx.Done():
		return eventstore.AppendResult{}, r.ctx.Err()
	}
	select {
	case resp := <-r.done:
		return resp.res, resp.err
	case <-r.ctx.Done():
		// The writer may still commit r: the outcome is unknown, as after a lost network
		// reply. A retry with the same event IDs is safe.
		return eventstore.AppendResult{}, r.ctx.Err()
	case <-w.done:
		select {
		case resp := <-r.done:
			return resp.res, resp.err
		default: // sent after the writer's last look at the queue
			return eventstore.AppendResult{}, eventstore.ErrClosed
		}
	}
}

// run is the writer goroutine.
func (w *writer) run() {
	defer close(w.done)
	batch := make([]*request, 0, w.maxBatch)
	for {
		select {
		case r := <-w.reqs:
			batch = w.gather(batch[:0], r)
			w.commitBatch(batch)
		case <-w.stop:
			// Finish what was accepted before Close; later senders see done and get ErrClosed.
			for {
				select {
				case r := <-w.reqs:
					batch = w.gather(batch[:0], r)
					w.commitBatch(batch)
				default:
					return
				}
			}
		}
	}
}

// gather adds to batch every request already waiting, up to maxBatch. It does not wait for
// more: the requests that arrive during this commit form the next group.
func (w *writer) gather(batch []*request, first *request) []*request {
	batch = append(batch, first)
	for len(batch) < w.maxBatch {
		select {
		case r := <-w.reqs:
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

func (w *writer) shutdown() {
	close(w.stop)
	<-w.done
}

func (w *writer) close() error {
	w.closeStatements()
	return w.conn.Close()
}

func (w *writer) closeStatements() {
	for _, s := range []*sql.Stmt{
		w.stmt.begin, w.stmt.commit, w.stmt.rollback, w.stmt.savepoint, w.stmt.release,
		w.stmt.rollbackTo, w.stmt.dataVersion, w.stmt.head, w.stmt.insert, w.stmt.upsertHead,
		w.stmt.locate, w.stmt.saveCheckpoint,
	} {
		if s != nil {
			s.Close()
		}
	}
}

// commitBatch runs batch in one transaction and answers every request of it. The writer's
// statements run with a background context: one caller giving up must not interrupt the
// transaction the others share.
func (w *writer) commitBatch(batch []*request) {
	bg := context.Background()
	resps := make([]response, len(batch))
	fail := func(err error) {
		for i := range resps {
			resps[i] = response{err: err}
		}
		w.answer(batch, resps)
	}
	if _, err := w.stmt.begin.ExecContext(bg); err != nil {
		fail(fmt.Errorf("begin: %w", err))
		return
	}
	if err := w.checkDataVersion(bg); err != nil {
		w.abort(bg)
		fail(err)
		return
	}
	clear(w.batchHeads)
	w.batchEvents = 0
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil { // its caller is gone: do not write it
			resps[i].err = err
			continue
		}
		if _, err := w.stmt.savepoint.ExecContext(bg); err != nil {
			w.abort(bg)
			fail(fmt.Errorf("savepoint: %w", err))
			return
		}
		res, err := w.apply(bg, r)
		if err != nil {
			if _, rbErr := w.stmt.rollbackTo.ExecContext(bg); rbErr != nil {
				w.abort(bg)
				fail(fmt.Errorf("roll back to savepoint: %w", rbErr))
				return
			}
			if errors.Is(err, errConstraint) {
				// The statement that broke a constraint is undone; explain it now that the
				// request's other rows are undone too.
				res, err = w.explain(bg, r, err)
			}
		}
		if _, relErr := w.stmt.release.ExecContext(bg); relErr != nil {
			w.abort(bg)
			fail(fmt.Errorf("release savepoint: %w", relErr))
			return
		}
		resps[i] = response{res: res, err: err}
	}
	if _, err := w.stmt.commit.ExecContext(bg); err != nil {
		w.abort(bg)
		fail(fmt.Errorf("commit: %w", err))
		return
	}
	for stream, h := range w.batchHeads {
		w.cacheHead(stream, h)
	}
	w.commits.Add(1)
	w.requests.Add(int64(len(batch)))
	w.events.Add(w.batchEvents)
	w.notify()
	w.answer(batch, resps)
}

func (w *writer) answer(batch []*request, resps []response) {
	for i, r := range batch {
		r.done <- resps[i]
	}
}

// abort rolls the transaction back after a failure and forgets the cached heads, which may
// now be ahead of the file.
func (w *writer) abort(ctx context.Context) {
	_, _ = w.stmt.rollback.ExecContext(ctx) // fails harmlessly when SQLite already rolled back
	clear(w.heads)
	w.dataVersion = -1
}

// checkDataVersion drops the cached heads when another connection has written to the file
// since the writer last looked.
func (w *writer) checkDataVersion(ctx context.Context) error {
	var v int64
	if err := w.stmt.dataVersion.QueryRowContext(ctx).Scan(&v); err != nil {
		return fmt.Errorf("data version: %w", err)
	}
	if v != w.dataVersion {
		clear(w.heads)
		w.dataVersion = v
	}
	return nil
}

func (w *writer) cacheHead(stream string, h head) {
	if len(w.heads) >= maxCachedHeads {
		if _, ok := w.heads[stream]; !ok {
			clear(w.heads)
		}
	}
	w.heads[stream] = h
}

// head returns the head of stream as this transaction sees it.
func (w *writer) head(ctx context.Context, stream string) (head, error) {
	if h, ok := w.batchHeads[stream]; ok {
		return h, nil
	}
	if h, ok := w.heads[stream]; ok {
		return h, nil
	}
	h, err := w.loadHead(ctx, stream)
	if err != nil {
		return head{}, err
	}
	w.cacheHead(stream, h) // not written by this transaction, so it is the committed head
	return h, nil
}

func (w *writer) loadHead(ctx context.Context, stream string) (head, error) {
	var h head
	err := w.stmt.head.QueryRowContext(ctx, stream).Scan(&h.version, &h.hash)
	if errors.Is(err, sql.ErrNoRows) {
		return head{}, nil
	}
	if err != nil {
		return head{}, fmt.Errorf("stream head: %w", err)
	}
	return h, nil
}

// errConstraint marks a constraint violation that explain turns into the store's error.
var errConstraint = errors.New("constraint violation")

// apply executes one request inside its savepoint.
func (w *writer) apply(ctx context.Context, r *request) (eventstore.AppendResult, error) {
	if c := r.checkpoint; c != nil {
		if _, err := w.stmt.saveCheckpoint.ExecContext(ctx, c.name, c.position); err != nil {
			return eventstore.AppendResult{}, fmt.Errorf("save checkpoint %s: %w", c.name, err)
		}
		return eventstore.AppendResult{}, nil
	}
	h, err := w.head(ctx, r.stream)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	if r.expected != eventstore.AnyVersion && r.expected != h.version {
		// Not necessarily a conflict: it may be the retry of an append that was committed.
		return w.explain(ctx, r, nil)
	}
	now := eventstore.NormalizeTime(w.now())
	prev := h.hash
	if prev == nil {
		prev = []byte{} // prev_hash is NOT NULL: version 1 chains to the empty hash
	}
	version := h.version
	var position int64
	for _, e := range r.events {
		version++
		occurred := e.occurredAt
		if occurred.IsZero() {
			occurred = now
		}
		hash := eventstore.ChainHash(prev, eventstore.Event{
			ID: e.id, Stream: r.stream, Version: version, Type: e.typ, Data: e.data,
			MetadataJSON: e.metaJSON, OccurredAt: occurred, RecordedAt: now,
		})
		res, err := w.stmt.insert.ExecContext(ctx, e.id, r.stream, version, e.typ, e.data, e.metaJSON,
			occurred.UnixMicro(), now.UnixMicro(), prev, hash)
		if err != nil {
			if isConstraint(err) {
				return eventstore.AppendResult{}, fmt.Errorf("%w: %w", errConstraint, err)
			}
			return eventstore.AppendResult{}, fmt.Errorf("insert event %s: %w", e.id, err)
		}
		if position, err = res.LastInsertId(); err != nil {
			return eventstore.AppendResult{}, fmt.Errorf("position of event %s: %w", e.id, err)
		}
		prev = hash
	}
	if _, err := w.stmt.upsertHead.ExecContext(ctx, r.stream, version, prev); err != nil {
		return eventstore.AppendResult{}, fmt.Errorf("stream head: %w", err)
	}
	w.batchHeads[r.stream] = head{version: version, hash: prev}
	w.batchEvents += int64(len(r.events))
	return eventstore.AppendResult{Version: version, Position: position}, nil
}

// explain decides what an append that cannot be written as asked is: the idempotent retry
// of a committed append (its original result, no error), a reuse of stored event IDs
// (ErrDuplicateEventID), or a version conflict. cause is the constraint violation that
// led here, if any.
func (w *writer) explain(ctx context.Context, r *request, cause error) (eventstore.AppendResult, error) {
	retry, stored := true, 0
	var last eventstore.AppendResult
	var dup string
	for i, e := range r.events {
		var stream string
		var version, position int64
		err := w.stmt.locate.QueryRowContext(ctx, e.id).Scan(&stream, &version, &position)
		if errors.Is(err, sql.ErrNoRows) {
			retry = false
			continue
		}
		if err != nil {
			return eventstore.AppendResult{}, fmt.Errorf("look up event %s: %w", e.id, err)
		}
		if stored == 0 {
			dup = fmt.Sprintf("event %s is stored in %q at version %d", e.id, stream, version)
		}
		stored++
		switch {
		case stream != r.stream:
			retry = false
		case i == 0 && r.expected != eventstore.AnyVersion && version != r.expected+1:
			retry = false // same stream, but not where this append would have put it
		case i > 0 && version != last.Version+1:
			retry = false
		}
		last = eventstore.AppendResult{Version: version, Position: position}
	}
	if retry && stored == len(r.events) {
		return last, nil
	}
	if stored > 0 {
		return eventstore.AppendResult{}, fmt.Errorf("%s: %w", dup, eventstore.ErrDuplicateEventID)
	}
	// No stored ID: a real version conflict. Read the head from the file, not the cache, in
	// case the cache was what went wrong.
	h, err := w.loadHead(ctx, r.stream)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	delete(w.heads, r.stream)
	if err := eventstore.CheckExpected(r.stream, r.expected, h.version); err != nil {
		return eventstore.AppendResult{}, err
	}
	if cause == nil {
		cause = errors.New("no cause")
	}
	return eventstore.AppendResult{}, fmt.Errorf("unexplained conflict at version %d: %w", h.version, cause)
}

// isConstraint reports whether err is SQLite refusing a row for a UNIQUE or PRIMARY KEY
// constraint.
func isConstraint(err error) bool {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code() {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return true
	}
	return false
}
