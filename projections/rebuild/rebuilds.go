package rebuild

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/eventcrm/crm/projections"
)

// Rebuilds runs rebuilds in the background for a server and tells their progress: those of
// this process from memory, those of other processes (`crm rebuild`) from the rebuild table.
type Rebuilds struct {
	cfg    RebuildConfig
	byName map[string]projections.Projection

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	running map[string]bool
	last    map[string]RebuildProgress
}

// NewRebuilds returns a manager of the rebuilds of ps. Close stops the running ones.
func NewRebuilds(cfg RebuildConfig, ps ...projections.Projection) (*Rebuilds, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("rebuilds: %w", err)
	}
	r := &Rebuilds{cfg: cfg, byName: map[string]projections.Projection{}, running: map[string]bool{}, last: map[string]RebuildProgress{}}
	for _, p := range ps {
		r.byName[p.Name()] = p
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	return r, nil
}

// Start takes the lock of the projection name and rebuilds it in the background; it
// returns the progress at the start. It returns ErrUnknownProjection for a name it does not
// manage, ErrRebuildRunning (a *RebuildRunningError) while a rebuild of it runs here or
// in another process, and ErrClosed after Close.
func (r *Rebuilds) Start(ctx context.Context, name string) (RebuildProgress, error) {
	p := r.byName[name]
	if p == nil {
		return RebuildProgress{}, fmt.Errorf("%s: %w", name, projections.ErrUnknownProjection)
	}
	r.mu.Lock()
	if r.running[name] {
		r.mu.Unlock()
		return RebuildProgress{}, &RebuildRunningError{Projection: name, Owner: "this server", Until: r.cfg.Now().Add(r.cfg.Lease)}
	}
	r.running[name] = true
	r.mu.Unlock()
	done := func() {
		r.mu.Lock()
		delete(r.running, name)
		r.mu.Unlock()
	}
	if r.ctx.Err() != nil {
		done()
		return RebuildProgress{}, fmt.Errorf("rebuild %s: %w", name, projections.ErrClosed)
	}
	rb, err := startRebuild(ctx, r.cfg, []projections.Projection{p})
	if err != nil {
		done()
		return RebuildProgress{}, err
	}
	now := r.cfg.Now()
	first := RebuildProgress{Projection: name, Version: p.Version(), State: RebuildBuilding, StartedAt: now, UpdatedAt: now}
	r.record(first)
	rb.watch = r.record
	r.wg.Go(func() {
		defer done()
		_, _ = rb.run(r.ctx) // the outcome is in the progress (state failed, error)
	})
	return first, nil
}

func (r *Rebuilds) record(pr RebuildProgress) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last[pr.Projection] = pr
}

// Progress tells how the last rebuild of name goes or went: this process's from memory,
// else the one recorded in the database by any process. It returns ErrUnknownProjection or
// ErrNoRebuild.
func (r *Rebuilds) Progress(ctx context.Context, name string) (RebuildProgress, error) {
	p := r.byName[name]
	if p == nil {
		return RebuildProgress{}, fmt.Errorf("%s: %w", name, projections.ErrUnknownProjection)
	}
	r.mu.Lock()
	mine, ok := r.last[name]
	running := r.running[name]
	r.mu.Unlock()
	if running {
		return mine, nil
	}
	stored, found, err := StoredProgress(ctx, r.cfg.DB, name)
	if err != nil {
		return RebuildProgress{}, err
	}
	switch {
	case found && (!ok || stored.StartedAt.After(mine.StartedAt)):
		return stored, nil
	case ok:
		return mine, nil
	default:
		return RebuildProgress{}, fmt.Errorf("%s: %w", name, ErrNoRebuild)
	}
}

// Close stops the running rebuilds (they resume from their checkpoints when started again)
// and waits for them.
func (r *Rebuilds) Close() {
	r.cancel()
	r.wg.Wait()
}

// StoredProgress reads the last rebuild of the projection name recorded in db, by whatever
// process ran it; found is false when there was none.
func StoredProgress(ctx context.Context, db *projections.DB, name string) (pr RebuildProgress, found bool, err error) {
	if err := db.EnsureRegistry(ctx); err != nil {
		return RebuildProgress{}, false, err
	}
	row, err := scanRebuild(db.SQL.QueryRowContext(ctx, db.Dialect.Rebind(`SELECT `+rebuildColumns+` FROM `+projections.RebuildsTable+`
		WHERE projection = ?`), name))
	if errors.Is(err, sql.ErrNoRows) {
		return RebuildProgress{}, false, nil
	}
	if err != nil {
		return RebuildProgress{}, false, fmt.Errorf("rebuild of %s: %w", name, err)
	}
	if row.phase == "" {
		return RebuildProgress{}, false, nil
	}
	now := time.Now()
	started, updated := time.UnixMilli(row.startedAt).UTC(), time.UnixMilli(row.updatedAt).UTC()
	pr = RebuildProgress{Projection: name, Version: row.version, TableSet: row.tableSet, Replaces: row.oldSet,
		Position: row.position, Total: max(row.head, row.position), Events: row.events, ResumedFrom: row.resumedFrom,
		StartedAt: started, UpdatedAt: updated}
	if secs := updated.Sub(started).Seconds(); secs > 0 {
		pr.Rate = float64(row.events) / secs
	}
	alive := row.owner != "" && row.leaseUntil > now.UnixMilli()
	switch {
	case row.phase == "done":
		pr.State, pr.FinishedAt = RebuildDone, &updated
	case row.phase == "switched":
		pr.State = RebuildDropping
	case alive:
		pr.State = RebuildBuilding
		if pr.Rate > 0 {
			pr.ETASeconds = float64(pr.Total-pr.Position) / pr.Rate
		}
	default:
		pr.State, pr.Error = RebuildFailed, "interrupted: start it again to resume from its checkpoint"
	}
	return pr, true, nil
}
