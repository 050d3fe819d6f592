package projections

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventcrm/crm/eventstore"
)

// builder applies the log, read directly in large batches, to table sets nobody else
// writes: the sets of a rebuild or of a diff. Reading, decoding and writing overlap (a
// reader, a preparer and the writer each run in their own goroutine), so the log is read
// while the previous batch is written. Each batch is one transaction per set group with the
// sets' checkpoints, so an interrupted build resumes from them.
type builder struct {
	db    *DB
	store eventstore.Store
	batch int
	now   func() time.Time
	// conn is the SQLite connection of the build (tuned for bulk writes, see openBuildConn);
	// nil on PostgreSQL, where each set writes on a pooled connection of its own.
	conn    *sql.Conn
	targets []*target
	// inTx runs in each batch transaction of a target, after its lock: the rebuild's lease
	// check and progress row.
	inTx func(ctx context.Context, tx *Tx, tg *target, position int64) error
	// onBatch runs after each batch was written with the number of events read; onCommit
	// after each commit. An error of either stops the build.
	onBatch  func(events int, last int64) error
	onCommit func() error
	// commitEvery is how long a transaction of the build stays open across batches on
	// SQLite (0: one transaction per batch). Each commit writes every page the transaction
	// changed, and the random keys of the read models change pages all over their indexes:
	// fewer, longer transactions write each page once for many batches. The live runner
	// waits for the write lock at most that long (it goes between two transactions).
	commitEvery time.Duration
	// open is the SQLite transaction left open across batches, if any.
	open *openTx
	// head follows the log's head for progress.
	head atomic.Int64
	// lax commits without waiting for the disk on PostgreSQL (sets nobody serves yet).
	lax bool
	// analyze has finish gather the statistics of the tables on PostgreSQL: a set that will
	// be served (a rebuild). A new set has none, and its first queries would be planned
	// blind: the churn points' read took twice as long, sorting on disk. A time-travel set
	// goes without: its few questions gain less than the statistics cost.
	analyze bool
	// stmts outlive the batches' transactions.
	stmts stmtCache
	// pgConns are the PostgreSQL connections of the set groups, one each: a group's batches
	// reuse its prepared statements, and write new rows with COPY on it.
	pgMu    sync.Mutex
	pgConns map[int]*sql.Conn
}

// target is one set being built.
type target struct {
	p   Projection
	bp  BatchProjection // nil: p is applied event by event
	gen string
	t   Tables
	cp  int64 // checkpoint of t
	// parked counts the parked events of t per stream: later events of those streams are
	// parked behind them, as the live runner does.
	parked map[string]int
	// slowUntil makes the batches that start before it take the one-by-one path (with a
	// savepoint per event) right away: set when one of them met a refused event, so that
	// applying them again parks it alone.
	slowUntil int64
}

// errRefused: an event was refused (Apply failed) on a path that cannot park it alone.
var errRefused = errors.New("an event was refused")

// errSetWritten: something else wrote to a set being built.
var errSetWritten = errors.New("the set was written by another builder")

// openBuildConn takes a connection of the read-model database for the build, where the
// dialect builds on one connection tuned for it (Features.BuildPragmas).
func (b *builder) openBuildConn(ctx context.Context) error {
	pragmas := b.db.Dialect.Features().BuildPragmas
	if pragmas == nil {
		return nil
	}
	conn, err := b.db.SQL.Conn(ctx)
	if err != nil {
		return fmt.Errorf("build connection: %w", err)
	}
	for _, p := range pragmas {
		if _, err := conn.ExecContext(ctx, p); err != nil {
			conn.Close()
			return fmt.Errorf("build connection: %w", err)
		}
	}
	b.conn = conn
	return nil
}

// durable makes the build connection's next commits durable again (before a switch).
func (b *builder) durable(ctx context.Context) error {
	if b.conn == nil {
		return nil
	}
	if _, err := b.conn.ExecContext(ctx, b.db.Dialect.Features().RestorePragmas[0]); err != nil {
		return fmt.Errorf("build connection: %w", err)
	}
	return nil
}

// close releases the build's statements and returns its connection to the pool with the
// default pragmas.
func (b *builder) close() {
	b.stmts.close()
	b.pgMu.Lock()
	for _, c := range b.pgConns {
		c.Close()
	}
	b.pgConns = nil
	b.pgMu.Unlock()
	if b.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, p := range b.db.Dialect.Features().RestorePragmas {
		if _, err := b.conn.ExecContext(ctx, p); err != nil {
			// A connection with unknown pragmas must not serve anyone else.
			_ = b.conn.Raw(func(any) error { return driver.ErrBadConn })
			break
		}
	}
	b.conn.Close()
	b.conn = nil
}

// exec runs a statement on the build's connection (SQLite) or the pool.
func (b *builder) exec(ctx context.Context, query string) error {
	var err error
	if b.conn != nil {
		_, err = b.conn.ExecContext(ctx, query)
	} else {
		_, err = b.db.SQL.ExecContext(ctx, query)
	}
	return err
}

func (b *builder) begin(ctx context.Context) (*Tx, error) { return b.beginOn(ctx, -1) }

// connFor returns the connection the batches of group write on: the build's connection on
// SQLite, one of its own on PostgreSQL (nil for group -1: any pooled connection).
func (b *builder) connFor(ctx context.Context, group int) (*sql.Conn, error) {
	if b.conn != nil || group < 0 || b.db.Dialect.Features().BuildPragmas != nil {
		return b.conn, nil
	}
	b.pgMu.Lock()
	defer b.pgMu.Unlock()
	if c := b.pgConns[group]; c != nil {
		return c, nil
	}
	c, err := b.db.SQL.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("build connection: %w", err)
	}
	if b.pgConns == nil {
		b.pgConns = map[int]*sql.Conn{}
	}
	b.pgConns[group] = c
	return c, nil
}

// beginOn begins a batch transaction of group.
func (b *builder) beginOn(ctx context.Context, group int) (*Tx, error) {
	conn, err := b.connFor(ctx, group)
	if err != nil {
		return nil, err
	}
	var sqlTx *sql.Tx
	if conn != nil {
		sqlTx, err = conn.BeginTx(ctx, nil)
	} else {
		sqlTx, err = b.db.SQL.BeginTx(ctx, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	tx := &Tx{tx: sqlTx, dialect: b.db.Dialect, shared: &b.stmts, conn: conn}
	if b.stmts.db == nil {
		b.stmts.db = b.db.SQL
	}
	if lax := b.db.Dialect.Features().LaxCommit; b.lax && lax != "" {
		// Nobody is served from a set being built: a crash may lose the last batches, which
		// are applied again from their checkpoint (the switch commits synchronously).
		if _, err := tx.Exec(ctx, lax); err != nil {
			_ = sqlTx.Rollback()
			return nil, fmt.Errorf("begin: %w", err)
		}
	}
	return tx, nil
}

// createSet creates the tables of tg's set, unless they exist, and returns the statements
// of the indexes, which are cheaper to build once the tables are full (the batches load
// rows by primary key only).
func (b *builder) createSet(ctx context.Context, tg *target, unlogged bool) (indexes []string, err error) {
	if err := b.db.ensureRegistry(ctx); err != nil {
		return nil, err
	}
	for _, s := range tg.p.Schema(b.db.Dialect, tg.t) {
		if createIndex.MatchString(s) {
			indexes = append(indexes, s)
			continue
		}
		if unlogged && b.db.Dialect.Features().Unlogged {
			s = unloggedTable.ReplaceAllString(s, "${1}UNLOGGED TABLE")
		}
		if _, err := b.db.SQL.ExecContext(ctx, s); err != nil {
			return nil, fmt.Errorf("schema of %s: %w", tg.t.Prefix(), err)
		}
	}
	return indexes, nil
}

var unloggedTable = regexp.MustCompile(`(?is)^(\s*CREATE\s+)TABLE`)

// load reads tg's checkpoint and parked events.
func (b *builder) load(ctx context.Context, tg *target) error {
	cp, err := b.db.Checkpoint(ctx, tg.t)
	if err != nil {
		return err
	}
	tg.cp = cp
	tg.parked = map[string]int{}
	rows, err := b.db.SQL.QueryContext(ctx, b.db.Dialect.Rebind(`SELECT stream, count(*) FROM `+parkedTable+`
		WHERE table_set = ? GROUP BY stream`), tg.t.Prefix())
	if err != nil {
		if isNoSuchTable(err) {
			return nil
		}
		return fmt.Errorf("parked events of %s: %w", tg.t.Prefix(), err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			stream string
			n      int
		)
		if err := rows.Scan(&stream, &n); err != nil {
			return fmt.Errorf("parked events of %s: %w", tg.t.Prefix(), err)
		}
		tg.parked[stream] = n
	}
	return rows.Err()
}

// ApplyBatch applies events (in position order) to set t in one transaction with its
// checkpoint, as a rebuild applies a batch: through p's batch path when p is a
// BatchProjection, else event by event. Events at or below the checkpoint are skipped; an
// event the projection refuses is parked with the later events of its stream, the others
// are applied. It returns the checkpoint after the transaction.
func (db *DB) ApplyBatch(ctx context.Context, p Projection, t Tables, events []eventstore.Event) (int64, error) {
	tg := &target{p: p, t: t}
	if bp, ok := p.(BatchProjection); ok {
		tg.bp = bp
	}
	b := &builder{db: db, batch: max(len(events), 1), now: time.Now, targets: []*target{tg}}
	defer b.close()
	if err := b.load(ctx, tg); err != nil {
		return 0, err
	}
	events = after(events, tg.cp)
	if len(events) == 0 {
		return tg.cp, nil
	}
	rb := readBatch{events: events, from: tg.cp, last: events[len(events)-1].Position, count: len(events),
		preps: b.prepare(events, []int64{tg.cp})}
	if err := b.writeGroup(ctx, rb, b.targets, 0); err != nil {
		return 0, err
	}
	return tg.cp, nil
}

// readBatch is one read of the log, prepared for every target.
type readBatch struct {
	// events are the events read: those after from, up to last (count of them). Once every
	// target has prepared the batch they are dropped, to keep the memory of the batches in
	// flight small, and read again in the rare case they are needed (see eventsOf).
	events     []eventstore.Event
	from, last int64
	count      int
	// preps[i] is the prepared batch of targets[i] (nil: none, or it failed to prepare).
	preps []PreparedBatch
	// more is false on the last batch of the run.
	more bool
	err  error
}

// openTx is a SQLite transaction of the build that spans batches.
type openTx struct {
	tx     *Tx
	unlock func()
	opened time.Time
	// cps and parked are the targets' state as committed, restored when the transaction
	// is rolled back.
	cps    []int64
	parked []map[string]int
}

// errRedo: an open transaction was rolled back; the batches since its start must be read
// and applied again.
var errRedo = errors.New("apply the batches of the rolled back transaction again")

// run applies the log after the targets' checkpoints up to until (0: as far as the reads
// go), and returns when a read comes back short (the head is near) or until is reached.
func (b *builder) run(ctx context.Context, until int64) error {
	for {
		err := b.runOnce(ctx, until)
		if cerr := b.closeOpen(ctx, err == nil); err == nil {
			err = cerr
		}
		if !errors.Is(err, errRedo) {
			return err
		}
	}
}

// closeOpen commits (commit) or rolls back the open transaction, if any.
func (b *builder) closeOpen(ctx context.Context, commit bool) error {
	o := b.open
	if o == nil {
		return nil
	}
	b.open = nil
	defer func() { o.unlock() }()
	if !commit {
		_ = o.tx.tx.Rollback()
		for i, tg := range b.targets {
			tg.cp, tg.parked = o.cps[i], o.parked[i]
		}
		return nil
	}
	if err := o.tx.tx.Commit(); err != nil {
		for i, tg := range b.targets {
			tg.cp, tg.parked = o.cps[i], o.parked[i]
		}
		return fmt.Errorf("commit batches: %w", err)
	}
	if b.onCommit != nil {
		if err := b.onCommit(); err != nil {
			return err
		}
	}
	// A writer of another process (a server beside `crm rebuild`) waits in SQLite's busy
	// handler: a short pause between transactions lets it in.
	o.unlock()
	o.unlock = func() {}
	_ = sleep(ctx, 2*time.Millisecond)
	return nil
}

func (b *builder) runOnce(ctx context.Context, until int64) error {
	if len(b.targets) == 0 {
		return nil
	}
	from := b.targets[0].cp
	starts := make([]int64, len(b.targets))
	for i, tg := range b.targets {
		from = min(from, tg.cp)
		starts[i] = tg.cp
	}
	if until > 0 && from >= until {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Unbuffered: one batch read ahead, one being prepared, one being written.
	reads := make(chan readBatch)
	prepared := make(chan readBatch)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { b.read(ctx, from, until, reads) })
	wg.Go(func() {
		defer close(prepared)
		for rb := range reads {
			if rb.err == nil && rb.count > 0 {
				rb.preps = b.prepare(rb.events, starts)
				if !slices.Contains(rb.preps, nil) {
					rb.events = nil
				}
			}
			select {
			case prepared <- rb:
			case <-ctx.Done():
				return
			}
		}
	})
	for rb := range prepared {
		if rb.err != nil {
			return rb.err
		}
		if rb.count > 0 {
			if err := b.write(ctx, rb); err != nil {
				return err
			}
			if b.onBatch != nil {
				if err := b.onBatch(rb.count, rb.last); err != nil {
					return err
				}
			}
		}
		if !rb.more {
			return nil
		}
	}
	return ctx.Err()
}

// read sends the batches of the log after from, up to until, and follows the head.
func (b *builder) read(ctx context.Context, from, until int64, out chan<- readBatch) {
	defer close(out)
	var lastHead time.Time
	for {
		if time.Since(lastHead) > 2*time.Second || from > b.head.Load() {
			if h, err := findHead(ctx, b.store); err == nil {
				b.head.Store(max(h, b.head.Load()))
			}
			lastHead = time.Now()
		}
		// A batch reads no further than until (positions may have gaps: more is read
		// until it is passed).
		n := b.batch
		if until > 0 {
			n = int(min(int64(n), max(until-from, 1)))
		}
		events, err := b.store.ReadAll(ctx, from, n)
		if err != nil {
			select {
			case out <- readBatch{err: fmt.Errorf("read the log after %d: %w", from, err)}:
			case <-ctx.Done():
			}
			return
		}
		more := len(events) == n
		if until > 0 {
			for len(events) > 0 && events[len(events)-1].Position > until {
				events = events[:len(events)-1]
				more = false
			}
			if len(events) > 0 && events[len(events)-1].Position == until {
				more = false
			}
		}
		rb := readBatch{events: events, from: from, count: len(events), more: more}
		if len(events) > 0 {
			rb.last = events[len(events)-1].Position
		}
		select {
		case out <- rb:
		case <-ctx.Done():
			return
		}
		if !more || len(events) == 0 {
			return
		}
		from = events[len(events)-1].Position
	}
}

// prepare decodes a batch for each target that has a batch path, in parallel; each event is
// decoded once for all of them.
func (b *builder) prepare(events []eventstore.Event, starts []int64) []PreparedBatch {
	preps := make([]PreparedBatch, len(b.targets))
	batch := NewBatch(events)
	var wg sync.WaitGroup
	for i, tg := range b.targets {
		if tg.bp == nil {
			continue
		}
		wg.Go(func() {
			view := batch.after(starts[i])
			if len(view.events) == 0 {
				return
			}
			// A batch that fails to prepare is applied one by one, where Apply decides.
			if p, err := tg.bp.PrepareBatch(view); err == nil {
				preps[i] = p
			}
		})
	}
	wg.Wait()
	return preps
}

// after returns the events with a position above pos.
func after(events []eventstore.Event, pos int64) []eventstore.Event {
	for i, e := range events {
		if e.Position > pos {
			return events[i:]
		}
	}
	return nil
}

// write applies a batch to every target: on SQLite in one transaction (there is one writer
// anyway), which may stay open for the next batches; on PostgreSQL one transaction per set,
// in parallel.
func (b *builder) write(ctx context.Context, rb readBatch) error {
	if b.conn != nil && b.commitEvery > 0 {
		return b.writeOpen(ctx, rb)
	}
	if b.conn != nil {
		return b.writeGroup(ctx, rb, b.targets, 0)
	}
	errs := make([]error, len(b.targets))
	var wg sync.WaitGroup
	for i := range b.targets {
		wg.Go(func() { errs[i] = b.writeGroup(ctx, rb, b.targets[i:i+1], i) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// writeOpen applies a batch to every target in the open transaction (SQLite), beginning one
// when none is open, and commits it once it has been open commitEvery or the batch is the
// last of the run. A refused event rolls it back: the batches since it began are read again
// (errRedo), the one that met the event on the one-by-one path.
func (b *builder) writeOpen(ctx context.Context, rb readBatch) error {
	if b.open == nil {
		unlock := b.db.lockWrites()
		// The transaction outlives this run of the pipeline (whose context ends with it):
		// run commits or rolls it back.
		tx, err := b.beginOn(context.WithoutCancel(ctx), 0)
		if err != nil {
			unlock()
			return err
		}
		o := &openTx{tx: tx, unlock: unlock, opened: time.Now()}
		for _, tg := range b.targets {
			o.cps = append(o.cps, tg.cp)
			o.parked = append(o.parked, tg.parked)
		}
		b.open = o
	}
	slow := make([]bool, len(b.targets))
	for i, tg := range b.targets {
		slow[i] = rb.from < tg.slowUntil
	}
	cps, parked, err := b.applyGroup(ctx, b.open.tx, &rb, b.targets, 0, slow)
	var re *refusedError
	if errors.As(err, &re) {
		if slow[re.target] {
			return err
		}
		b.targets[re.target].slowUntil = rb.last
		_ = b.closeOpen(ctx, false)
		return errRedo
	}
	if err != nil {
		return err
	}
	for i, tg := range b.targets {
		tg.cp, tg.parked = cps[i], parked[i]
	}
	if time.Since(b.open.opened) >= b.commitEvery || !rb.more {
		return b.closeOpen(ctx, true)
	}
	return nil
}

// writeGroup applies a batch to targets (those of b.targets from index first) in one
// transaction. When a prepared batch or a plain apply meets an event it cannot apply,
// the transaction is rolled back and done again with a savepoint per event of that target,
// so the refused event is parked alone.
func (b *builder) writeGroup(ctx context.Context, rb readBatch, targets []*target, first int) error {
	slow := make([]bool, len(targets))
	for i, tg := range targets {
		slow[i] = rb.from < tg.slowUntil
	}
	for {
		cps, parked, err := b.tryGroup(ctx, &rb, targets, first, slow)
		var re *refusedError
		if errors.As(err, &re) && !slow[re.target] {
			slow[re.target] = true
			continue
		}
		if err != nil {
			return err
		}
		for i, tg := range targets {
			tg.cp = cps[i]
			tg.parked = parked[i]
		}
		if b.onCommit != nil {
			return b.onCommit()
		}
		return nil
	}
}

// refusedError says which target of a group met a refused event.
type refusedError struct{ target int }

func (e *refusedError) Error() string { return errRefused.Error() }
func (e *refusedError) Unwrap() error { return errRefused }

// tryGroup applies a batch to targets in a transaction of its own.
func (b *builder) tryGroup(ctx context.Context, rb *readBatch, targets []*target, first int, slow []bool) ([]int64, []map[string]int, error) {
	unlock := b.db.lockWrites()
	defer func() { unlock() }()
	tx, err := b.beginOn(ctx, first)
	if err != nil {
		return nil, nil, err
	}
	defer tx.tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	cps, parked, err := b.applyGroup(ctx, tx, rb, targets, first, slow)
	if err != nil {
		return nil, nil, err
	}
	if err := tx.tx.Commit(); err != nil {
		return nil, nil, fmt.Errorf("commit batch: %w", err)
	}
	if b.conn != nil {
		// A writer of another process (a server beside `crm rebuild`) waits in SQLite's busy
		// handler: a short pause between batches lets it in.
		unlock()
		unlock = func() {}
		_ = sleep(ctx, 2*time.Millisecond)
	}
	return cps, parked, nil
}

// applyGroup applies a batch to targets inside tx, with their checkpoints; it returns their
// checkpoints and parked counts after it (the caller keeps them once tx committed).
func (b *builder) applyGroup(ctx context.Context, tx *Tx, rb *readBatch, targets []*target, first int, slow []bool) ([]int64, []map[string]int, error) {
	cps := make([]int64, len(targets))
	parked := make([]map[string]int, len(targets))
	for i, tg := range targets {
		cps[i], parked[i] = tg.cp, tg.parked
		if tg.cp >= rb.last {
			continue
		}
		last := rb.last
		if err := b.db.Dialect.LockSet(ctx, tx, tg.t); err != nil {
			return nil, nil, err
		}
		var stored int64
		err := tx.QueryRow(ctx, `SELECT position FROM `+checkpointsTable+` WHERE set_name = ?`, tg.t.Prefix()).Scan(&stored)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, nil, fmt.Errorf("checkpoint of %s: %w", tg.t.Prefix(), err)
		}
		if stored != tg.cp {
			return nil, nil, fmt.Errorf("%s at %d, expected %d: %w", tg.t.Prefix(), stored, tg.cp, errSetWritten)
		}
		if b.inTx != nil {
			if err := b.inTx(ctx, tx, tg, last); err != nil {
				return nil, nil, err
			}
		}
		prep := rb.preps[first+i]
		fast := !slow[i] && prep != nil
		if fast && len(tg.parked) > 0 {
			events, err := b.eventsOf(ctx, rb)
			if err != nil {
				return nil, nil, err
			}
			fast = !touchesParked(after(events, tg.cp), tg.parked)
		}
		switch {
		case fast:
			if err := prep.Apply(ctx, tx, tg.t); err != nil {
				if ctx.Err() != nil {
					return nil, nil, ctx.Err()
				}
				return nil, nil, &refusedError{target: i}
			}
		default:
			events, err := b.eventsOf(ctx, rb)
			if err != nil {
				return nil, nil, err
			}
			p, err := b.applyEvents(ctx, tx, tg, after(events, tg.cp), slow[i])
			if errors.Is(err, errRefused) {
				return nil, nil, &refusedError{target: i}
			}
			if err != nil {
				return nil, nil, err
			}
			parked[i] = p
		}
		if err := saveCheckpoint(ctx, tx, tg.t, last); err != nil {
			return nil, nil, err
		}
		cps[i] = last
	}
	return cps, parked, nil
}

// eventsOf returns the events of a batch, reading them again when they were dropped after
// preparing: the same count after the same position.
func (b *builder) eventsOf(ctx context.Context, rb *readBatch) ([]eventstore.Event, error) {
	if rb.events != nil || rb.count == 0 {
		return rb.events, nil
	}
	events, err := b.store.ReadAll(ctx, rb.from, rb.count)
	if err != nil {
		return nil, fmt.Errorf("read the log after %d again: %w", rb.from, err)
	}
	if len(events) != rb.count || events[len(events)-1].Position != rb.last {
		return nil, fmt.Errorf("read the log after %d again: %d events, want %d up to %d", rb.from, len(events), rb.count, rb.last)
	}
	rb.events = events
	return events, nil
}

func touchesParked(events []eventstore.Event, parked map[string]int) bool {
	if len(parked) == 0 {
		return false
	}
	for _, e := range events {
		if parked[e.Stream] > 0 {
			return true
		}
	}
	return false
}

// applyEvents applies events one by one with Apply. Events of a stream with parked events
// are parked behind them. With savepoints, an event Apply refuses is parked (rolled back
// alone), as the live runner's poison queue would; without, the refusal returns errRefused
// so the caller can do the batch again with savepoints. It returns the parked counts after
// the events (a copy: the caller keeps them once the transaction committed).
func (b *builder) applyEvents(ctx context.Context, tx *Tx, tg *target, events []eventstore.Event, savepoints bool) (map[string]int, error) {
	parked := tg.parked
	cloned := false
	park := func(e eventstore.Event, note parkNote) error {
		if !cloned {
			parked = cloneCounts(parked)
			cloned = true
		}
		if err := insertParked(ctx, tx, tg.p.Name(), tg.t, e, note, b.now()); err != nil {
			return err
		}
		parked[e.Stream]++
		return nil
	}
	for i, e := range events {
		if parked[e.Stream] > 0 {
			if err := park(e, parkNote{err: "waiting behind an earlier parked event of stream " + e.Stream}); err != nil {
				return nil, err
			}
			continue
		}
		if !savepoints {
			if err := safeApply(ctx, tg.p, tx, tg.t, e); err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				return nil, errRefused
			}
			continue
		}
		applyErr, err := savepoint(ctx, tx, i, func() error { return safeApply(ctx, tg.p, tx, tg.t, e) })
		if err != nil {
			return nil, err
		}
		if applyErr != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if err := park(e, parkNote{err: parkedError(applyErr), attempts: 1}); err != nil {
				return nil, err
			}
		}
	}
	return parked, nil
}

func cloneCounts(m map[string]int) map[string]int {
	c := make(map[string]int, len(m)+1)
	for k, v := range m {
		c[k] = v
	}
	return c
}

func saveCheckpoint(ctx context.Context, tx *Tx, t Tables, position int64) error {
	if _, err := tx.Exec(ctx, `INSERT INTO `+checkpointsTable+` (set_name, position) VALUES (?, ?)
		ON CONFLICT (set_name) DO UPDATE SET position = excluded.position`, t.Prefix(), position); err != nil {
		return fmt.Errorf("save checkpoint of %s: %w", t.Prefix(), err)
	}
	return nil
}

// finish creates the deferred indexes and, on PostgreSQL, makes unlogged tables logged:
// the set must survive a crash once it is served.
func (b *builder) finish(ctx context.Context, tg *target, indexes []string, unlogged bool) error {
	if unlogged && b.db.Dialect.Features().Unlogged {
		for _, name := range setTables(b.db.Dialect, tg.p, tg.t) {
			var persistence string
			err := b.db.SQL.QueryRowContext(ctx, `SELECT relpersistence FROM pg_class WHERE oid = to_regclass($1)`, name).Scan(&persistence)
			if err != nil {
				return fmt.Errorf("persistence of %s: %w", name, err)
			}
			if persistence != "u" {
				continue
			}
			if err := b.exec(ctx, `ALTER TABLE `+name+` SET LOGGED`); err != nil {
				return fmt.Errorf("make %s logged: %w", name, err)
			}
		}
	}
	if !b.db.Dialect.Features().IndexesSideBySide {
		for _, s := range indexes {
			if err := b.exec(ctx, s); err != nil {
				return fmt.Errorf("index of %s: %w", tg.t.Prefix(), err)
			}
		}
		return nil
	}
	// Side by side, each on a connection of its own.
	if err := b.sideBySide(ctx, indexes); err != nil {
		return fmt.Errorf("index of %s: %w", tg.t.Prefix(), err)
	}
	if !b.analyze {
		return nil
	}
	var stmts []string
	for _, name := range setTables(b.db.Dialect, tg.p, tg.t) {
		stmts = append(stmts, "ANALYZE "+name)
	}
	if err := b.sideBySide(ctx, stmts); err != nil {
		return fmt.Errorf("statistics of %s: %w", tg.t.Prefix(), err)
	}
	return nil
}

// sideBySide runs statements at once, each on a pooled connection of its own.
func (b *builder) sideBySide(ctx context.Context, stmts []string) error {
	errs := make([]error, len(stmts))
	var wg sync.WaitGroup
	for i, s := range stmts {
		wg.Go(func() {
			if _, err := b.db.SQL.ExecContext(ctx, s); err != nil {
				errs[i] = fmt.Errorf("%s: %w", s, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
