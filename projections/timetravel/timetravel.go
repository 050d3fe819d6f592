package timetravel

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
)

// Time travel answers a read model as it stood at a past position of the log: "the board as
// we knew it then". A read model at position N is exactly what a rebuild stopped at N holds,
// so it is built the way a rebuild builds: the nearest snapshot at or below N is copied into
// a temporary set, and the events after it up to N are applied with the batch path. Snapshots
// are taken every Every events of the log by Snapshot, each from the one before it; the
// temporary sets of the last few positions asked for are kept for the next questions, then
// dropped. On SQLite each snapshot and temporary set is a database file of its own (see
// travelfiles.go); on PostgreSQL they are sets of tables of the read-model database,
// "s<position>" and "t<random>", listed in projection_snapshots.

// snapshotsTable lists the snapshot and temporary sets of time travel.
const snapshotsTable = "projection_snapshots"

// Kinds of the sets in snapshotsTable.
const (
	kindSnapshot = "snapshot"
	kindTemp     = "temp"
)

// Defaults of TimeTravelConfig.
const (
	DefaultSnapshotEvery = 50_000
	DefaultTravelCache   = 4
)

// TimeTravelConfig configures NewTimeTravel.
type TimeTravelConfig struct {
	DB    *projections.DB
	Store eventstore.Store
	// Every is how many log positions lie between two snapshots (default
	// DefaultSnapshotEvery): a question replays at most that many events.
	Every int64
	// Batch is how many events one read and one transaction take (default
	// DefaultRebuildBatch).
	Batch int
	// Cache is how many temporary sets are kept for the next questions (default
	// DefaultTravelCache).
	Cache int
	// Dir holds the snapshots and temporary sets as SQLite files of their own, when the
	// read models are in SQLite (default: the directory "<read-model file>.travel" beside
	// it). Ignored on PostgreSQL, where they are tables of the read-model database.
	Dir string
	// Space bounds the snapshots: together they take at most Space times the log's size on
	// disk (when the store can tell it, eventstore.DiskSizer), the newest of each read model
	// kept whatever its size; past it, snapshots are thinned so that those left stay evenly
	// spread (see thin.go). 0 keeps every snapshot.
	Space float64
	// Node names this server as the owner of the temporary sets it builds (default: a
	// random name); OwnerTTL is how long they outlive its last heartbeat (default
	// DefaultOwnerTTL). See KeepOwned.
	Node     string
	OwnerTTL time.Duration
	// Now is the clock of the owners' heartbeats (default time.Now).
	Now func() time.Time
}

// TimeTravel serves read models at past log positions. Safe for concurrent use. One process
// per read-model database takes snapshots (crm serve does).
type TimeTravel struct {
	cfg    TimeTravelConfig
	byName map[string]projections.Projection

	snapMu  sync.Mutex // one Snapshot at a time
	buildMu sync.Mutex // one temporary set built at a time: each is heavy on the database

	mu    sync.Mutex
	cache map[travelKey]*travelSet
	clock int64 // orders uses for eviction
	// forgets counts the calls of Forget: a set whose build one of them ran across is not
	// kept.
	forgets int64

	// drops are the evicted sets being dropped in the background (a question does not
	// wait for them), started with mu held and before closed is set; Close waits for them.
	// Once closed, a set is dropped as soon as nobody reads it, by whoever releases it.
	drops  sync.WaitGroup
	closed bool
}

type travelKey struct {
	name     string
	position int64
}

type travelSet struct {
	t    projections.Tables
	p    projections.Projection
	db   *projections.DB // the set's own database (a file) on SQLite; nil when t is in the read models'
	refs int
	used int64
	// forgotten: taken out of the cache while read (see Forget); its last reader drops it.
	forgotten bool
}

// NewTimeTravel returns time travel over the projections ps.
func NewTimeTravel(cfg TimeTravelConfig, ps ...projections.Projection) (*TimeTravel, error) {
	if cfg.DB == nil || cfg.Store == nil {
		return nil, errors.New("time travel: no read-model database or no event store")
	}
	if cfg.Every <= 0 {
		cfg.Every = DefaultSnapshotEvery
	}
	if cfg.Batch <= 0 {
		cfg.Batch = projections.DefaultRebuildBatch
	}
	if cfg.Cache <= 0 {
		cfg.Cache = DefaultTravelCache
	}
	if cfg.Node == "" {
		cfg.Node = newNode()
	}
	if cfg.OwnerTTL <= 0 {
		cfg.OwnerTTL = DefaultOwnerTTL
	}
	switch {
	case !cfg.DB.Dialect.Features().SnapshotFiles:
		cfg.Dir = ""
	case cfg.Dir == "" && cfg.DB.Path == "":
		return nil, errors.New("time travel: no directory for the snapshots of a SQLite database")
	case cfg.Dir == "":
		cfg.Dir = cfg.DB.Path + ".travel"
	}
	tt := &TimeTravel{cfg: cfg, byName: map[string]projections.Projection{}, cache: map[travelKey]*travelSet{}}
	for _, p := range ps {
		tt.byName[p.Name()] = p
	}
	return tt, nil
}

func snapshotsSchema() string {
	return `CREATE TABLE IF NOT EXISTS ` + snapshotsTable + ` (
		table_set  TEXT    PRIMARY KEY,
		projection TEXT    NOT NULL,
		version    INTEGER NOT NULL,
		kind       TEXT    NOT NULL,
		position   BIGINT  NOT NULL)`
}

// Init creates the snapshot list and drops the temporary sets and the unfinished snapshots a
// stopped process left: on PostgreSQL only those whose owner is gone (see KeepOwned), so a
// server that starts leaves the sets of the others alone.
func (tt *TimeTravel) Init(ctx context.Context) error {
	db := tt.cfg.DB
	if err := db.EnsureRegistry(ctx); err != nil {
		return err
	}
	if tt.usesFiles() {
		return tt.initFiles(ctx)
	}
	for _, q := range []string{snapshotsSchema(), ownersSchema()} {
		if _, err := db.SQL.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("create snapshot list: %w", err)
		}
	}
	return tt.dropOrphans(ctx)
}

type listedSet struct {
	p        projections.Projection
	t        projections.Tables
	position int64
	path     string // the set's file, when time travel uses files
}

// listed returns the sets of a kind of the projections time travel knows (in their current
// versions), by position.
func (tt *TimeTravel) listed(ctx context.Context, kind string) ([]listedSet, error) {
	db := tt.cfg.DB
	rows, err := db.SQL.QueryContext(ctx, db.Dialect.Rebind(`SELECT table_set, projection, version, position FROM `+snapshotsTable+
		` WHERE kind = ? ORDER BY position`), kind)
	if err != nil {
		return nil, fmt.Errorf("list %s sets: %w", kind, err)
	}
	defer rows.Close()
	var sets []listedSet
	for rows.Next() {
		var (
			set, name string
			version   int
			position  int64
		)
		if err := rows.Scan(&set, &name, &version, &position); err != nil {
			return nil, fmt.Errorf("list %s sets: %w", kind, err)
		}
		if p := tt.byName[name]; p != nil && p.Version() == version {
			sets = append(sets, listedSet{p: p, t: projections.TablesWithPrefix(set), position: position})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list %s sets: %w", kind, err)
	}
	return sets, nil
}

// drop removes a set of time travel and its line in the list.
func (tt *TimeTravel) drop(ctx context.Context, p projections.Projection, t projections.Tables) error {
	db := tt.cfg.DB
	if err := db.DropSet(ctx, p, t, true); err != nil {
		return err
	}
	if _, err := db.SQL.ExecContext(ctx, db.Dialect.Rebind(`DELETE FROM `+snapshotsTable+` WHERE table_set = ?`), t.Prefix()); err != nil {
		return fmt.Errorf("unlist %s: %w", t.Prefix(), err)
	}
	return tt.disown(ctx, t)
}

// Snapshot takes the snapshots of every projection that the log has grown past since the
// last ones: one every Every positions, each built from the previous one. The first run
// over a long log builds them all (as a rebuild would, once); later runs take the new ones.
func (tt *TimeTravel) Snapshot(ctx context.Context) (taken int, err error) {
	tt.snapMu.Lock()
	defer tt.snapMu.Unlock()
	head, err := projections.LogHead(ctx, tt.cfg.Store)
	if err != nil {
		return 0, fmt.Errorf("snapshot: head of the log: %w", err)
	}
	for _, name := range slices.Sorted(maps.Keys(tt.byName)) {
		p := tt.byName[name]
		base, ok, err := tt.nearest(ctx, p, head)
		if err != nil {
			return taken, err
		}
		from := int64(0)
		if ok {
			from = base.position
		}
		for next := (from/tt.cfg.Every + 1) * tt.cfg.Every; next <= head; next += tt.cfg.Every {
			if tt.usesFiles() {
				if err := tt.snapshotFile(ctx, p, base, ok, next); err != nil {
					return taken, fmt.Errorf("snapshot %s at %d: %w", name, next, err)
				}
				base, ok = listedSet{p: p, t: projections.TablesFor(p, ""), position: next, path: tt.snapshotPath(p, next)}, true
				taken++
				if err := tt.thin(ctx); err != nil { // as it goes: a first start stays within the budget too
					return taken, err
				}
				continue
			}
			t := projections.TablesFor(p, "s"+strconv.FormatInt(next, 10))
			if err := tt.build(ctx, p, t, kindSnapshot, base, ok, next, false); err != nil {
				return taken, fmt.Errorf("snapshot %s at %d: %w", name, next, err)
			}
			base, ok = listedSet{p: p, t: t, position: next}, true
			taken++
			if err := tt.thin(ctx); err != nil {
				return taken, err
			}
		}
	}
	return taken, tt.thin(ctx)
}

// RunSnapshots takes snapshots every interval until ctx ends; report, when set, hears of each
// failure (the next round tries again). While busy (when set) says the read models are
// catching up, as in a first start over a long log, no round is taken: its snapshots would
// replay the log a second time beside the catch-up and hold it back. busy is asked again every
// second, and the first round after it takes every snapshot missed meanwhile.
func (tt *TimeTravel) RunSnapshots(ctx context.Context, interval time.Duration, busy func(context.Context) bool, report func(error)) {
	for {
		wait := interval
		if busy != nil && busy(ctx) {
			wait = min(interval, time.Second)
		} else if _, err := tt.Snapshot(ctx); err != nil && ctx.Err() == nil && report != nil {
			report(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// nearest returns the snapshot of p with the highest position at or below position.
func (tt *TimeTravel) nearest(ctx context.Context, p projections.Projection, position int64) (listedSet, bool, error) {
	if tt.usesFiles() {
		return tt.nearestFile(p, position)
	}
	db := tt.cfg.DB
	var set string
	var at int64
	err := db.SQL.QueryRowContext(ctx, db.Dialect.Rebind(`SELECT table_set, position FROM `+snapshotsTable+`
		WHERE projection = ? AND version = ? AND kind = ? AND position >= 0 AND position <= ? ORDER BY position DESC LIMIT 1`),
		p.Name(), p.Version(), kindSnapshot, position).Scan(&set, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return listedSet{}, false, nil
	}
	if err != nil {
		return listedSet{}, false, fmt.Errorf("snapshot of %s at %d: %w", p.Name(), position, err)
	}
	return listedSet{p: p, t: projections.TablesWithPrefix(set), position: at}, true, nil
}

// build makes set t hold p as it stood at position until: a copy of base (when hasBase),
// then the events after it up to until, applied as a rebuild applies them. The set is
// listed before anything is written, so a set a crash leaves half built is found again;
// a snapshot is listed with its position only once complete.
func (tt *TimeTravel) build(ctx context.Context, p projections.Projection, t projections.Tables, kind string, base listedSet, hasBase bool, until int64, indexes bool) (err error) {
	db := tt.cfg.DB
	// Whatever a crash left under this name goes first: the set is built from nothing.
	if err := tt.drop(ctx, p, t); err != nil {
		return err
	}
	listPosition := int64(-1)              // not usable until complete
	if err := tt.own(ctx, t); err != nil { // before it is listed: never an orphan to the others
		return err
	}
	if _, err := db.SQL.ExecContext(ctx, db.Dialect.Rebind(`INSERT INTO `+snapshotsTable+` (table_set, projection, version, kind, position)
		VALUES (?, ?, ?, ?, ?)`), t.Prefix(), p.Name(), p.Version(), kind, listPosition); err != nil {
		return fmt.Errorf("list %s: %w", t.Prefix(), err)
	}
	defer func() {
		if err != nil {
			err = projections.WrapLockTimeout(err)
			_ = tt.drop(context.WithoutCancel(ctx), p, t)
		}
	}()
	tg := projections.NewTarget(p, t)
	// BoundLocks: no statement of the build waits long for a lock another server's drop or
	// build holds or waits for (a failed snapshot is taken again at the next round).
	b := &projections.Builder{DB: db, Store: tt.cfg.Store, Batch: tt.cfg.Batch, Now: time.Now, Targets: []*projections.Target{tg},
		Lax: kind == kindTemp, BoundLocks: true}
	if err := b.Open(ctx); err != nil {
		return err
	}
	defer b.Close()
	// Temporary sets need not survive a crash (they are dropped at the next start); snapshots
	// must, or a crash would leave an empty set listed as complete.
	idx, err := b.CreateSet(ctx, tg, kind == kindTemp)
	if err != nil {
		return err
	}
	if hasBase {
		if err := tt.copySet(ctx, b, p, base.t, t); err != nil {
			return err
		}
	}
	if err := b.Load(ctx, tg); err != nil {
		return err
	}
	if until > tg.Checkpoint {
		if err := b.Run(ctx, until); err != nil {
			return fmt.Errorf("apply the log up to %d: %w", until, err)
		}
	}
	if indexes {
		if err := b.Finish(ctx, tg, idx, false); err != nil {
			return err
		}
	}
	if _, err := db.SQL.ExecContext(ctx, db.Dialect.Rebind(`UPDATE `+snapshotsTable+` SET position = ? WHERE table_set = ?`),
		until, t.Prefix()); err != nil {
		return fmt.Errorf("list %s: %w", t.Prefix(), err)
	}
	return nil
}

// copySet copies every row of set from into the empty set to, with its checkpoint and its
// parked events (later events of their streams are parked behind them, as in from). The
// tables are copied side by side, each on a connection of its own: the set is not used
// before build lists it as complete, so the copy need not be one transaction.
func (tt *TimeTravel) copySet(ctx context.Context, b *projections.Builder, p projections.Projection, from, to projections.Tables) error {
	var copies []string
	for _, name := range projections.SetTables(b.DB.Dialect, p, from) {
		copies = append(copies, `INSERT INTO `+to.Name(name[len(from.Prefix()):])+` SELECT * FROM `+name)
	}
	if err := b.SideBySide(ctx, copies); err != nil {
		return fmt.Errorf("copy %s to %s: %w", from.Prefix(), to.Prefix(), err)
	}
	tx, err := b.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	var cp int64
	err = tx.QueryRow(ctx, `SELECT position FROM `+projections.CheckpointsTable+` WHERE set_name = ?`, from.Prefix()).Scan(&cp)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("checkpoint of %s: %w", from.Prefix(), err)
	}
	if cp > 0 {
		if err := projections.SaveCheckpoint(ctx, tx, to, cp); err != nil {
			return err
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO `+projections.ParkedTable+` (projection, table_set, event_id, stream, position, event_type, error, attempts, parked_at)
		SELECT projection, ?, event_id, stream, position, event_type, error, attempts, parked_at FROM `+projections.ParkedTable+` WHERE table_set = ?`,
		to.Prefix(), from.Prefix()); err != nil {
		return fmt.Errorf("copy parked events of %s: %w", from.Prefix(), err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("copy %s: %w", from.Prefix(), err)
	}
	return nil
}

// TravelSet is a read model at a past position.
type TravelSet struct {
	// DB holds Tables: a database of the set's own on SQLite, the read models' on PostgreSQL.
	DB     *projections.DB
	Tables projections.Tables
	// Position is the log position the set stands at: the one asked for, or the head of the
	// log when asked beyond it.
	Position int64
	// Head is the head of the log when the set was asked for.
	Head int64
	// RecordedAt is when the event at Position was recorded (zero for position 0, or when
	// no event has that position): the moment the log stood there.
	RecordedAt time.Time
}

// At returns the set of the projection name as it stood at log position position (every
// event up to it applied, none after), held until release is called. It returns
// ErrUnknownProjection for a projection time travel does not serve, and ErrClosed after Close.
func (tt *TimeTravel) At(ctx context.Context, name string, position int64) (TravelSet, func(), error) {
	p := tt.byName[name]
	if p == nil {
		return TravelSet{}, nil, fmt.Errorf("%s: %w", name, projections.ErrUnknownProjection)
	}
	head, err := projections.LogHead(ctx, tt.cfg.Store)
	if err != nil {
		return TravelSet{}, nil, fmt.Errorf("time travel: head of the log: %w", err)
	}
	// Beyond the head, the read model is the one at the head (until more is written): it is
	// kept under the head's position, never under one the log has not reached.
	position = max(0, min(position, head))
	ts := TravelSet{Position: position, Head: head}
	if position > 0 {
		events, err := tt.cfg.Store.ReadAll(ctx, position-1, 1)
		if err != nil {
			return TravelSet{}, nil, fmt.Errorf("time travel: event at %d: %w", position, err)
		}
		if len(events) == 1 && events[0].Position == position {
			ts.RecordedAt = events[0].RecordedAt
		}
	}
	key := travelKey{name: name, position: position}
	if s, ok := tt.hold(key); ok {
		ts.DB, ts.Tables = tt.dbOf(s), s.t
		return ts, tt.releaser(s), nil
	}
	tt.buildMu.Lock()
	defer tt.buildMu.Unlock()
	tt.mu.Lock()
	closed, forgets := tt.closed, tt.forgets
	tt.mu.Unlock()
	if closed {
		return TravelSet{}, nil, fmt.Errorf("time travel: %w", projections.ErrClosed)
	}
	if s, ok := tt.hold(key); ok { // built while this one waited
		ts.DB, ts.Tables = tt.dbOf(s), s.t
		return ts, tt.releaser(s), nil
	}
	base, hasBase, err := tt.nearest(ctx, p, position)
	if err != nil {
		return TravelSet{}, nil, err
	}
	s := &travelSet{p: p, refs: 1}
	if tt.usesFiles() {
		s.t = projections.TablesFor(p, "")
		s.db, err = tt.tempFile(ctx, p, base, hasBase, position)
	} else {
		suffix := make([]byte, 4)
		_, _ = rand.Read(suffix)
		s.t = projections.TablesFor(p, "t"+hex.EncodeToString(suffix))
		// The server that takes the snapshots may drop the base while it is copied (thinning
		// them, see thin.go): then the set is built again from the nearest one left.
		for tries := 0; ; tries++ {
			err = tt.build(ctx, p, s.t, kindTemp, base, hasBase, position, true)
			if err == nil || !hasBase || tries == 2 || ctx.Err() != nil {
				break
			}
			next, ok, nerr := tt.nearest(ctx, p, position)
			if nerr != nil || (ok && next.t.Prefix() == base.t.Prefix()) {
				break // the base is still there: the error is not its going
			}
			base, hasBase = next, ok
		}
	}
	if err != nil {
		return TravelSet{}, nil, fmt.Errorf("%s at %d: %w", name, position, err)
	}
	tt.mu.Lock()
	tt.clock++
	s.used = tt.clock
	if tt.forgets == forgets {
		tt.cache[key] = s
	} else {
		// Forgotten while it was built (see Forget): it may hold what was read before, and
		// serves this question alone; its reader drops it.
		s.forgotten = true
	}
	tt.evictLocked()
	ts.DB, ts.Tables = tt.dbOf(s), s.t
	return ts, tt.releaser(s), nil
}

// dbOf is the database that holds the temporary set s, as its readers see it: frozen, since
// nothing writes to a temporary set once it is built (on PostgreSQL, the read models' pool,
// where other sets are written, seen through a view that says so of this set's tables).
func (tt *TimeTravel) dbOf(s *travelSet) *projections.DB {
	if s.db != nil {
		return s.db
	}
	return tt.cfg.DB.AsFrozen()
}

// evictLocked evicts the sets beyond the cache's size and unlocks tt.mu: they are dropped in
// the background, or at once after Close. A failure leaves a set that the next start removes
// (Init).
func (tt *TimeTravel) evictLocked() {
	sets := tt.evictable()
	closed := tt.closed
	if !closed && len(sets) > 0 {
		tt.drops.Go(func() { _ = tt.dropAll(context.Background(), sets) })
	}
	tt.mu.Unlock()
	if closed {
		_ = tt.dropAll(context.Background(), sets)
	}
}

// dropAll drops temporary sets.
func (tt *TimeTravel) dropAll(ctx context.Context, sets []*travelSet) error {
	var errs []error
	for _, s := range sets {
		if s.db != nil {
			errs = append(errs, dropFile(s.db))
		} else {
			errs = append(errs, tt.drop(ctx, s.p, s.t))
		}
	}
	return errors.Join(errs...)
}

func (tt *TimeTravel) hold(key travelKey) (*travelSet, bool) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	s := tt.cache[key]
	if s == nil {
		return nil, false
	}
	s.refs++
	tt.clock++
	s.used = tt.clock
	return s, true
}

func (tt *TimeTravel) releaser(s *travelSet) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			tt.mu.Lock()
			s.refs--
			if s.forgotten && s.refs == 0 && !tt.closed {
				tt.drops.Go(func() { _ = tt.dropAll(context.Background(), []*travelSet{s}) })
			}
			tt.evictLocked()
		})
	}
}

// Forget takes every temporary set out of this process's cache, so that the next question
// about an earlier moment builds its set again from the log: after an erasure, possibly
// purged by another server, a set built before holds the person's data. The sets are
// dropped in the background, those being read once their last reader is done; one being
// built meanwhile is not kept.
func (tt *TimeTravel) Forget() {
	tt.mu.Lock()
	tt.forgets++
	var idle []*travelSet
	for k, s := range tt.cache {
		delete(tt.cache, k)
		if s.refs > 0 {
			s.forgotten = true
			continue
		}
		idle = append(idle, s)
	}
	if !tt.closed && len(idle) > 0 {
		tt.drops.Go(func() { _ = tt.dropAll(context.Background(), idle) })
	}
	tt.mu.Unlock()
}

// evictable removes from the cache, and returns, the least recently used sets nobody reads
// beyond the cache's size. Called with tt.mu held.
func (tt *TimeTravel) evictable() []*travelSet {
	var out []*travelSet
	limit := tt.cfg.Cache
	if tt.closed {
		limit = 0
	}
	for len(tt.cache) > limit {
		var (
			oldKey travelKey
			old    *travelSet
		)
		for k, s := range tt.cache {
			if s.refs == 0 && (old == nil || s.used < old.used) {
				oldKey, old = k, s
			}
		}
		if old == nil {
			break // all in use: they go when released
		}
		delete(tt.cache, oldKey)
		out = append(out, old)
	}
	return out
}

// Close drops the temporary sets of the cache (those still read go when the next start
// runs Init).
func (tt *TimeTravel) Close(ctx context.Context) error {
	tt.mu.Lock()
	tt.closed = true
	sets := tt.evictable()
	tt.mu.Unlock()
	tt.drops.Wait()
	return tt.dropAll(ctx, sets)
}

// PositionAt returns the last log position recorded at or before t (0 when none was): what
// the system knew at t. Positions are recorded in commit order, so recorded_at grows with
// the position and a bisection over a few single-event reads finds it.
func (tt *TimeTravel) PositionAt(ctx context.Context, t time.Time) (int64, error) {
	store := tt.cfg.Store
	head, err := projections.LogHead(ctx, store)
	if err != nil {
		return 0, fmt.Errorf("known_at: head of the log: %w", err)
	}
	// Every event at or below lo was recorded by t; none above hi was.
	var lo, hi int64 = 0, head
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		events, err := store.ReadAll(ctx, mid-1, 1)
		if err != nil {
			return 0, fmt.Errorf("known_at: read at %d: %w", mid, err)
		}
		if len(events) == 0 {
			hi = mid - 1
			continue
		}
		if e := events[0]; !e.RecordedAt.After(t) {
			lo = e.Position
		} else {
			hi = mid - 1
		}
	}
	return lo, nil
}
