package runtime

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
)

// Lag is how far a projection is behind the log.
type Lag struct {
	// Events is the log head's position minus the checkpoint: a count of events on stores
	// with dense positions (SQLite, PostgreSQL), an upper bound elsewhere.
	Events int64 `json:"events"`
	// Seconds is how long ago the oldest event not yet applied was recorded (to the
	// millisecond); 0 when caught up.
	Seconds float64 `json:"seconds"`
}

// Freshness says how current a read-model answer is.
type Freshness struct {
	Projection string `json:"projection"`
	// Position is the checkpoint: every event up to it is in the answer (or parked).
	Position int64 `json:"position"`
	// Head is the last position of the log known to the runner.
	Head int64 `json:"head"`
	Lag  Lag   `json:"lag"`
	// MinPosition is the position the client asked for; Stale is true when the projection
	// had not reached it within the wait.
	MinPosition int64 `json:"min_position,omitempty"`
	Stale       bool  `json:"stale"`
	// AtPosition is set on a time-travel answer (at_position or known_at): the log position
	// the read model was answered at, which is then also Position; Lag is how far the head
	// has moved on since.
	AtPosition *int64 `json:"at_position,omitempty"`
	// KnownAt is the known_at the client asked for, turned into AtPosition.
	KnownAt *time.Time `json:"known_at,omitempty"`
}

// State is what a projection is doing.
type State string

// States of a projection.
const (
	// StateRunning: live, within CatchingUpLag of the head.
	StateRunning State = "running"
	// StateCatchingUp: reading the log from its checkpoint, or further behind than
	// CatchingUpLag.
	StateCatchingUp State = "catching_up"
	// StateFailed: its last attempt failed for a reason other than the event (the database
	// or the subscription); it is retried.
	StateFailed State = "failed"
	// StateStalled: behind a feed that has stopped (see Feed): the store holds events that
	// no projection has reached for RunnerConfig.StallAfter, usually because a long
	// transaction holds back the log reader at a gap in the positions.
	StateStalled State = "stalled"
)

// Roles of a runner for a projection, when servers share the database (RunnerConfig.Leases).
const (
	// RoleOwner: this server holds the projection's lease and applies it.
	RoleOwner = "owner"
	// RoleStandby: another server applies it; this one follows it from the database and
	// takes over when that server stops renewing its lease.
	RoleStandby = "standby"
)

// Status describes a running projection.
type Status struct {
	Name       string `json:"name"`
	Version    int    `json:"version"`
	TableSet   string `json:"table_set"`
	Group      string `json:"consumer_group"`
	Checkpoint int64  `json:"checkpoint"`
	Head       int64  `json:"head"`
	Lag        Lag    `json:"lag"`
	State      State  `json:"state"`
	Parked     int64  `json:"parked"`
	Error      string `json:"error,omitempty"`
	// Role is RoleOwner or RoleStandby when servers share the database, "" otherwise.
	Role string `json:"role,omitempty"`
}

// Names lists the projections in registration order.
func (r *Runner) Names() []string {
	names := make([]string, len(r.projs))
	for i, pj := range r.projs {
		names[i] = pj.p.Name()
	}
	return names
}

// Projection returns the projection name runs, if it runs here.
func (r *Runner) Projection(name string) (projections.Projection, bool) {
	pj := r.byName[name]
	if pj == nil {
		return nil, false
	}
	return pj.p, true
}

// Tables returns the table set a projection's queries read: the served one. Queries that
// may run while a rebuild switches should use Read.
func (r *Runner) Tables(name string) (projections.Tables, error) {
	pj := r.byName[name]
	if pj == nil {
		return projections.Tables{}, fmt.Errorf("%s: %w", name, projections.ErrUnknownProjection)
	}
	return pj.tables(), nil
}

// Read returns the table set a projection's queries read and holds it until release is
// called: a rebuild of this process drops the set it replaced only once every query that
// was reading it released it.
func (r *Runner) Read(name string) (t projections.Tables, release func(), err error) {
	pj := r.byName[name]
	if pj == nil {
		return projections.Tables{}, nil, fmt.Errorf("%s: %w", name, projections.ErrUnknownProjection)
	}
	for {
		s := pj.set.Load()
		s.readers.RLock()
		if pj.set.Load() == s {
			return s.t, s.readers.RUnlock, nil
		}
		s.readers.RUnlock() // switched meanwhile: read the new set
	}
}

// Changes returns a count that moves whenever the served tables of a projection change: an
// applied event, a retried parked event, a switch to a rebuilt set. An answer computed from
// the tables after Changes returned n is at least as fresh as their state at n, so it can be
// reused for the same question while Changes still returns n.
func (r *Runner) Changes(name string) (uint64, error) {
	pj := r.byName[name]
	if pj == nil {
		return 0, fmt.Errorf("%s: %w", name, projections.ErrUnknownProjection)
	}
	return pj.changes.Load(), nil
}

// WaitReaders returns once no query of this process reads set t of the projection name,
// which the runner has replaced (new queries read the new set).
func (r *Runner) WaitReaders(name string, t projections.Tables) {
	pj := r.byName[name]
	if pj == nil {
		return
	}
	old := pj.prev.Load()
	if old == nil || old.t != t {
		return
	}
	waitForReaders(&old.readers)
}

// waitForReaders returns once every reader that holds l for reading has released it; readers
// that come later find the new set and never take l.
func waitForReaders(l *sync.RWMutex) {
	l.Lock()
	defer l.Unlock()
}

// DB is the read-model database.
func (r *Runner) DB() *projections.DB { return r.db }

// Status describes every projection, in registration order.
func (r *Runner) Status(ctx context.Context) ([]Status, error) {
	list, _, err := r.Overview(ctx)
	return list, err
}

// Overview describes every projection, in registration order, and the feed, from one
// reading of the log's head: while events arrive the head moves between two readings, and a
// projection measured against an older head than the feed's would show lag 0 below the
// feed's store_head.
func (r *Runner) Overview(ctx context.Context) ([]Status, Feed, error) {
	headPos, err := r.knownHead(ctx)
	if err != nil {
		return nil, Feed{}, err
	}
	feed := r.feedAt(headPos)
	list := make([]Status, 0, len(r.projs))
	for _, pj := range r.projs {
		f, err := r.freshnessAt(ctx, pj, headPos, feed)
		if err != nil {
			return nil, Feed{}, err
		}
		s := Status{Name: pj.p.Name(), Version: pj.p.Version(), TableSet: pj.tables().Prefix(), Group: pj.group,
			Checkpoint: f.Position, Head: f.Head, Lag: f.Lag, Parked: pj.parkedTotal.Load(), State: StateRunning}
		if r.cfg.Leases != nil {
			s.Role = RoleStandby
			if pj.lease.Load() != nil {
				s.Role = RoleOwner
			}
		}
		switch failure := pj.failure.Load(); {
		case failure != nil:
			s.State, s.Error = StateFailed, *failure
		case f.Lag.Events > 0 && feed.Stalled:
			s.State = StateStalled
		case pj.catchingUp.Load() || f.Lag.Events > r.cfg.CatchingUpLag:
			s.State = StateCatchingUp
		}
		list = append(list, s)
	}
	return list, feed, nil
}

// Freshness says how current the projection name is now.
func (r *Runner) Freshness(ctx context.Context, name string) (Freshness, error) {
	return r.WaitFor(ctx, name, 0, 0)
}

// WaitFor waits up to maxWait for the projection name to reach minPosition (0: no wait) and
// says how current it is then; Stale tells whether it reached it. It returns
// ErrUnknownProjection for a name that does not run here.
func (r *Runner) WaitFor(ctx context.Context, name string, minPosition int64, maxWait time.Duration) (Freshness, error) {
	pj := r.byName[name]
	if pj == nil {
		return Freshness{}, fmt.Errorf("%s: %w", name, projections.ErrUnknownProjection)
	}
	if minPosition > 0 && pj.checkpoint.Load() < minPosition && maxWait > 0 {
		timer := time.NewTimer(maxWait)
		defer timer.Stop()
	wait:
		for {
			advanced := pj.advancedCh()
			if pj.checkpoint.Load() >= minPosition {
				break
			}
			select {
			case <-advanced:
			case <-timer.C:
				break wait
			case <-ctx.Done():
				return Freshness{}, ctx.Err()
			}
		}
	}
	f, err := r.freshness(ctx, pj)
	if err != nil {
		return Freshness{}, err
	}
	if minPosition > 0 {
		f.MinPosition = minPosition
		f.Stale = f.Position < minPosition
	}
	return f, nil
}

func (r *Runner) freshness(ctx context.Context, pj *projector) (Freshness, error) {
	headPos, err := r.knownHead(ctx)
	if err != nil {
		return Freshness{}, err
	}
	return r.freshnessAt(ctx, pj, headPos, r.feedAt(headPos))
}

// knownHead is the log's head as last seen, read from the store when none was seen yet.
func (r *Runner) knownHead(ctx context.Context) (int64, error) {
	headPos, known := r.head.load()
	if known {
		return headPos, nil
	}
	headPos, err := projections.LogHead(ctx, r.store)
	if err != nil {
		return 0, fmt.Errorf("head of the log: %w", err)
	}
	r.head.observe(headPos)
	return headPos, nil
}

// freshnessAt says how current pj is against the head headPos, with the feed at that head.
func (r *Runner) freshnessAt(ctx context.Context, pj *projector, headPos int64, feed Feed) (Freshness, error) {
	cp := pj.checkpoint.Load()
	f := Freshness{Projection: pj.p.Name(), Position: cp, Head: max(headPos, cp)}
	if f.Head > cp {
		f.Lag.Events = f.Head - cp
		if feed.Stalled {
			// The oldest event not applied cannot be read past the stall (the read would
			// wait for it): the stall's age is the lag's lower bound.
			f.Lag.Seconds = feed.StalledSeconds
			return f, nil
		}
		at, ok, err := r.oldestUnapplied(ctx, pj, cp)
		if err != nil {
			return Freshness{}, err
		}
		if ok {
			f.Lag.Seconds = max(0, math.Round(r.cfg.Now().Sub(at).Seconds()*1000)/1000)
		}
	}
	return f, nil
}

// oldestUnapplied is when the first event after checkpoint cp of pj was recorded (ok false
// when there is none yet). The log is read for the first answer at cp only: the answers
// while pj stays at cp (a hundred readers while it applies a batch) share it, rather than
// each waiting for a connection of the store beside the commands.
func (r *Runner) oldestUnapplied(ctx context.Context, pj *projector, cp int64) (time.Time, bool, error) {
	if b := pj.behind.Load(); b != nil && b.checkpoint == cp {
		return b.recordedAt, true, nil
	}
	next, err := r.store.ReadAll(ctx, cp, 1)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("oldest event not in %s: %w", pj.p.Name(), err)
	}
	if len(next) == 0 {
		return time.Time{}, false, nil
	}
	pj.behind.Store(&oldestUnapplied{checkpoint: cp, recordedAt: next[0].RecordedAt})
	return next[0].RecordedAt, true, nil
}

// head is the last position of the log the runner has seen.
type head struct {
	mu    sync.Mutex
	pos   int64
	known bool
}

func (h *head) observe(pos int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pos = max(h.pos, pos)
	h.known = true
}

func (h *head) load() (int64, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.pos, h.known
}

// Feed says whether the store's feed reaches the projections: events the store has
// committed (StoreHead) that no projection of this runner reaches (Reached) for
// RunnerConfig.StallAfter make it Stalled. A writer of the log that took a position on
// PostgreSQL and does not end does that: every reader stops at its position while commands
// go on. Lag then grows from the store's head; it never reads 0.
type Feed struct {
	// StoreHead is the store's last committed position, as last read.
	StoreHead int64 `json:"store_head"`
	// Reached is the furthest checkpoint of the projections.
	Reached int64 `json:"reached"`
	// Stalled: an event committed at least StallAfter ago is beyond Reached.
	Stalled bool `json:"stalled"`
	// StalledSeconds is how long the oldest such event has been committed.
	StalledSeconds float64 `json:"stalled_seconds,omitempty"`
}

// Feed says whether the store's feed reaches the projections now.
func (r *Runner) Feed() Feed {
	head, _ := r.head.load()
	return r.feedAt(head)
}

// feedAt is Feed with the store's head at head.
func (r *Runner) feedAt(head int64) Feed {
	var reached int64
	for _, pj := range r.projs {
		reached = max(reached, pj.checkpoint.Load())
	}
	f := Feed{StoreHead: head, Reached: reached}
	now := r.cfg.Now()
	if since, pending := r.stall.oldestBeyond(now, reached, r.building.Load() > 0); pending {
		age := now.Sub(since)
		if age >= r.cfg.StallAfter {
			f.Stalled = true
			f.StalledSeconds = math.Round(age.Seconds()*1000) / 1000
		}
	}
	return f
}

// stallWatch remembers when the store's head reached each position still beyond every
// projection, and when the projections last moved: a feed stalls when events wait while
// nothing moves (a catch-up of a long log moves all along).
type stallWatch struct {
	mu        sync.Mutex
	samples   []headSample // increasing positions
	reached   int64
	reachedAt time.Time
}

type headSample struct {
	at  time.Time
	pos int64
}

// maxHeadSamples bounds the memory of a long stall: its start is kept, later samples are not.
const maxHeadSamples = 4096

func (w *stallWatch) observe(at time.Time, pos int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if n := len(w.samples); (n == 0 || w.samples[n-1].pos < pos) && n < maxHeadSamples {
		w.samples = append(w.samples, headSample{at: at, pos: pos})
	}
}

// moved records that the projections moved at now though their checkpoints may not show it
// yet: a build in place ended.
func (w *stallWatch) moved(now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.reachedAt = now
}

// oldestBeyond forgets the samples reached and returns since when events have waited while
// the projections stood still: the later of when the oldest sample left was seen and when
// the projections last moved. They move while building: a build in place reads the log in
// full batches between its commits (which may be further apart than the stall's bound) and
// ends at the first read that comes back short, as a read held back at a gap does.
func (w *stallWatch) oldestBeyond(now time.Time, reached int64, building bool) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if reached > w.reached || w.reachedAt.IsZero() || building {
		w.reached, w.reachedAt = max(w.reached, reached), now
	}
	i := 0
	for i < len(w.samples) && w.samples[i].pos <= reached {
		i++
	}
	w.samples = w.samples[i:]
	if len(w.samples) == 0 {
		return time.Time{}, false
	}
	if w.samples[0].at.Before(w.reachedAt) {
		return w.reachedAt, true
	}
	return w.samples[0].at, true
}

// trackHead follows the log's head, so lag is known without a query per answer, also while
// every projection is stuck: by reading the store's last committed position when it tells
// it (eventstore.Heads), which also shows a stalled feed, else with a subscription of its
// own.
func (r *Runner) trackHead(ctx context.Context) {
	if heads, ok := eventstore.HeadsOf(r.store); ok {
		r.pollHead(ctx, heads)
		return
	}
	delay := r.cfg.RestartDelay
	for {
		err := r.followHead(ctx)
		if ctx.Err() != nil {
			return
		}
		r.log.Error("Following the log head failed, retrying", err, watermill.LogFields{"retry_in": delay})
		if projections.Sleep(ctx, delay) != nil {
			return
		}
		delay = min(2*delay, r.cfg.MaxRestartDelay)
	}
}

// pollHead reads the store's head every HeadPoll until ctx ends, and logs a stalled feed
// once when it stalls and once when it moves again.
func (r *Runner) pollHead(ctx context.Context, heads eventstore.Heads) {
	tick := time.NewTicker(r.cfg.HeadPoll)
	defer tick.Stop()
	stalled := false
	for {
		pos, err := heads.LastPosition(ctx)
		if err == nil {
			r.head.observe(pos)
			r.stall.observe(r.cfg.Now(), pos)
		}
		switch f := r.Feed(); {
		case f.Stalled && !stalled:
			r.log.Error("The feed is stalled: committed events reach no projection; a writer of the log that took a position and has not ended may hold back the log reader",
				errors.New("feed stalled"), watermill.LogFields{"store_head": f.StoreHead, "reached": f.Reached, "stalled_seconds": f.StalledSeconds})
		case !f.Stalled && stalled:
			r.log.Info("The feed moves again", watermill.LogFields{"store_head": f.StoreHead, "reached": f.Reached})
		}
		stalled = r.Feed().Stalled
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (r *Runner) followHead(ctx context.Context) error {
	pos, err := projections.LogHead(ctx, r.store)
	if err != nil {
		return fmt.Errorf("find head: %w", err)
	}
	r.head.observe(pos)
	sub, err := r.store.Subscribe(ctx, pos)
	if err != nil {
		return fmt.Errorf("subscribe after %d: %w", pos, err)
	}
	defer sub.Close()
	for e := range sub.Events() {
		r.head.observe(e.Position)
	}
	if err := sub.Err(); err != nil {
		return err
	}
	return ctx.Err()
}
