package runtime

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/eventcrm/crm/projections"
)

// builds admits one build in place at a time: the projections far behind catch up from
// one read of the log, together, as `crm rebuild --all` builds every read model.
type builds struct {
	mu      sync.Mutex
	current *groupBuild // nil: none runs
}

// groupBuild is one build in place of the projections far behind, from one read of the
// log: each projection applies only what lies past its own checkpoint.
type groupBuild struct {
	done chan struct{} // closed when it is over
	// members are the projections it builds, their results once done is closed.
	members map[*projector]error
}

// result says whether pj was built by g, and how that ended; only once g.done is closed.
func (g *groupBuild) result(pj *projector) (member bool, err error) {
	err, member = g.members[pj]
	return member, err
}

// build catches pj up in place as a rebuild builds a set, when it is at least BuildBehind
// behind the log's head; the catch-up goes on from where it stops.
//
// It builds, from one read of the log, every projection this runner applies that is that
// far behind at that moment, not pj alone: at a first start every read model is built from
// the log read, decoded and unsealed once, as `crm rebuild --all` does. A projection that
// comes while a build runs without it (its lease taken later, say) waits for that build and
// then runs one of its own, with whichever projections are far behind then.
//
// A build holds the mu of each projection it builds throughout: nothing else of this
// process writes their sets meanwhile. Each batch transaction of a projection checks, as
// every apply transaction does, that its set is still served and its lease still held (the
// fencing check); a projection that fails it leaves the build, which goes on with the
// others: a set switched by a rebuild ends that projection's build early (its catch-up then
// moves to the new set); a lost lease ends it with the lease's error.
func (r *Runner) build(ctx context.Context, pj *projector) error {
	if r.cfg.BuildBehind < 0 {
		return nil
	}
	for {
		r.builds.mu.Lock()
		g := r.builds.current
		if g == nil {
			g = &groupBuild{done: make(chan struct{}), members: map[*projector]error{}}
			r.builds.current = g
			r.builds.mu.Unlock()
			if err := r.runGroup(ctx, g); err != nil {
				return err
			}
			_, err := g.result(pj)
			return err
		}
		r.builds.mu.Unlock()
		select {
		case <-g.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if member, err := g.result(pj); member {
			return err
		}
	}
}

// runGroup runs build g in place of every projection far behind and owned here. It runs
// under the runner's own context: a projection whose lease ends leaves it through the
// fencing check, the others go on. It returns an error only when it cannot start.
func (r *Runner) runGroup(ctx context.Context, g *groupBuild) error {
	defer func() {
		r.builds.mu.Lock()
		r.builds.current = nil
		r.builds.mu.Unlock()
		close(g.done)
	}()
	if r.runCtx != nil {
		ctx = r.runCtx
	}
	r.building.Add(1)
	var built bool
	defer func() {
		r.building.Add(-1)
		if built {
			r.stall.moved(r.cfg.Now())
		}
	}()
	r.settleLeases(ctx)
	head, err := projections.LogHead(ctx, r.store)
	if err != nil {
		return err
	}
	b := &projections.Builder{DB: r.db, Store: r.store, Batch: r.cfg.BuildBatch, Now: r.cfg.Now}
	defer b.Close()
	of := map[*projections.Target]*projector{}
	defer func() {
		for _, pj := range of {
			pj.mu.Unlock()
		}
	}()
	for _, pj := range r.projs {
		if !r.farBehindAt(pj, head) {
			continue
		}
		pj.mu.Lock()
		if !r.farBehindAt(pj, head) {
			pj.mu.Unlock()
			continue
		}
		tg := projections.NewTarget(pj.p, pj.tables())
		of[tg] = pj
		g.members[pj] = nil
		if err := b.Load(ctx, tg); err != nil {
			g.members[pj] = err
			continue
		}
		b.Targets = append(b.Targets, tg)
	}
	if len(b.Targets) == 0 {
		return nil
	}
	built = true
	names := make([]string, len(b.Targets))
	for i, tg := range b.Targets {
		names[i] = tg.Projection.Name()
	}
	r.log.Info("Projections far behind: catching up from one read of the log, as a rebuild builds", watermill.LogFields{
		"projections": strings.Join(names, ","), "head": head})

	var (
		fencedMu sync.Mutex
		fenced   = map[*projections.Target]error{}
	)
	b.InTx = func(ctx context.Context, tx *projections.Tx, tg *projections.Target, _ int64) error {
		err := r.fence(ctx, of[tg], tg.Tables, tx)
		if err != nil {
			fencedMu.Lock()
			fenced[tg] = err
			fencedMu.Unlock()
		}
		return err
	}
	// The sets are served while they grow from empty: the statistics of each are gathered
	// each time it has about doubled (after its commits 1, 2, 4, 8, ...), so that its
	// questions are not planned for the few rows it held when last analysed. The groups of
	// sets commit from goroutines of their own: each set counts its own commits, and one
	// set is analysed at a time (one connection beside the build's).
	commits := make(map[*projections.Target]*atomic.Int64, len(b.Targets))
	for _, tg := range b.Targets {
		commits[tg] = new(atomic.Int64)
	}
	stats := &statistics{r: r, b: b}
	b.Committed = func(targets []*projections.Target) {
		for _, tg := range targets {
			r.builtTo(of[tg], tg)
			if r.faults.built != nil {
				r.faults.built(tg.Checkpoint)
			}
		}
		for _, tg := range targets {
			if n := commits[tg].Add(1); n&(n-1) == 0 {
				stats.gather(ctx, tg)
			}
		}
	}
	left := map[*projections.Target]bool{} // fenced out: another set is served, or the lease is lost
	for len(b.Targets) > 0 {
		err := b.Run(ctx, 0)
		if err == nil {
			break
		}
		if len(fenced) == 0 || ctx.Err() != nil {
			for _, tg := range b.Targets {
				g.members[of[tg]] = err
			}
			break
		}
		// The projections that failed the fencing check leave; the others go on from their
		// checkpoints (each set commits a batch in a transaction of its own).
		kept := b.Targets[:0]
		for _, tg := range b.Targets {
			if ferr, out := fenced[tg]; out {
				if !errors.Is(ferr, errSetSwitched) {
					g.members[of[tg]] = ferr
				}
				left[tg] = true
				continue
			}
			kept = append(kept, tg)
		}
		b.Targets = kept
		clear(fenced)
	}
	for tg, pj := range of {
		if g.members[pj] == nil && !left[tg] {
			stats.gather(ctx, tg)
		}
	}
	for tg, pj := range of {
		if g.members[pj] != nil {
			continue
		}
		r.builtTo(pj, tg)
		// The build may have parked events, and a set switched meanwhile is adopted: the
		// counts and the checkpoint come from the set.
		g.members[pj] = r.adoptLocked(ctx, pj, true)
	}
	return nil
}

// leaseSettle is how long after its start a runner sharing work by lease waits, before a
// build in place, for the leases of its projections: those it takes at its start are built
// from the same read of the log as the first.
const leaseSettle = time.Second

// settleLeases waits until this runner holds the lease of every projection, at most until
// leaseSettle after Run started (a lease another server holds is not waited for longer).
func (r *Runner) settleLeases(ctx context.Context) {
	if r.cfg.Leases == nil {
		return
	}
	until := r.started.Add(leaseSettle)
	for time.Now().Before(until) {
		held := 0
		for _, pj := range r.projs {
			if pj.lease.Load() != nil {
				held++
			}
		}
		if held == len(r.projs) || projections.Sleep(ctx, 10*time.Millisecond) != nil {
			return
		}
	}
}

// farBehindAt reports whether this runner applies pj and pj is at least BuildBehind behind
// head.
func (r *Runner) farBehindAt(pj *projector, head int64) bool {
	if r.cfg.Leases != nil && pj.lease.Load() == nil {
		return false
	}
	return head-pj.checkpoint.Load() >= r.cfg.BuildBehind
}

// builtTo takes in what a build committed of pj's target tg: its checkpoint and parked
// events.
func (r *Runner) builtTo(pj *projector, tg *projections.Target) {
	var parked int64
	for _, n := range tg.Parked {
		parked += int64(n)
	}
	pj.parkedTotal.Store(parked)
	r.head.observe(tg.Checkpoint)
	pj.advance(tg.Checkpoint)
}

// statistics gathers the statistics of the sets of a build in place, one set at a time.
type statistics struct {
	r  *Runner
	b  *projections.Builder
	mu sync.Mutex
}

// gather has the database gather the statistics of tg's set (projections.Builder.Statistics).
// A failure is logged, not returned: the set is right without statistics, only planned worse
// until autovacuum comes by.
func (s *statistics) gather(ctx context.Context, tg *projections.Target) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.b.Statistics(ctx, tg, false); err != nil && ctx.Err() == nil {
		s.r.log.Error("Statistics of a set built in place", err, watermill.LogFields{"projection": tg.Projection.Name()})
	}
}
