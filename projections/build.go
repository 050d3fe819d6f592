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

// DefaultRebuildBatch is how many events a read of the builder takes unless its user says
// otherwise: rebuilds, diffs and time travel.
const DefaultRebuildBatch = 10_000

// Builder applies the log, read directly in large batches, to table sets nobody else
// writes: the sets of a rebuild, of a diff and of time travel. Reading, decoding and writing
// overlap (a reader, a preparer and the writer each run in their own goroutine), so the log
// is read while the previous batch is written. Each batch is one transaction per set group
// with the sets' checkpoints, so an interrupted build resumes from them.
//
// A caller fills the exported fields, calls Open, then CreateSet and Load for each target,
// Run as often as it needs, Finish for each target and Close. A Builder is used by one
// goroutine at a time.
type Builder struct {
	DB    *DB
	Store eventstore.Store
	// Batch is how many events one read of the log takes.
	Batch int
	// Now is the clock of parked_at.
	Now     func() time.Time
	Targets []*Target
	// InTx runs in each batch transaction of a target, after its lock: the rebuild's lease
	// check and progress row.
	InTx func(ctx context.Context, tx *Tx, tg *Target, position int64) error
	// OnBatch runs after each batch was written with the number of events read; OnCommit
	// after each commit. An error of either stops the build.
	OnBatch  func(events int, last int64) error
	OnCommit func() error
	// Committed, when set, runs right after each commit with the targets it committed, before
	// OnCommit: on PostgreSQL, where each set commits on its own, in parallel, from the
	// goroutine that wrote the set, so it reads only those targets.
	Committed func(targets []*Target)
	// CommitEvery is how long a transaction of the build stays open across batches on
	// SQLite (0: one transaction per batch). Each commit writes every page the transaction
	// changed, and the random keys of the read models change pages all over their indexes:
	// fewer, longer transactions write each page once for many batches. The live runner
	// waits for the write lock at most that long (it goes between two transactions).
	CommitEvery time.Duration
	// Lax commits without waiting for the disk on PostgreSQL (sets nobody serves yet).
	Lax bool
	// BoundLocks makes every statement of the build that writes or creates its set wait for
	// a lock at most LockTimeout (Features.BoundedLockWait), then fail with ErrLockTimeout:
	// a time-travel build, which other servers' drops and builds must never wait on for
	// long. The statements run in transactions of the build's own connections.
	BoundLocks bool
	// Analyze has Finish gather the statistics of the tables on PostgreSQL, and vacuum them:
	// a set that will be served (a rebuild). A new set has none, and its first queries would be planned
	// blind: the churn points' read took twice as long, sorting on disk. A time-travel set
	// goes without: its few questions gain less than the statistics cost.
	Analyze bool

	// conn is the SQLite connection of the build (tuned for bulk writes, see Open); nil on
	// PostgreSQL, where each set writes on a pooled connection of its own.
	conn *sql.Conn
	// open is the SQLite transaction left open across batches, if any.
	open *openTx
	// head follows the log's head for progress.
	head atomic.Int64
	// stmts outlive the batches' transactions.
	stmts stmtCache
	// pgConns are the PostgreSQL connections the sets write on (see writers), the set i on
	// pgConns[i mod writers]: its batches reuse the connection's prepared statements, and
	// write new rows with COPY on it.
	pgMu    sync.Mutex
	pgConns map[int]*sql.Conn
}

// Head is the head of the log as the build last saw it.
func (b *Builder) Head() int64 { return b.head.Load() }

// Target is one set being built.
type Target struct {
	Projection Projection
	// BatchPath is Projection's batch path; nil: it is applied event by event.
	BatchPath BatchProjection
	// Generation names the set among the projection's sets ("g3", "x…"); informative.
	Generation string
	Tables     Tables
	// Checkpoint is the position of the last event applied to Tables (Load reads it).
	Checkpoint int64
	// Parked counts the parked events of the set per stream: later events of those
	// streams are parked behind them, as the live runner does.
	Parked map[string]int
	// SlowUntil makes the batches that start before it take the one-by-one path (with a
	// savepoint per event) right away: set when one of them met a refused event, so that
	// applying them again parks it alone.
	SlowUntil int64
}

// NewTarget returns the target building set t of p, through p's batch path when it has one.
func NewTarget(p Projection, t Tables) *Target {
	tg := &Target{Projection: p, Tables: t}
	if bp, ok := p.(BatchProjection); ok {
		tg.BatchPath = bp
	}
	return tg
}

// Errors of the builder.
var (
	// ErrRefused: an event was refused (Apply failed) on a path that cannot park it alone.
	ErrRefused = errors.New("an event was refused")
	// ErrSetWritten: something else wrote to a set being built.
	ErrSetWritten = errors.New("the set was written by another builder")
)

// Open takes a connection of the read-model database for the build, where the
// dialect builds on one connection tuned for it (Features.BuildPragmas).
func (b *Builder) Open(ctx context.Context) error {
	pragmas := b.DB.Dialect.Features().BuildPragmas
	if pragmas == nil {
		return nil
	}
	conn, err := b.DB.SQL.Conn(ctx)
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

// Durable makes the build connection's next commits durable again (before a switch).
func (b *Builder) Durable(ctx context.Context) error {
	if b.conn == nil {
		return nil
	}
	if _, err := b.conn.ExecContext(ctx, b.DB.Dialect.Features().RestorePragmas[0]); err != nil {
		return fmt.Errorf("build connection: %w", err)
	}
	return nil
}

// Close releases the build's statements, ends the build for its targets' projections (see
// BuildEnder) and returns its connection to the pool with the default pragmas.
func (b *Builder) Close() {
	for _, tg := range b.Targets {
		if e, ok := tg.BatchPath.(BuildEnder); ok {
			e.EndBuild(tg.Tables)
		}
	}
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
	for _, p := range b.DB.Dialect.Features().RestorePragmas {
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
func (b *Builder) exec(ctx context.Context, query string) error {
	var err error
	if b.conn != nil {
		_, err = b.conn.ExecContext(ctx, query)
	} else {
		_, err = b.DB.SQL.ExecContext(ctx, query)
	}
	return err
}

// Begin begins a transaction on the build's connection (SQLite) or a pooled one, lax like
// the batches: for work of the build outside them (copying a set).
func (b *Builder) Begin(ctx context.Context) (*Tx, error) { return b.beginOn(ctx, -1) }

// connFor returns the connection the batches of group write on: the build's connection on
// SQLite, one of its own on PostgreSQL (nil for group -1: any pooled connection).
func (b *Builder) connFor(ctx context.Context, group int) (*sql.Conn, error) {
	if b.conn != nil || group < 0 || b.DB.Dialect.Features().BuildPragmas != nil {
		return b.conn, nil
	}
	b.pgMu.Lock()
	defer b.pgMu.Unlock()
	if c := b.pgConns[group]; c != nil {
		return c, nil
	}
	c, err := b.DB.SQL.Conn(ctx)
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
func (b *Builder) beginOn(ctx context.Context, group int) (*Tx, error) {
	conn, err := b.connFor(ctx, group)
	if err != nil {
		return nil, err
	}
	var sqlTx *sql.Tx
	if conn != nil {
		sqlTx, err = conn.BeginTx(ctx, nil)
	} else {
		sqlTx, err = b.DB.SQL.BeginTx(ctx, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	tx := &Tx{tx: sqlTx, dialect: b.DB.Dialect, shared: &b.stmts, conn: conn}
	if b.stmts.db == nil {
		b.stmts.db = b.DB.SQL
	}
	if lax := b.DB.Dialect.Features().LaxCommit; b.Lax && lax != "" {
		// Nobody is served from a set being built: a crash may lose the last batches, which
		// are applied again from their checkpoint (the switch commits synchronously).
		if _, err := tx.Exec(ctx, lax); err != nil {
			_ = sqlTx.Rollback()
			return nil, fmt.Errorf("begin: %w", err)
		}
	}
	if bound := b.DB.Dialect.Features().BoundedLockWait; b.BoundLocks && bound != "" {
		// Its statements are run plainly, each on this transaction's connection, where the
		// driver prepares and keeps them: a statement prepared on another pooled
		// connection would be a wait of this transaction the database cannot see.
		tx.plain = true
		if _, err := tx.Exec(ctx, bound); err != nil {
			_ = sqlTx.Rollback()
			return nil, fmt.Errorf("begin: %w", err)
		}
	}
	return tx, nil
}

// BeginDurable begins a transaction that commits durably (the switch).
func (b *Builder) BeginDurable(ctx context.Context) (*Tx, error) {
	var (
		sqlTx *sql.Tx
		err   error
	)
	if b.conn != nil {
		sqlTx, err = b.conn.BeginTx(ctx, nil)
	} else {
		sqlTx, err = b.DB.SQL.BeginTx(ctx, nil)
	}
	if err != nil {
		return nil, err
	}
	return &Tx{tx: sqlTx, dialect: b.DB.Dialect}, nil
}

// CreateSet creates the tables of tg's set, unless they exist, and returns the statements
// of the indexes, which are cheaper to build once the tables are full (the batches load
// rows by primary key only).
func (b *Builder) CreateSet(ctx context.Context, tg *Target, unlogged bool) (indexes []string, err error) {
	if err := b.DB.EnsureRegistry(ctx); err != nil {
		return nil, err
	}
	for _, s := range tg.Projection.Schema(b.DB.Dialect, tg.Tables) {
		if createIndex.MatchString(s) {
			indexes = append(indexes, s)
			continue
		}
		if unlogged && b.DB.Dialect.Features().Unlogged {
			s = unloggedTable.ReplaceAllString(s, "${1}UNLOGGED TABLE")
		}
		if err := b.execBounded(ctx, s); err != nil {
			return nil, fmt.Errorf("schema of %s: %w", tg.Tables.Prefix(), err)
		}
	}
	return indexes, nil
}

var unloggedTable = regexp.MustCompile(`(?is)^(\s*CREATE\s+)TABLE`)

// Load reads tg's checkpoint and parked events.
func (b *Builder) Load(ctx context.Context, tg *Target) error {
	cp, err := b.DB.Checkpoint(ctx, tg.Tables)
	if err != nil {
		return err
	}
	tg.Checkpoint = cp
	tg.Parked = map[string]int{}
	rows, err := b.DB.SQL.QueryContext(ctx, b.DB.Dialect.Rebind(`SELECT stream, count(*) FROM `+ParkedTable+`
		WHERE table_set = ? GROUP BY stream`), tg.Tables.Prefix())
	if err != nil {
		if IsNoSuchTable(err) {
			return nil
		}
		return fmt.Errorf("parked events of %s: %w", tg.Tables.Prefix(), err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			stream string
			n      int
		)
		if err := rows.Scan(&stream, &n); err != nil {
			return fmt.Errorf("parked events of %s: %w", tg.Tables.Prefix(), err)
		}
		tg.Parked[stream] = n
	}
	return rows.Err()
}

// ApplyBatch applies events (in position order) to set t in one transaction with its
// checkpoint, as a rebuild applies a batch: through p's batch path when p is a
// BatchProjection, else event by event. Events at or below the checkpoint are skipped; an
// event the projection refuses is parked with the later events of its stream, the others
// are applied. It returns the checkpoint after the transaction.
func (db *DB) ApplyBatch(ctx context.Context, p Projection, t Tables, events []eventstore.Event) (int64, error) {
	tg := NewTarget(p, t)
	b := &Builder{DB: db, Batch: max(len(events), 1), Now: time.Now, Targets: []*Target{tg}}
	defer b.Close()
	if err := b.Load(ctx, tg); err != nil {
		return 0, err
	}
	events = after(events, tg.Checkpoint)
	if len(events) == 0 {
		return tg.Checkpoint, nil
	}
	rb := readBatch{events: events, from: tg.Checkpoint, last: events[len(events)-1].Position, count: len(events),
		preps: b.prepare(events, tg.Checkpoint, []int64{tg.Checkpoint})}
	if err := b.writeGroup(ctx, rb, b.Targets, 0); err != nil {
		return 0, err
	}
	return tg.Checkpoint, nil
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

// Run applies the log after the targets' checkpoints up to until (0: as far as the reads
// go), and returns when a read comes back short (the head is near) or until is reached.
func (b *Builder) Run(ctx context.Context, until int64) error {
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
func (b *Builder) closeOpen(ctx context.Context, commit bool) error {
	o := b.open
	if o == nil {
		return nil
	}
	b.open = nil
	defer func() { o.unlock() }()
	if !commit {
		_ = o.tx.Rollback()
		for i, tg := range b.Targets {
			tg.Checkpoint, tg.Parked = o.cps[i], o.parked[i]
		}
		return nil
	}
	if err := o.tx.Commit(); err != nil {
		for i, tg := range b.Targets {
			tg.Checkpoint, tg.Parked = o.cps[i], o.parked[i]
		}
		return fmt.Errorf("commit batches: %w", err)
	}
	if b.Committed != nil {
		b.Committed(b.Targets)
	}
	if b.OnCommit != nil {
		if err := b.OnCommit(); err != nil {
			return err
		}
	}
	// A writer of another process (a server beside `crm rebuild`) waits in SQLite's busy
	// handler: a short pause between transactions lets it in.
	o.unlock()
	o.unlock = func() {}
	_ = Sleep(ctx, 2*time.Millisecond)
	return nil
}

func (b *Builder) runOnce(ctx context.Context, until int64) error {
	if len(b.Targets) == 0 {
		return nil
	}
	from := b.Targets[0].Checkpoint
	starts := make([]int64, len(b.Targets))
	for i, tg := range b.Targets {
		from = min(from, tg.Checkpoint)
		starts[i] = tg.Checkpoint
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
				rb.preps = b.prepare(rb.events, rb.from, starts)
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
			if b.OnBatch != nil {
				if err := b.OnBatch(rb.count, rb.last); err != nil {
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
func (b *Builder) read(ctx context.Context, from, until int64, out chan<- readBatch) {
	defer close(out)
	var lastHead time.Time
	for {
		if time.Since(lastHead) > 2*time.Second || from > b.head.Load() {
			if h, err := LogHead(ctx, b.Store); err == nil {
				b.head.Store(max(h, b.head.Load()))
			}
			lastHead = time.Now()
		}
		// A batch reads no further than until (positions may have gaps: more is read
		// until it is passed).
		n := b.Batch
		if until > 0 {
			n = int(min(int64(n), max(until-from, 1)))
		}
		events, err := b.Store.ReadAll(ctx, from, n)
		if err != nil {
			select {
			case out <- readBatch{err: fmt.Errorf("read the log after %d: %w", from, err)}:
			case <-ctx.Done():
			}
			return
		}
		more := len(events) == n
		if until > 0 {
			reached := false
			for len(events) > 0 && events[len(events)-1].Position > until {
				events = events[:len(events)-1]
				reached = true
			}
			if len(events) > 0 && events[len(events)-1].Position == until {
				reached = true
			}
			if reached {
				more = false
			} else if !more {
				// A short read that stops before until is the end of the log only if the
				// log ends there. Past a gap, a log reader returns what lies before it
				// while an older transaction might still write into it: the rest is read
				// once that transaction has ended, never taken as missing.
				lastRead := from
				if len(events) > 0 {
					lastRead = events[len(events)-1].Position
				}
				h, err := committedHead(ctx, b.Store)
				if err != nil {
					select {
					case out <- readBatch{err: fmt.Errorf("head of the log after %d: %w", lastRead, err)}:
					case <-ctx.Done():
					}
					return
				}
				b.head.Store(max(h, b.head.Load()))
				more = h > lastRead
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
		if !more {
			return
		}
		if len(events) == 0 {
			// Held back before until: read again shortly (the log reader has waited already).
			if Sleep(ctx, 5*time.Millisecond) != nil {
				return
			}
			continue
		}
		from = events[len(events)-1].Position
	}
}

// committedHead is the highest committed position of the log: the store's own (one
// query, whether or not a reader may have it yet) when it tells, else the last one its
// reader returns.
func committedHead(ctx context.Context, store eventstore.Store) (int64, error) {
	if h, ok := eventstore.HeadsOf(store); ok {
		return h.LastPosition(ctx)
	}
	return LogHead(ctx, store)
}

// prepare decodes a batch for each target that has a batch path, in parallel; each event is
// decoded once for all of them. The batch is read after from; starts are the targets'
// checkpoints when the run began: a target is at the later of the two when the batch comes.
func (b *Builder) prepare(events []eventstore.Event, from int64, starts []int64) []PreparedBatch {
	preps := make([]PreparedBatch, len(b.Targets))
	batch := NewBatch(events)
	var wg sync.WaitGroup
	for i, tg := range b.Targets {
		if tg.BatchPath == nil {
			continue
		}
		wg.Go(func() {
			view := batch.after(starts[i])
			view.start = max(from, starts[i])
			if len(view.events) == 0 {
				return
			}
			// A batch that fails to prepare is applied one by one, where Apply decides.
			if p, err := tg.BatchPath.PrepareBatch(view); err == nil {
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
func (b *Builder) write(ctx context.Context, rb readBatch) error {
	if b.conn != nil && b.CommitEvery > 0 {
		return b.writeOpen(ctx, rb)
	}
	if b.conn != nil {
		return b.writeGroup(ctx, rb, b.Targets, 0)
	}
	errs := make([]error, len(b.Targets))
	writers := b.writers()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := w; i < len(b.Targets); i += writers {
				errs[i] = b.writeGroup(ctx, rb, b.Targets[i:i+1], i)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// writers is how many sets a PostgreSQL build writes at once, each on a connection it keeps
// for the build: one per set, but at most half the pool (at least one), so that the queries
// answered meanwhile, the lease renewals and the fencing checks of the live runner keep the
// other half. The sets beyond it take turns on those connections (set i on connection
// i mod writers). Every connection of a pool taken by a build would wait for ever on the
// sets still without one, and the leases of the server would be lost for want of a
// connection to renew them.
func (b *Builder) writers() int {
	n := len(b.Targets)
	if limit := b.DB.SQL.Stats().MaxOpenConnections; limit > 0 {
		n = min(n, max(limit/2, 1))
	}
	return max(n, 1)
}

// writeOpen applies a batch to every target in the open transaction (SQLite), beginning one
// when none is open, and commits it once it has been open CommitEvery or the batch is the
// last of the run. A refused event rolls it back: the batches since it began are read again
// (errRedo), the one that met the event on the one-by-one path.
func (b *Builder) writeOpen(ctx context.Context, rb readBatch) error {
	if b.open == nil {
		unlock := b.DB.LockWrites()
		// The transaction outlives this run of the pipeline (whose context ends with it):
		// run commits or rolls it back.
		tx, err := b.beginOn(context.WithoutCancel(ctx), 0)
		if err != nil {
			unlock()
			return err
		}
		o := &openTx{tx: tx, unlock: unlock, opened: time.Now()}
		for _, tg := range b.Targets {
			o.cps = append(o.cps, tg.Checkpoint)
			o.parked = append(o.parked, tg.Parked)
		}
		b.open = o
	}
	slow := make([]bool, len(b.Targets))
	for i, tg := range b.Targets {
		slow[i] = rb.from < tg.SlowUntil
	}
	cps, parked, err := b.applyGroup(ctx, b.open.tx, &rb, b.Targets, 0, slow)
	var re *refusedError
	if errors.As(err, &re) {
		if slow[re.target] {
			return err
		}
		b.Targets[re.target].SlowUntil = rb.last
		_ = b.closeOpen(ctx, false)
		return errRedo
	}
	if err != nil {
		return err
	}
	for i, tg := range b.Targets {
		tg.Checkpoint, tg.Parked = cps[i], parked[i]
	}
	if time.Since(b.open.opened) >= b.CommitEvery || !rb.more {
		return b.closeOpen(ctx, true)
	}
	return nil
}

// writeGroup applies a batch to targets (those of b.Targets from index first) in one
// transaction. When a prepared batch or a plain apply meets an event it cannot apply,
// the transaction is rolled back and done again with a savepoint per event of that target,
// so the refused event is parked alone.
func (b *Builder) writeGroup(ctx context.Context, rb readBatch, targets []*Target, first int) error {
	slow := make([]bool, len(targets))
	for i, tg := range targets {
		slow[i] = rb.from < tg.SlowUntil
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
			tg.Checkpoint = cps[i]
			tg.Parked = parked[i]
		}
		if b.Committed != nil {
			b.Committed(targets)
		}
		if b.OnCommit != nil {
			return b.OnCommit()
		}
		return nil
	}
}

// refusedError says which target of a group met a refused event.
type refusedError struct{ target int }

func (e *refusedError) Error() string { return ErrRefused.Error() }
func (e *refusedError) Unwrap() error { return ErrRefused }

// tryGroup applies a batch to targets in a transaction of its own.
func (b *Builder) tryGroup(ctx context.Context, rb *readBatch, targets []*Target, first int, slow []bool) ([]int64, []map[string]int, error) {
	unlock := b.DB.LockWrites()
	defer func() { unlock() }()
	tx, err := b.beginOn(ctx, first%b.writers())
	if err != nil {
		return nil, nil, err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	cps, parked, err := b.applyGroup(ctx, tx, rb, targets, first, slow)
	if err != nil {
		return nil, nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, nil, fmt.Errorf("commit batch: %w", err)
	}
	if b.conn != nil {
		// A writer of another process (a server beside `crm rebuild`) waits in SQLite's busy
		// handler: a short pause between batches lets it in.
		unlock()
		unlock = func() {}
		_ = Sleep(ctx, 2*time.Millisecond)
	}
	return cps, parked, nil
}

// applyGroup applies a batch to targets inside tx, with their checkpoints; it returns their
// checkpoints and parked counts after it (the caller keeps them once tx committed).
func (b *Builder) applyGroup(ctx context.Context, tx *Tx, rb *readBatch, targets []*Target, first int, slow []bool) ([]int64, []map[string]int, error) {
	cps := make([]int64, len(targets))
	parked := make([]map[string]int, len(targets))
	for i, tg := range targets {
		cps[i], parked[i] = tg.Checkpoint, tg.Parked
		if tg.Checkpoint >= rb.last {
			continue
		}
		last := rb.last
		if err := b.DB.Dialect.LockSet(ctx, tx, tg.Tables); err != nil {
			return nil, nil, err
		}
		var stored int64
		err := tx.QueryRow(ctx, `SELECT position FROM `+CheckpointsTable+` WHERE set_name = ?`, tg.Tables.Prefix()).Scan(&stored)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, nil, fmt.Errorf("checkpoint of %s: %w", tg.Tables.Prefix(), err)
		}
		if stored != tg.Checkpoint {
			return nil, nil, fmt.Errorf("%s at %d, expected %d: %w", tg.Tables.Prefix(), stored, tg.Checkpoint, ErrSetWritten)
		}
		if b.InTx != nil {
			if err := b.InTx(ctx, tx, tg, last); err != nil {
				return nil, nil, err
			}
		}
		prep := rb.preps[first+i]
		fast := !slow[i] && prep != nil
		if fast && len(tg.Parked) > 0 {
			events, err := b.eventsOf(ctx, rb)
			if err != nil {
				return nil, nil, err
			}
			fast = !touchesParked(after(events, tg.Checkpoint), tg.Parked)
		}
		switch {
		case fast:
			if err := prep.Apply(ctx, tx, tg.Tables); err != nil {
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
			p, err := b.ApplyEvents(ctx, tx, tg, after(events, tg.Checkpoint), slow[i])
			if errors.Is(err, ErrRefused) {
				return nil, nil, &refusedError{target: i}
			}
			if err != nil {
				return nil, nil, err
			}
			parked[i] = p
		}
		if err := SaveCheckpoint(ctx, tx, tg.Tables, last); err != nil {
			return nil, nil, err
		}
		cps[i] = last
	}
	return cps, parked, nil
}

// eventsOf returns the events of a batch, reading them again when they were dropped after
// preparing: the same count after the same position.
func (b *Builder) eventsOf(ctx context.Context, rb *readBatch) ([]eventstore.Event, error) {
	if rb.events != nil || rb.count == 0 {
		return rb.events, nil
	}
	events, err := b.Store.ReadAll(ctx, rb.from, rb.count)
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

// ApplyEvents applies events one by one with Apply. Events of a stream with parked events
// are parked behind them. With savepoints, an event Apply refuses is parked (rolled back
// alone), as the live runner's poison queue would; without, the refusal returns ErrRefused
// so the caller can do the batch again with savepoints. It returns the parked counts after
// the events (a copy: the caller keeps them once the transaction committed).
func (b *Builder) ApplyEvents(ctx context.Context, tx *Tx, tg *Target, events []eventstore.Event, savepoints bool) (map[string]int, error) {
	parked := tg.Parked
	cloned := false
	park := func(e eventstore.Event, note ParkNote) error {
		if !cloned {
			parked = cloneCounts(parked)
			cloned = true
		}
		if err := InsertParked(ctx, tx, tg.Projection.Name(), tg.Tables, e, note, b.Now()); err != nil {
			return err
		}
		parked[e.Stream]++
		return nil
	}
	for i, e := range events {
		if parked[e.Stream] > 0 {
			if err := park(e, ParkNote{Err: "waiting behind an earlier parked event of stream " + e.Stream}); err != nil {
				return nil, err
			}
			continue
		}
		if !savepoints {
			if err := SafeApply(ctx, tg.Projection, tx, tg.Tables, e); err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				return nil, ErrRefused
			}
			continue
		}
		applyErr, err := savepoint(ctx, tx, i, func() error { return SafeApply(ctx, tg.Projection, tx, tg.Tables, e) })
		if err != nil {
			return nil, err
		}
		if applyErr != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if err := park(e, ParkNote{Err: ParkedErrorText(applyErr), Attempts: 1}); err != nil {
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

// SaveCheckpoint records, inside tx, that every event up to position is applied to set t.
func SaveCheckpoint(ctx context.Context, tx *Tx, t Tables, position int64) error {
	if _, err := tx.Exec(ctx, `INSERT INTO `+CheckpointsTable+` (set_name, position) VALUES (?, ?)
		ON CONFLICT (set_name) DO UPDATE SET position = excluded.position`, t.Prefix(), position); err != nil {
		return fmt.Errorf("save checkpoint of %s: %w", t.Prefix(), err)
	}
	return nil
}

// Finish creates the deferred indexes and, on PostgreSQL, makes unlogged tables logged:
// the set must survive a crash once it is served.
func (b *Builder) Finish(ctx context.Context, tg *Target, indexes []string, unlogged bool) error {
	if unlogged && b.DB.Dialect.Features().Unlogged {
		for _, name := range SetTables(b.DB.Dialect, tg.Projection, tg.Tables) {
			var persistence string
			err := b.DB.SQL.QueryRowContext(ctx, `SELECT relpersistence FROM pg_class WHERE oid = to_regclass($1)`, name).Scan(&persistence)
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
	if !b.DB.Dialect.Features().IndexesSideBySide {
		for _, s := range indexes {
			if err := b.exec(ctx, s); err != nil {
				return fmt.Errorf("index of %s: %w", tg.Tables.Prefix(), err)
			}
		}
		return nil
	}
	// Side by side, each on a connection of its own.
	if err := b.SideBySide(ctx, indexes); err != nil {
		return fmt.Errorf("index of %s: %w", tg.Tables.Prefix(), err)
	}
	if !b.Analyze {
		return nil
	}
	return b.Statistics(ctx, tg, true)
}

// Statistics gathers the statistics of the tables of tg's set where the database keeps them
// (PostgreSQL; SQLite plans without), so that its questions are planned for the rows it holds
// rather than for the set as it was when last analysed, or blind: a set that grew from empty
// without them (a build in place, with autovacuum off or not yet come by) had 13-second
// searches that take 50 ms planned with them. With vacuum, the tables are vacuumed as well,
// side by side: VACUUM marks the pages of the new tables all-visible (those no transaction
// still running elsewhere may miss), so that their first index-only scans need not read table
// pages. VACUUM cannot run in a transaction, so it is not bounded (a set to be served bounds
// no lock). Without vacuum the tables are analysed one after another on one pooled
// connection (a set being served keeps the rest of the pool for its questions), each passed
// over when another session holds a lock that would make it wait (another ANALYZE, a
// VACUUM, a rebuild dropping a replaced set): a set being served must not wait on them.
func (b *Builder) Statistics(ctx context.Context, tg *Target, vacuum bool) error {
	if !b.DB.Dialect.Features().IndexesSideBySide {
		return nil
	}
	tables := SetTables(b.DB.Dialect, tg.Projection, tg.Tables)
	if vacuum {
		stmts := make([]string, len(tables))
		for i, name := range tables {
			stmts[i] = "VACUUM (ANALYZE) " + name
		}
		if err := b.sideBySide(ctx, stmts, b.exec); err != nil {
			return fmt.Errorf("statistics of %s: %w", tg.Tables.Prefix(), err)
		}
		return nil
	}
	for _, name := range tables {
		if err := b.exec(ctx, "ANALYZE (SKIP_LOCKED) "+name); err != nil {
			return fmt.Errorf("statistics of %s: ANALYZE %s: %w", tg.Tables.Prefix(), name, err)
		}
	}
	return nil
}

// execBounded runs a statement on a pooled connection; with BoundLocks, in a transaction of
// its own whose waits for locks are bounded (ErrLockTimeout).
func (b *Builder) execBounded(ctx context.Context, query string) error {
	bound := b.DB.Dialect.Features().BoundedLockWait
	if !b.BoundLocks || bound == "" {
		_, err := b.DB.SQL.ExecContext(ctx, query)
		return err
	}
	tx, err := b.DB.SQL.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	for _, q := range []string{bound, query} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return WrapLockTimeout(err)
		}
	}
	return tx.Commit()
}

// SideBySide runs statements at once, each on a pooled connection of its own.
func (b *Builder) SideBySide(ctx context.Context, stmts []string) error {
	return b.sideBySide(ctx, stmts, b.execBounded)
}

// sideBySide runs statements at once with exec.
func (b *Builder) sideBySide(ctx context.Context, stmts []string, exec func(ctx context.Context, query string) error) error {
	errs := make([]error, len(stmts))
	var wg sync.WaitGroup
	for i, s := range stmts {
		wg.Go(func() {
			if err := exec(ctx, s); err != nil {
				errs[i] = fmt.Errorf("%s: %w", s, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
