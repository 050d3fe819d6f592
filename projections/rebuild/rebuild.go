package rebuild

import (
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
)

// Defaults of RebuildConfig.
const (
	DefaultRebuildLease = 30 * time.Second
	DefaultDropDelay    = 5 * time.Second
	DefaultCommitEvery  = time.Second
)

// Errors of rebuilds.
var (
	// ErrRebuildRunning: another rebuild of the projection holds its lock (in this process
	// or another); see RebuildRunningError.
	ErrRebuildRunning = errors.New("a rebuild of the projection is running")
	// ErrRebuildLost: the rebuild's lease expired and another rebuild took the projection
	// over; this one stopped without switching.
	ErrRebuildLost = errors.New("the rebuild lost its lock")
	// ErrNoRebuild: no rebuild of the projection is known.
	ErrNoRebuild = errors.New("no rebuild of the projection")
)

// RebuildRunningError names the rebuild holding the lock.
type RebuildRunningError struct {
	Projection string
	Owner      string
	Until      time.Time // when its lease ends unless renewed
}

func (e *RebuildRunningError) Error() string {
	return fmt.Sprintf("a rebuild of %s is running (%s, lease until %s)", e.Projection, e.Owner, e.Until.UTC().Format(time.RFC3339))
}

// Unwrap makes errors.Is(err, ErrRebuildRunning) hold.
func (e *RebuildRunningError) Unwrap() error { return ErrRebuildRunning }

// RebuildState is the phase of a rebuild.
type RebuildState string

// States of a rebuild.
const (
	// RebuildBuilding: applying the log to the new set; queries read the old one.
	RebuildBuilding RebuildState = "building"
	// RebuildSwitching: caught up; indexing the new set and making it the served one.
	RebuildSwitching RebuildState = "switching"
	// RebuildDropping: switched; the replaced set is dropped once its last queries ended.
	RebuildDropping RebuildState = "dropping"
	// RebuildDone: the new set is served and the old one is gone.
	RebuildDone RebuildState = "done"
	// RebuildFailed: stopped on an error; run it again to resume from its checkpoint.
	RebuildFailed RebuildState = "failed"
)

// RebuildProgress describes a rebuild.
type RebuildProgress struct {
	Projection string       `json:"projection"`
	Version    int          `json:"version"`
	TableSet   string       `json:"table_set"`
	Replaces   string       `json:"replaces,omitempty"`
	State      RebuildState `json:"state"`
	// Position is the new set's checkpoint: every event up to it is applied. On stores
	// with dense positions it counts the events done.
	Position int64 `json:"position"`
	// Total is the log's head as last seen.
	Total int64 `json:"total"`
	// Events counts the events this run applied (a resumed rebuild started at ResumedFrom).
	Events      int64 `json:"events"`
	ResumedFrom int64 `json:"resumed_from,omitempty"`
	// Rate is Events per second of this run; ETASeconds is what remains at that rate.
	Rate       float64    `json:"rate"`
	ETASeconds float64    `json:"eta_seconds"`
	StartedAt  time.Time  `json:"started_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	Error      string     `json:"error,omitempty"`
	// Parked counts the events of the new set its projection refused (and those behind
	// them), as the live runner would have parked them.
	Parked int `json:"parked,omitempty"`
}

// LiveRunner is what a rebuild needs of the live runner of its process (the runtime's
// Runner): the hand-over of steps 3 and 4 in the package documentation.
type LiveRunner interface {
	// DB is the read-model database the runner applies to.
	DB() *projections.DB
	// Projection returns the projection name runs, if it runs there.
	Projection(name string) (projections.Projection, bool)
	// Adopt moves the projection name to the set the registry serves now.
	Adopt(ctx context.Context, name string) error
	// WaitReaders returns once no query reads set t of the projection name any more.
	WaitReaders(name string, t projections.Tables)
}

// RebuildConfig configures Rebuild.
type RebuildConfig struct {
	DB    *projections.DB
	Store eventstore.Store
	// Runner, when set, is the live runner of this process: it moves to the new set as soon
	// as the switch committed, and the old set is dropped only once its queries are done.
	// Runners of other processes notice the switch themselves (RunnerConfig.RegistryPoll).
	Runner LiveRunner
	// Batch is how many events one read takes, and one transaction on PostgreSQL (default
	// DefaultRebuildBatch, the builder's).
	Batch int
	// CommitEvery is how long a transaction of the build stays open on SQLite, over as many
	// batches as fit (default DefaultCommitEvery; negative: one per batch). Each commit
	// writes every page its transaction changed, and the random keys of the read models change
	// pages all over their indexes: longer transactions write each page once for many
	// batches. The live runner of the same database waits at most that long for its turn.
	CommitEvery time.Duration
	// Lease is how long the rebuild's lock holds without renewal: a crashed rebuild can be
	// resumed by another process after it (default DefaultRebuildLease).
	Lease time.Duration
	// DropDelay is the pause between the switches and the drop of the replaced sets, so
	// queries that other processes started on them just before can end (default
	// DefaultDropDelay; negative: no pause). The sets of one rebuild wait once, together.
	DropDelay time.Duration
	// KeepOld keeps the replaced set instead of dropping it (to compare it, in tests).
	KeepOld bool
	// Unlogged builds PostgreSQL sets as UNLOGGED tables, made LOGGED before the switch:
	// less WAL while building, but a PostgreSQL crash empties them, and the build then
	// starts over (it detects the crash by the server's start time).
	Unlogged bool
	// Progress, when set, is called after every batch with the progress of each projection.
	Progress func(RebuildProgress)
	// Logger receives the switches (default: none).
	Logger watermill.LoggerAdapter
	// Now is the clock of leases and progress (default time.Now).
	Now func() time.Time

	// StopAt, when above 0, stops the build at that position, indexed but not switched to:
	// the set is left as it is (benchmarks measure a rebuild of part of a log).
	StopAt int64
	// afterBatch runs after each commit; an error stops the rebuild there (tests crash it
	// with errCrash, which leaves the lock held as a dead process would).
	afterBatch func(position int64) error
	// pause waits before the drops (default: sleep; tests record it).
	pause func(ctx context.Context, d time.Duration) error
}

func (c *RebuildConfig) setDefaults() {
	c.Batch = cmp.Or(c.Batch, projections.DefaultRebuildBatch)
	c.Lease = cmp.Or(c.Lease, DefaultRebuildLease)
	c.DropDelay = cmp.Or(c.DropDelay, DefaultDropDelay)
	c.CommitEvery = cmp.Or(c.CommitEvery, DefaultCommitEvery)
	if c.Logger == nil {
		c.Logger = watermill.NopLogger{}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.pause == nil {
		c.pause = projections.Sleep
	}
}

// Validate reports every problem of the configuration at once.
func (c RebuildConfig) Validate() error {
	errs := projections.SourceProblems(c.DB, c.Store)
	if c.Batch < 0 {
		errs = append(errs, fmt.Errorf("batch %d: want at least 1", c.Batch))
	}
	if c.Lease < 0 {
		errs = append(errs, errors.New("negative lease"))
	}
	if c.StopAt < 0 {
		errs = append(errs, fmt.Errorf("stop at %d: want a position", c.StopAt))
	}
	if c.Runner != nil && c.DB != nil && c.Runner.DB() != c.DB {
		errs = append(errs, errors.New("the runner uses another read-model database"))
	}
	return errors.Join(errs...)
}

// Rebuild rebuilds projections from the log into fresh table sets and makes them the
// served ones: blue/green, as the package documentation's hand-over describes (lock, build,
// switch, drop). For each projection it takes the rebuild lock (or returns
// ErrRebuildRunning) and builds a new generation set (TablesFor(p, "gN")) by reading the
// log directly in batches of cfg.Batch events.
//
// Several projections are built in one pass over the log. An interrupted rebuild (a
// crash, an error, ctx ending) resumes from its set's checkpoint when run again.
func Rebuild(ctx context.Context, cfg RebuildConfig, ps ...projections.Projection) ([]RebuildProgress, error) {
	rb, err := startRebuild(ctx, cfg, ps)
	if err != nil {
		return nil, err
	}
	return rb.run(ctx)
}

// rebuild is a started rebuild: it holds the locks of its projections.
type rebuild struct {
	cfg     RebuildConfig
	db      *projections.DB
	owner   string
	targets []*projections.Target
	states  []*rebuildTarget

	mu       sync.Mutex
	progress []RebuildProgress
	// watch, when set, receives every progress update (the HTTP manager).
	watch func(RebuildProgress)
}

// rebuildTarget is what a rebuild knows about one projection besides its target.
type rebuildTarget struct {
	row       rebuildRow // as found when the lock was taken
	indexes   []string
	old       projections.Tables
	started   time.Time
	startedCP int64
}

// rebuildRow is a row of RebuildsTable.
type rebuildRow struct {
	version     int
	generation  string
	tableSet    string
	phase       string // "", "building", "switched" or "done"
	oldSet      string
	owner       string
	leaseUntil  int64 // unix milliseconds
	startedAt   int64
	updatedAt   int64
	position    int64
	head        int64
	events      int64
	resumedFrom int64
	serverStart string
}

const rebuildColumns = `version, generation, table_set, phase, old_set, owner, lease_until, started_at, updated_at, position, head, events, resumed_from, server_start`

// rowScanner is a row of a query or of a transaction.
type rowScanner interface{ Scan(dest ...any) error }

func scanRebuild(row rowScanner) (rebuildRow, error) {
	var r rebuildRow
	err := row.Scan(&r.version, &r.generation, &r.tableSet, &r.phase, &r.oldSet, &r.owner, &r.leaseUntil, &r.startedAt,
		&r.updatedAt, &r.position, &r.head, &r.events, &r.resumedFrom, &r.serverStart)
	return r, err
}

func newOwner() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "rebuild-" + hex.EncodeToString(b)
}

// startRebuild validates, takes the lock of every projection (all or none) and prepares
// their sets.
func startRebuild(ctx context.Context, cfg RebuildConfig, ps []projections.Projection) (*rebuild, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("rebuild: %w", err)
	}
	if len(ps) == 0 {
		return nil, errors.New("rebuild: no projection")
	}
	seen := map[string]bool{}
	for _, p := range ps {
		if seen[p.Name()] {
			return nil, fmt.Errorf("rebuild: projection %s named twice", p.Name())
		}
		seen[p.Name()] = true
		if err := sameVersion(cfg.Runner, p); err != nil {
			return nil, err
		}
	}
	db := cfg.DB
	if err := db.EnsureRegistry(ctx); err != nil {
		return nil, err
	}
	rb := &rebuild{cfg: cfg, db: db, owner: newOwner()}
	for _, p := range ps {
		row, err := rb.lock(ctx, p)
		if err != nil {
			rb.release(context.WithoutCancel(ctx))
			return nil, err
		}
		tg := projections.NewTarget(p, projections.Tables{})
		rb.targets = append(rb.targets, tg)
		rb.states = append(rb.states, &rebuildTarget{row: row})
	}
	return rb, nil
}

// sameVersion checks that the runner of this process, if any, runs the version of p a
// rebuild builds: it could not follow a switch to another.
func sameVersion(r LiveRunner, p projections.Projection) error {
	if r == nil {
		return nil
	}
	if running, ok := r.Projection(p.Name()); ok && running.Version() != p.Version() {
		return fmt.Errorf("rebuild %s: version %d, the runner runs version %d", p.Name(), p.Version(), running.Version())
	}
	return nil
}

// lock takes the rebuild lock of p: free, expired or already ours. It returns the row as it
// was, which says what an earlier rebuild left (a set to resume, a set to drop).
func (rb *rebuild) lock(ctx context.Context, p projections.Projection) (rebuildRow, error) {
	db := rb.db
	now := rb.cfg.Now()
	tx, err := db.Begin(ctx)
	if err != nil {
		return rebuildRow{}, fmt.Errorf("lock rebuild of %s: %w", p.Name(), err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	// The row exists from the first rebuild on; inserting it first lets PostgreSQL lock it
	// (SQLite's write transaction excludes every other writer anyway).
	if _, err := tx.Exec(ctx, `INSERT INTO `+projections.RebuildsTable+` (projection, `+rebuildColumns+`)
		VALUES (?, 0, '', '', '', '', '', 0, 0, 0, 0, 0, 0, 0, '') ON CONFLICT (projection) DO NOTHING`, p.Name()); err != nil {
		return rebuildRow{}, fmt.Errorf("lock rebuild of %s: %w", p.Name(), err)
	}
	row, err := scanRebuild(tx.QueryRow(ctx, `SELECT `+rebuildColumns+` FROM `+projections.RebuildsTable+` WHERE projection = ?`+db.Dialect.ForUpdate(), p.Name()))
	if err != nil {
		return rebuildRow{}, fmt.Errorf("lock rebuild of %s: %w", p.Name(), err)
	}
	if row.owner != "" && row.owner != rb.owner && row.leaseUntil > now.UnixMilli() {
		return rebuildRow{}, &RebuildRunningError{Projection: p.Name(), Owner: row.owner, Until: time.UnixMilli(row.leaseUntil)}
	}
	if _, err := tx.Exec(ctx, `UPDATE `+projections.RebuildsTable+` SET owner = ?, lease_until = ? WHERE projection = ?`,
		rb.owner, now.Add(rb.cfg.Lease).UnixMilli(), p.Name()); err != nil {
		return rebuildRow{}, fmt.Errorf("lock rebuild of %s: %w", p.Name(), err)
	}
	if err := tx.Commit(); err != nil {
		return rebuildRow{}, fmt.Errorf("lock rebuild of %s: %w", p.Name(), err)
	}
	return row, nil
}

// release gives the locks up, keeping the rows (and the sets they name) for a resume.
func (rb *rebuild) release(ctx context.Context) {
	for _, tg := range rb.targets {
		_, _ = rb.db.SQL.ExecContext(ctx, rb.db.Dialect.Rebind(`UPDATE `+projections.RebuildsTable+` SET owner = '', lease_until = 0
			WHERE projection = ? AND owner = ?`), tg.Projection.Name(), rb.owner)
	}
}

// renew extends the leases; it fails with ErrRebuildLost when one was taken over.
func (rb *rebuild) renew(ctx context.Context) error {
	until := rb.cfg.Now().Add(rb.cfg.Lease).UnixMilli()
	for _, tg := range rb.targets {
		res, err := rb.db.SQL.ExecContext(ctx, rb.db.Dialect.Rebind(`UPDATE `+projections.RebuildsTable+` SET lease_until = ?
			WHERE projection = ? AND owner = ?`), until, tg.Projection.Name(), rb.owner)
		if err != nil {
			return fmt.Errorf("renew the rebuild lock of %s: %w", tg.Projection.Name(), err)
		}
		if n, err := res.RowsAffected(); err == nil && n == 0 {
			return fmt.Errorf("rebuild of %s: %w", tg.Projection.Name(), ErrRebuildLost)
		}
	}
	return nil
}

// keepLeases renews the leases until ctx ends; losing one cancels the rebuild.
func (rb *rebuild) keepLeases(ctx context.Context, cancel context.CancelCauseFunc) {
	projections.Every(ctx, max(rb.cfg.Lease/3, 10*time.Millisecond), func() bool {
		if err := rb.renew(ctx); err != nil && ctx.Err() == nil && errors.Is(err, ErrRebuildLost) {
			cancel(err)
			return false
		}
		// A database hiccup: the batches renew the leases too; try again next tick.
		return true
	})
}

// serverStart identifies the PostgreSQL server's life: unlogged tables are emptied by a
// crash, after which it starts again.
func (rb *rebuild) serverStart(ctx context.Context) (string, error) {
	return rb.db.Dialect.ServerStart(ctx, rb.db.SQL)
}

// prepareSets decides, per projection, which set to build (resuming an interrupted one),
// cleans up after earlier rebuilds and creates the sets.
func (rb *rebuild) prepareSets(ctx context.Context, b *projections.Builder) error {
	server, err := rb.serverStart(ctx)
	if err != nil {
		return err
	}
	now := rb.cfg.Now()
	for i, tg := range rb.targets {
		st := rb.states[i]
		row := st.row
		p := tg.Projection
		sameVersion := row.version == p.Version()
		if row.phase == "switched" && row.oldSet != "" {
			// An earlier rebuild switched but did not drop the set it replaced.
			if err := rb.dropOld(ctx, p, projections.TablesWithPrefix(row.oldSet), sameVersion); err != nil {
				return err
			}
		}
		active, err := rb.db.ActiveTables(ctx, p)
		if err != nil {
			return err
		}
		resume := row.phase == "building" && sameVersion && row.tableSet == projections.TablesFor(p, row.generation).Prefix() &&
			row.tableSet != active.Prefix()
		if resume && rb.cfg.Unlogged && row.serverStart != server {
			resume = false // PostgreSQL restarted: an unlogged set may have been emptied
		}
		if row.phase == "building" && !resume && row.tableSet != "" && row.tableSet != active.Prefix() {
			if err := rb.dropOld(ctx, p, projections.TablesWithPrefix(row.tableSet), sameVersion); err != nil {
				return err
			}
		}
		if resume {
			tg.Generation = row.generation
		} else {
			n := projections.GenerationNumber(strings.TrimSuffix(active.Prefix()[len(projections.TablesFor(p, "").Prefix()):], "_"))
			if sameVersion {
				n = max(n, projections.GenerationNumber(row.generation))
			}
			tg.Generation = "g" + strconv.Itoa(n+1)
		}
		tg.Tables = projections.TablesFor(p, tg.Generation)
		if !resume {
			// A fresh set is empty: whatever a forgotten run left under its name goes.
			if err := rb.db.DropSet(ctx, p, tg.Tables, true); err != nil {
				return err
			}
		}
		st.indexes, err = b.CreateSet(ctx, tg, rb.cfg.Unlogged)
		if err != nil {
			return err
		}
		if err := b.Load(ctx, tg); err != nil {
			return err
		}
		st.old = active
		st.started = now
		st.startedCP = tg.Checkpoint
		_, err = rb.db.SQL.ExecContext(ctx, rb.db.Dialect.Rebind(`UPDATE `+projections.RebuildsTable+` SET version = ?, generation = ?,
			table_set = ?, phase = 'building', old_set = '', started_at = ?, updated_at = ?, position = ?, head = 0, events = 0,
			resumed_from = ?, server_start = ? WHERE projection = ? AND owner = ?`),
			p.Version(), tg.Generation, tg.Tables.Prefix(), now.UnixMilli(), now.UnixMilli(), tg.Checkpoint, tg.Checkpoint, server, p.Name(), rb.owner)
		if err != nil {
			return fmt.Errorf("start rebuild of %s: %w", p.Name(), err)
		}
		rb.setProgress(i, func(pr *RebuildProgress) {
			*pr = RebuildProgress{Projection: p.Name(), Version: p.Version(), TableSet: tg.Tables.Prefix(), Replaces: active.Prefix(),
				State: RebuildBuilding, Position: tg.Checkpoint, ResumedFrom: tg.Checkpoint, StartedAt: now, UpdatedAt: now, Parked: sum(tg.Parked)}
		})
	}
	return nil
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// run builds, switches and cleans up. It releases the locks whatever happens.
func (rb *rebuild) run(ctx context.Context) (_ []RebuildProgress, err error) {
	rb.progress = make([]RebuildProgress, len(rb.targets))
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer func() {
		if err != nil {
			if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
				err = cause
			}
			rb.fail(err)
		}
		if !errors.Is(err, errCrash) {
			rb.release(context.WithoutCancel(ctx))
		}
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel(nil)
	wg.Go(func() { rb.keepLeases(ctx, cancel) })

	b := &projections.Builder{DB: rb.db, Store: rb.cfg.Store, Batch: rb.cfg.Batch, Now: rb.cfg.Now, Targets: rb.targets, Lax: true,
		Analyze: true}
	if err := b.Open(ctx); err != nil {
		return nil, err
	}
	defer b.Close()
	if err := rb.prepareSets(ctx, b); err != nil {
		return nil, err
	}
	b.InTx = rb.batchHook
	b.OnBatch = func(int, int64) error { rb.batchDone(b); return nil }
	b.OnCommit = func() error {
		if rb.cfg.afterBatch != nil {
			return rb.cfg.afterBatch(rb.targets[0].Checkpoint)
		}
		return nil
	}
	if rb.db.Dialect.Features().KeepsBuildTxOpen {
		b.CommitEvery = rb.cfg.CommitEvery
	}

	if err := b.Run(ctx, rb.cfg.StopAt); err != nil {
		return nil, fmt.Errorf("rebuild: %w", err)
	}
	for i, tg := range rb.targets {
		rb.setProgress(i, func(pr *RebuildProgress) { pr.State = RebuildSwitching })
		if err := b.Finish(ctx, tg, rb.states[i].indexes, rb.cfg.Unlogged); err != nil {
			return nil, fmt.Errorf("rebuild: %w", err)
		}
	}
	if rb.cfg.StopAt > 0 {
		return rb.snapshot(), nil
	}
	// What arrived while indexing, still fast, before the switches take the locks.
	if err := b.Run(ctx, 0); err != nil {
		return nil, fmt.Errorf("rebuild: %w", err)
	}
	if err := b.Durable(ctx); err != nil {
		return nil, err
	}
	for i, tg := range rb.targets {
		if err := rb.switchOver(ctx, b, i, tg); err != nil {
			return nil, err
		}
	}
	if err := rb.cleanUp(ctx); err != nil {
		return nil, err
	}
	return rb.snapshot(), nil
}

// batchHook runs in each batch transaction: the lease must still be ours; the progress row
// moves with the batch.
func (rb *rebuild) batchHook(ctx context.Context, tx *projections.Tx, tg *projections.Target, position int64) error {
	now := rb.cfg.Now()
	i := rb.indexOf(tg)
	pr := rb.progressOf(i)
	res, err := tx.Exec(ctx, `UPDATE `+projections.RebuildsTable+` SET lease_until = ?, updated_at = ?, position = ?, head = ?, events = ?
		WHERE projection = ? AND owner = ?`, now.Add(rb.cfg.Lease).UnixMilli(), now.UnixMilli(), position,
		max(pr.Total, position), position-rb.states[i].startedCP, tg.Projection.Name(), rb.owner)
	if err != nil {
		return fmt.Errorf("rebuild progress of %s: %w", tg.Projection.Name(), err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("rebuild of %s: %w", tg.Projection.Name(), ErrRebuildLost)
	}
	return nil
}

func (rb *rebuild) indexOf(tg *projections.Target) int {
	for i, t := range rb.targets {
		if t == tg {
			return i
		}
	}
	return -1
}

// errCrash stops a rebuild as a crash would (tests): the lock stays held until its lease
// ends.
var errCrash = errors.New("simulated crash")

// batchDone updates the progress after a batch.
func (rb *rebuild) batchDone(b *projections.Builder) {
	now := rb.cfg.Now()
	head := b.Head()
	for i, tg := range rb.targets {
		st := rb.states[i]
		rb.setProgress(i, func(pr *RebuildProgress) {
			pr.Position = tg.Checkpoint
			pr.Total = max(head, tg.Checkpoint)
			pr.Events = tg.Checkpoint - st.startedCP
			pr.UpdatedAt = now
			pr.Parked = sum(tg.Parked)
			if secs := now.Sub(st.started).Seconds(); secs > 0 {
				pr.Rate = float64(pr.Events) / secs
			}
			if pr.Rate > 0 {
				pr.ETASeconds = float64(pr.Total-pr.Position) / pr.Rate
			}
		})
	}
}

// switchOver makes tg's set the served one of its projection (see Rebuild).
func (rb *rebuild) switchOver(ctx context.Context, b *projections.Builder, i int, tg *projections.Target) error {
	for attempt := 0; ; attempt++ {
		old, err := rb.trySwitch(ctx, b, tg)
		if errors.Is(err, projections.ErrRefused) && attempt < 5 {
			// An event to park: the one-by-one path parks it alone, then the switch goes again.
			tg.SlowUntil = math.MaxInt64
			err := b.Run(ctx, 0)
			tg.SlowUntil = 0
			if err != nil {
				return fmt.Errorf("rebuild: %w", err)
			}
			continue
		}
		if err != nil {
			return err
		}
		rb.states[i].old = old
		rb.cfg.Logger.Info("Rebuilt table set switched in", watermill.LogFields{"projection": tg.Projection.Name(),
			"table_set": tg.Tables.Prefix(), "replaces": old.Prefix(), "checkpoint": tg.Checkpoint})
		if rb.runs(tg.Projection) {
			// Hand the runner over now rather than at its next transaction or poll.
			if err := rb.cfg.Runner.Adopt(ctx, tg.Projection.Name()); err != nil {
				return fmt.Errorf("rebuild %s: switched, but the runner did not follow: %w", tg.Projection.Name(), err)
			}
		}
		now := rb.cfg.Now()
		rb.setProgress(i, func(pr *RebuildProgress) {
			pr.State, pr.Position, pr.Replaces, pr.UpdatedAt = RebuildDropping, tg.Checkpoint, old.Prefix(), now
			pr.Total = max(pr.Total, tg.Checkpoint)
			pr.ETASeconds = 0
		})
		return nil
	}
}

// runs tells whether the runner of this process runs p.
func (rb *rebuild) runs(p projections.Projection) bool {
	if rb.cfg.Runner == nil {
		return false
	}
	_, ok := rb.cfg.Runner.Projection(p.Name())
	return ok
}

// trySwitch is the switch transaction. It returns ErrRefused when an event that arrived
// since the last batch is refused by the projection (the caller parks it first).
func (rb *rebuild) trySwitch(ctx context.Context, b *projections.Builder, tg *projections.Target) (old projections.Tables, err error) {
	defer rb.db.LockWrites()()
	tx, err := b.BeginDurable(ctx)
	if err != nil {
		return projections.Tables{}, fmt.Errorf("switch %s: %w", tg.Projection.Name(), err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	old, err = rb.db.ActiveTablesIn(ctx, tx, tg.Projection)
	if err != nil {
		return projections.Tables{}, err
	}
	// The live runner's transactions take the old set's lock and then read the registry:
	// they wait for this one, and then apply to the new set.
	if err := rb.db.Dialect.LockSet(ctx, tx, old); err != nil {
		return projections.Tables{}, err
	}
	if err := rb.db.Dialect.LockSet(ctx, tx, tg.Tables); err != nil {
		return projections.Tables{}, err
	}
	now := rb.cfg.Now()
	res, err := tx.Exec(ctx, `UPDATE `+projections.RebuildsTable+` SET lease_until = ? WHERE projection = ? AND owner = ?`,
		now.Add(rb.cfg.Lease).UnixMilli(), tg.Projection.Name(), rb.owner)
	if err != nil {
		return projections.Tables{}, fmt.Errorf("switch %s: %w", tg.Projection.Name(), err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return projections.Tables{}, fmt.Errorf("rebuild of %s: %w", tg.Projection.Name(), ErrRebuildLost)
	}
	oldCP, err := checkpointIn(ctx, tx, old)
	if err != nil {
		return projections.Tables{}, err
	}
	cp, err := checkpointIn(ctx, tx, tg.Tables)
	if err != nil {
		return projections.Tables{}, err
	}
	if cp != tg.Checkpoint {
		return projections.Tables{}, fmt.Errorf("switch %s: %s at %d, expected %d: %w", tg.Projection.Name(), tg.Tables.Prefix(), cp, tg.Checkpoint, projections.ErrSetWritten)
	}
	// Catch up with the log, and at least with the old set, so the served position never
	// goes back: the events that came since the last batch, applied one by one.
	parked := tg.Parked
	for wait := 0; ; {
		events, err := rb.cfg.Store.ReadAll(ctx, cp, rb.cfg.Batch)
		if err != nil {
			return projections.Tables{}, fmt.Errorf("switch %s: read the log: %w", tg.Projection.Name(), err)
		}
		if len(events) == 0 && cp < oldCP {
			// PostgreSQL may hold back events of transactions still committing.
			if wait++; wait > 200 {
				return projections.Tables{}, fmt.Errorf("switch %s: the log does not reach position %d of %s", tg.Projection.Name(), oldCP, old.Prefix())
			}
			if err := projections.Sleep(ctx, 10*time.Millisecond); err != nil {
				return projections.Tables{}, err
			}
			continue
		}
		if len(events) > 0 {
			view := *tg
			view.Parked = parked
			if parked, err = b.ApplyEvents(ctx, tx, &view, events, false); err != nil {
				return projections.Tables{}, err
			}
			cp = events[len(events)-1].Position
		}
		if len(events) < rb.cfg.Batch && cp >= oldCP {
			break
		}
	}
	if err := projections.SaveCheckpoint(ctx, tx, tg.Tables, cp); err != nil {
		return projections.Tables{}, err
	}
	if err := projections.SetActive(ctx, tx, tg.Projection, tg.Generation, tg.Tables, now); err != nil {
		return projections.Tables{}, err
	}
	if _, err := tx.Exec(ctx, `UPDATE `+projections.RebuildsTable+` SET phase = 'switched', old_set = ?, position = ?, updated_at = ?
		WHERE projection = ? AND owner = ?`, old.Prefix(), cp, now.UnixMilli(), tg.Projection.Name(), rb.owner); err != nil {
		return projections.Tables{}, fmt.Errorf("switch %s: %w", tg.Projection.Name(), err)
	}
	if err := tx.Commit(); err != nil {
		return projections.Tables{}, fmt.Errorf("switch %s: commit: %w", tg.Projection.Name(), err)
	}
	tg.Checkpoint, tg.Parked = cp, parked
	return old, nil
}

func checkpointIn(ctx context.Context, tx *projections.Tx, t projections.Tables) (int64, error) {
	var cp int64
	err := tx.QueryRow(ctx, `SELECT position FROM `+projections.CheckpointsTable+` WHERE set_name = ?`, t.Prefix()).Scan(&cp)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("checkpoint of %s: %w", t.Prefix(), err)
	}
	return cp, nil
}

// cleanUp drops the replaced sets once no query reads them (after one pause for all, for
// the queries of other processes) and records the rebuilds as done.
func (rb *rebuild) cleanUp(ctx context.Context) error {
	if !rb.cfg.KeepOld {
		if r := rb.cfg.Runner; r != nil {
			for i, tg := range rb.targets {
				r.WaitReaders(tg.Projection.Name(), rb.states[i].old)
			}
		}
		if rb.cfg.DropDelay > 0 {
			if err := rb.cfg.pause(ctx, rb.cfg.DropDelay); err != nil {
				return err
			}
		}
	}
	for i, tg := range rb.targets {
		st := rb.states[i]
		if !rb.cfg.KeepOld {
			if err := rb.dropOld(ctx, tg.Projection, st.old, true); err != nil {
				return err
			}
		}
		now := rb.cfg.Now()
		if _, err := rb.db.SQL.ExecContext(ctx, rb.db.Dialect.Rebind(`UPDATE `+projections.RebuildsTable+` SET phase = 'done',
			updated_at = ? WHERE projection = ? AND owner = ?`), now.UnixMilli(), tg.Projection.Name(), rb.owner); err != nil {
			return fmt.Errorf("finish rebuild of %s: %w", tg.Projection.Name(), err)
		}
		rb.setProgress(i, func(pr *RebuildProgress) {
			pr.State, pr.UpdatedAt, pr.FinishedAt = RebuildDone, now, &now
			if secs := now.Sub(st.started).Seconds(); secs > 0 {
				pr.Rate = float64(pr.Events) / secs
			}
		})
	}
	return nil
}

// dropOld drops a set no longer served (never the one served now).
func (rb *rebuild) dropOld(ctx context.Context, p projections.Projection, t projections.Tables, sameVersion bool) error {
	active, err := rb.db.ActiveTables(ctx, p)
	if err != nil {
		return err
	}
	if sameVersion && t == active {
		return nil
	}
	if !sameVersion && t.Prefix() == projections.TablesFor(p, "").Prefix() {
		return nil // a default set of another version: its schema is unknown here; it stays
	}
	return rb.db.DropSet(ctx, p, t, sameVersion)
}

func (rb *rebuild) setProgress(i int, f func(*RebuildProgress)) {
	rb.mu.Lock()
	f(&rb.progress[i])
	pr := rb.progress[i]
	watch := rb.watch
	rb.mu.Unlock()
	if rb.cfg.Progress != nil {
		rb.cfg.Progress(pr)
	}
	if watch != nil {
		watch(pr)
	}
}

func (rb *rebuild) progressOf(i int) RebuildProgress {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	return rb.progress[i]
}

func (rb *rebuild) snapshot() []RebuildProgress {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	return append([]RebuildProgress(nil), rb.progress...)
}

func (rb *rebuild) fail(err error) {
	now := rb.cfg.Now()
	for i := range rb.targets {
		rb.setProgress(i, func(pr *RebuildProgress) {
			if pr.State == RebuildDone {
				return
			}
			pr.State, pr.Error, pr.UpdatedAt, pr.FinishedAt = RebuildFailed, err.Error(), now, &now
			pr.ETASeconds = 0
		})
	}
}
