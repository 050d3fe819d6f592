package runtime

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/wmstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/lease"
)

// AllTopic is the topic of the store's global feed.
const AllTopic = "$all"

// Defaults of RunnerConfig.
const (
	// DefaultCatchUpBatch: a catch-up transaction's cost is mostly its commit, which writes
	// every page the batch touched (the read models' keys are random UUIDs, so few are shared
	// by small batches). 2000 events per transaction catch up 1M events on SQLite about 1.4x
	// as fast as 500 (cmd/crm's BenchmarkProjectionThroughput), and hold the write lock for
	// well under a second.
	DefaultCatchUpBatch = 2000
	// DefaultLiveBatch: a live transaction's cost is mostly its commit too; 256 events share
	// one where they arrive faster than a transaction commits, and a batch holds the
	// write lock for a few milliseconds.
	DefaultLiveBatch     = 256
	DefaultCatchingUpLag = 1000
	// DefaultBuildBehind: from this far behind, the catch-up is a rebuild's build in place.
	DefaultBuildBehind     = 10_000
	DefaultMaxRetries      = 3
	DefaultRetryInterval   = 100 * time.Millisecond
	DefaultMaxRetryDelay   = 2 * time.Second
	DefaultRestartDelay    = time.Second
	DefaultMaxRestartDelay = 30 * time.Second
	DefaultRegistryPoll    = time.Second
	DefaultSyncInterval    = 200 * time.Millisecond
	DefaultHeadPoll        = 200 * time.Millisecond
	DefaultStallAfter      = 5 * time.Second
)

// RetryConfig is the backoff of the retry middleware: an event is tried 1 + MaxRetries times
// before it is parked.
type RetryConfig struct {
	MaxRetries      int
	InitialInterval time.Duration
	MaxInterval     time.Duration
}

// RunnerConfig configures a Runner. Zero values take the defaults.
type RunnerConfig struct {
	// DB holds the read models, their checkpoints and the poison queue.
	DB *projections.DB
	// Store is the log: read directly to catch up, and to re-read parked events.
	Store eventstore.Store
	// NewSubscriber returns a subscriber of the store's global feed whose consumer group is
	// group: a durable position shared by every subscriber of that group.
	NewSubscriber func(group string) (message.Subscriber, error)
	// Decode turns a message of those subscribers back into its event.
	Decode func(*message.Message) (eventstore.Event, error)
	// AdvanceGroup, when set, moves a consumer group forward to position (never back) before
	// its handler starts: after a catch-up the group would otherwise deliver again, one
	// acknowledgement at a time, everything the catch-up applied.
	AdvanceGroup func(ctx context.Context, group string, position int64) error
	// Topic is the feed's topic (default AllTopic).
	Topic string
	// Logger receives the router's logs and parked events (default: none).
	Logger watermill.LoggerAdapter
	// Retry is the backoff before an event is parked.
	Retry RetryConfig
	// CatchUpBatch is how many events one catch-up transaction applies (default
	// DefaultCatchUpBatch).
	CatchUpBatch int
	// LiveBatch is how many events one live transaction applies at most (default
	// DefaultLiveBatch; 1: one transaction per event). The handler applies the event it was
	// delivered together with the events after it that are committed in the log already,
	// read directly: they arrive next as duplicates, acknowledged without a transaction. A
	// batch never waits for events to come.
	LiveBatch int
	// CatchingUpLag is the lag, in positions, above which a live projection reports
	// catching_up rather than running, and stops applying events one by one as Watermill
	// delivers them: it reads the log in batches of CatchUpBatch up to the head, as at
	// start (default DefaultCatchingUpLag).
	CatchingUpLag int64
	// BuildBehind is the lag, in positions, from which the catch-up applies the log as a
	// rebuild does, in place (projections.Builder: the log read, decoded and written side
	// by side, in batches of projections.DefaultRebuildBatch, new rows copied in on
	// PostgreSQL) rather than in transactions of CatchUpBatch (default DefaultBuildBehind;
	// negative: never). An event it refuses is parked at once, without the retries. The
	// projections that far behind at once are built together, from one read of the log.
	BuildBehind int64
	// BuildBatch is how many events one read of such a build takes (default
	// projections.DefaultRebuildBatch).
	BuildBatch int
	// RestartDelay is the first pause before a stopped projection starts again; it doubles
	// up to MaxRestartDelay.
	RestartDelay, MaxRestartDelay time.Duration
	// Now is the clock of lag and parked_at (default time.Now).
	Now func() time.Time
	// RegistryPoll is how often the runner looks in the table-set registry for a set that a
	// rebuild in another process switched to (default DefaultRegistryPoll). A rebuild in this
	// process hands over at once, and an apply transaction never writes to a replaced set.
	RegistryPoll time.Duration
	// Leases, when set, gives each projection one owner among the servers sharing the
	// read-model database: this runner applies only the projections whose lease it holds
	// (checked inside every apply transaction) and follows the others from the database.
	// Without it the runner applies every projection (one process per database, SQLite).
	Leases *lease.Manager
	// SyncInterval is how often the runner reads, from the database, the checkpoints,
	// parked counts and changes of every set (default DefaultSyncInterval): the freshness,
	// min_position and kept answers of a projection another server applies, and the
	// retries another server made.
	SyncInterval time.Duration
	// HeadPoll is how often the runner reads the store's head when the store tells it
	// (eventstore.Heads; default DefaultHeadPoll).
	HeadPoll time.Duration
	// StallAfter is how long events may stay committed in the store without any projection
	// reaching them before the feed is reported stalled (default DefaultStallAfter).
	StallAfter time.Duration
}

func (c *RunnerConfig) setDefaults() {
	if c.Topic == "" {
		c.Topic = AllTopic
	}
	if c.Logger == nil {
		c.Logger = watermill.NopLogger{}
	}
	c.Retry.MaxRetries = cmp.Or(c.Retry.MaxRetries, DefaultMaxRetries)
	c.Retry.InitialInterval = cmp.Or(c.Retry.InitialInterval, DefaultRetryInterval)
	c.Retry.MaxInterval = cmp.Or(c.Retry.MaxInterval, DefaultMaxRetryDelay)
	c.CatchUpBatch = cmp.Or(c.CatchUpBatch, DefaultCatchUpBatch)
	c.BuildBehind = cmp.Or(c.BuildBehind, DefaultBuildBehind)
	c.BuildBatch = cmp.Or(c.BuildBatch, projections.DefaultRebuildBatch)
	c.LiveBatch = cmp.Or(c.LiveBatch, DefaultLiveBatch)
	c.CatchingUpLag = cmp.Or(c.CatchingUpLag, DefaultCatchingUpLag)
	c.RestartDelay = cmp.Or(c.RestartDelay, DefaultRestartDelay)
	c.MaxRestartDelay = cmp.Or(c.MaxRestartDelay, DefaultMaxRestartDelay)
	if c.Now == nil {
		c.Now = time.Now
	}
	c.RegistryPoll = cmp.Or(c.RegistryPoll, DefaultRegistryPoll)
	c.SyncInterval = cmp.Or(c.SyncInterval, DefaultSyncInterval)
	c.HeadPoll = cmp.Or(c.HeadPoll, DefaultHeadPoll)
	c.StallAfter = cmp.Or(c.StallAfter, DefaultStallAfter)
}

// Validate reports every problem of the configuration at once.
func (c RunnerConfig) Validate() error {
	errs := projections.SourceProblems(c.DB, c.Store)
	if c.NewSubscriber == nil {
		errs = append(errs, errors.New("no subscriber constructor"))
	}
	if c.Decode == nil {
		errs = append(errs, errors.New("no message decoder"))
	}
	if c.Retry.MaxRetries < 0 {
		errs = append(errs, fmt.Errorf("max retries %d: want at least 0", c.Retry.MaxRetries))
	}
	if c.Retry.InitialInterval < 0 || c.Retry.MaxInterval < 0 {
		errs = append(errs, errors.New("negative retry interval"))
	}
	if c.CatchUpBatch < 0 {
		errs = append(errs, fmt.Errorf("catch-up batch %d: want at least 1", c.CatchUpBatch))
	}
	if c.LiveBatch < 0 {
		errs = append(errs, fmt.Errorf("live batch %d: want at least 1", c.LiveBatch))
	}
	if c.BuildBatch < 0 {
		errs = append(errs, fmt.Errorf("build batch %d: want at least 1", c.BuildBatch))
	}
	if c.RestartDelay < 0 || c.MaxRestartDelay < 0 {
		errs = append(errs, errors.New("negative restart delay"))
	}
	if c.RegistryPoll < 0 {
		errs = append(errs, errors.New("negative registry poll interval"))
	}
	if c.SyncInterval < 0 || c.HeadPoll < 0 || c.StallAfter < 0 {
		errs = append(errs, errors.New("negative sync, head poll or stall interval"))
	}
	return errors.Join(errs...)
}

// Runner runs projections live: each one is a Watermill router handler fed by the store's
// subscriber under a consumer group of its own ("projection:<table set prefix>"), wrapped in
// a poison queue, retry with backoff and a recoverer (outermost first).
//
// The read-model checkpoint, written in the same transaction as the read-model change, is
// the truth about what a projection has applied; the consumer group only saves delivery
// work. A redelivered event (at or below the checkpoint) is acknowledged without touching
// the database. On every start, a projection first catches up by reading the log directly
// from its checkpoint in large batches, so a read-model database that lost its tail or was
// dropped is rebuilt even when its consumer group is further ahead.
//
// Several runners on one database (servers sharing PostgreSQL) take a lease per projection
// (RunnerConfig.Leases): one applies it, the others stand by and follow its checkpoint,
// parked events and changes from the database, and take over when its owner stops renewing.
// Whoever applies, the poison queue's per-stream blocking is read from the parked table
// under the set's lock, never from a runner's memory.
//
// A projection applies to the set the table-set registry serves and moves to the set a
// rebuild switched to, as the blue/green hand-over of package rebuild describes.
// The consumer group stays the one of the projection's version: it only saves delivery
// work.
type Runner struct {
	cfg   RunnerConfig
	db    *projections.DB
	store eventstore.Store
	log   watermill.LoggerAdapter

	projs  []*projector
	byName map[string]*projector
	head   head
	ahead  aheadCache
	stall  stallWatch
	// builds admits one build in place at a time; building counts those running (the feed
	// moves while one reads the log).
	builds   builds
	building atomic.Int32
	// runCtx is Run's context: a build in place runs under it, not under the lease of the
	// projection that started it.
	runCtx  context.Context
	started time.Time // when Run started

	initMu sync.Mutex
	inited bool

	faults faults // failures injected by tests
}

// projector is the running state of one projection.
type projector struct {
	p     projections.Projection
	group string
	// set is the table set applied to and read; it changes only under mu, when a rebuild
	// switched the served set.
	set atomic.Pointer[tableSet]
	// prev is the set replaced last, whose readers a rebuild waits for before dropping it.
	prev atomic.Pointer[tableSet]

	// mu admits one writer of this process at a time: the live handler, the catch-up, a
	// retry of parked events or the move to a rebuilt set.
	mu          sync.Mutex
	parkedTotal atomic.Int64

	// lease is held while this runner applies the projection (nil: it stands by; always
	// nil without RunnerConfig.Leases). Every apply transaction checks it.
	lease atomic.Pointer[lease.Lease]
	// seen is the state of the served set last read from the database (see sync).
	seen projections.SetState

	checkpoint atomic.Int64
	// slowUntil: the live handler applies the events up to it one by one, since a batch
	// that held them met an event the projection refuses (parked alone that way).
	slowUntil atomic.Int64
	// changes counts the changes of the served tables: a moved checkpoint, a retried parked
	// event, a switch to another set. Answers cached under one count hold until the next.
	changes    atomic.Uint64
	catchingUp atomic.Bool
	failure    atomic.Pointer[string]

	waitMu   sync.Mutex
	advanced chan struct{} // closed and replaced whenever the checkpoint moves

	// behind is the oldest event not applied at a checkpoint, as last read for the lag in
	// seconds: every answer at that checkpoint has the same, so the log is read once per
	// checkpoint, not once per answer.
	behind atomic.Pointer[oldestUnapplied]
}

// oldestUnapplied is when the first event after checkpoint was recorded.
type oldestUnapplied struct {
	checkpoint int64
	recordedAt time.Time
}

// tableSet is a set in use by a projector, with the queries reading it: a rebuild drops the
// set it replaced only once they are done.
type tableSet struct {
	t       projections.Tables
	readers sync.RWMutex // held for reading by each query of the set
}

// tables is the set the projector applies to now.
func (pj *projector) tables() projections.Tables { return pj.set.Load().t }

// faults are failures tests inject between the steps of applying events, to prove that a
// crash at any of them leaves the read model exact.
type faults struct {
	// beforeCommit runs inside the transaction after each event was applied.
	beforeCommit func(ctx context.Context, e eventstore.Event) error
	// afterCommit runs after a transaction committed, before the events are acknowledged.
	afterCommit func(ctx context.Context, events []eventstore.Event) error
	// built runs after each commit of a catch-up built in place, with the checkpoint.
	built func(checkpoint int64)
}

var projectionName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// NewRunner returns a runner of the projections' default table sets.
func NewRunner(cfg RunnerConfig, ps ...projections.Projection) (*Runner, error) {
	cfg.setDefaults()
	var errs []error
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	r := &Runner{cfg: cfg, db: cfg.DB, store: cfg.Store, log: cfg.Logger, byName: map[string]*projector{}}
	for _, p := range ps {
		name := p.Name()
		switch {
		case !projectionName.MatchString(name):
			errs = append(errs, fmt.Errorf("projection name %q: want snake_case", name))
			continue
		case r.byName[name] != nil:
			errs = append(errs, fmt.Errorf("projection %s registered twice", name))
			continue
		case p.Version() < 1:
			errs = append(errs, fmt.Errorf("projection %s: version %d, want at least 1", name, p.Version()))
			continue
		}
		t := projections.TablesFor(p, "")
		pj := &projector{p: p, group: ConsumerGroup(t), advanced: make(chan struct{})}
		pj.set.Store(&tableSet{t: t})
		pj.catchingUp.Store(true)
		r.projs = append(r.projs, pj)
		r.byName[name] = pj
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("projection runner: %w", err)
	}
	return r, nil
}

// ConsumerGroup is the persisted name of the consumer group (and Watermill handler) of a
// table set. It is derived from the projection's persisted name and version, never from a
// Go type. The runner uses the group of the default set whatever set it serves.
func ConsumerGroup(t projections.Tables) string {
	return "projection:" + strings.TrimSuffix(t.Prefix(), "_")
}

// Init creates the poison queue and the tables of every projection's served set, and loads
// the checkpoints. Run calls it; call it first to fail fast on a database that cannot hold
// the read models.
func (r *Runner) Init(ctx context.Context) error {
	r.initMu.Lock()
	defer r.initMu.Unlock()
	if r.inited {
		return nil
	}
	// The registry comes with the checkpoints and the poison queue.
	if err := r.db.EnsureRegistry(ctx); err != nil {
		return err
	}
	for _, pj := range r.projs {
		pj.mu.Lock()
		err := r.adoptLocked(ctx, pj, true)
		pj.mu.Unlock()
		if err != nil {
			return err
		}
	}
	r.inited = true
	return nil
}

// adoptLocked makes pj apply to the set the registry serves, with that set's checkpoint and
// parked events; with force it loads them even when the set did not change. The caller
// holds pj.mu, so no transaction of pj runs meanwhile.
func (r *Runner) adoptLocked(ctx context.Context, pj *projector, force bool) error {
	t, err := r.db.ActiveTables(ctx, pj.p)
	if err != nil {
		return err
	}
	old := pj.set.Load()
	if !force && t == old.t {
		return nil
	}
	if err := r.db.EnsureSchema(ctx, pj.p, t); err != nil {
		return err
	}
	cp, err := r.db.Checkpoint(ctx, t)
	if err != nil {
		return err
	}
	parked, err := r.db.ParkedCounts(ctx, t)
	if err != nil {
		return err
	}
	var total int64
	for _, n := range parked {
		total += int64(n)
	}
	pj.parkedTotal.Store(total)
	if t != old.t {
		pj.set.Store(&tableSet{t: t})
		pj.prev.Store(old)
		pj.changes.Add(1)
		r.log.Info("Projection moved to a rebuilt table set", watermill.LogFields{"projection": pj.p.Name(),
			"from": old.t.Prefix(), "to": t.Prefix(), "checkpoint": cp})
	}
	pj.moveTo(cp)
	return nil
}

// Adopt moves the projection name to the set the registry serves now (a rebuild of this
// process calls it right after its switch committed). It returns ErrUnknownProjection for a
// name that does not run here.
func (r *Runner) Adopt(ctx context.Context, name string) error {
	pj := r.byName[name]
	if pj == nil {
		return fmt.Errorf("%s: %w", name, projections.ErrUnknownProjection)
	}
	pj.mu.Lock()
	defer pj.mu.Unlock()
	return r.adoptLocked(ctx, pj, false)
}

// watchRegistry moves projections to sets switched by rebuilds of other processes, also
// while no event arrives to make an apply transaction notice.
func (r *Runner) watchRegistry(ctx context.Context) {
	projections.Every(ctx, r.cfg.RegistryPoll, func() bool {
		for _, pj := range r.projs {
			t, err := r.db.ActiveTables(ctx, pj.p)
			if err != nil || t == pj.tables() {
				continue // a failing database shows in the projections' own state
			}
			if err := r.Adopt(ctx, pj.p.Name()); err != nil && ctx.Err() == nil {
				pj.fail(err)
			}
		}
		return true
	})
}

// errSetSwitched: the set an apply transaction was about to write is no longer served.
var errSetSwitched = errors.New("the table set was replaced by a rebuild")

// errNotOwner: this runner stands by for the projection; another server applies it.
var errNotOwner = errors.New("another server holds the projection's lease")

// applyGuard runs inside an apply transaction to t once the set's lock is taken, before
// anything is applied. It fails the transaction once the registry serves another set of pj
// (a switch also holds the lock: so it either committed before and the guard sees it, or
// waits for the transaction to end), or once this runner no longer holds pj's lease (the
// fencing check: a takeover waits for the transaction, or the transaction sees it). Then it
// reads which of the events' streams have parked events, for g.
func (r *Runner) applyGuard(pj *projector, t projections.Tables, g *gate, events []eventstore.Event) func(ctx context.Context, tx *projections.Tx) error {
	return func(ctx context.Context, tx *projections.Tx) error {
		if err := r.fence(ctx, pj, t, tx); err != nil {
			return err
		}
		var err error
		g.blocked, err = projections.ParkedStreams(ctx, tx, t, streamsOf(events))
		if err != nil {
			return &storageError{err}
		}
		return nil
	}
}

// fence fails a transaction of pj's set t once the registry serves another set of pj or
// once this runner no longer holds pj's lease (see applyGuard).
func (r *Runner) fence(ctx context.Context, pj *projector, t projections.Tables, tx *projections.Tx) error {
	active, err := r.db.ActiveTablesIn(ctx, tx, pj.p)
	if err != nil {
		return &storageError{err}
	}
	if active != t {
		return &storageError{errSetSwitched}
	}
	if r.cfg.Leases != nil {
		l := pj.lease.Load()
		if l == nil {
			return &storageError{errNotOwner}
		}
		if err := l.Check(ctx, tx); err != nil {
			return &storageError{err}
		}
	}
	return nil
}

// streamsOf lists the streams of events, each once.
func streamsOf(events []eventstore.Event) []string {
	seen := make(map[string]bool, len(events))
	streams := make([]string, 0, len(events))
	for _, e := range events {
		if !seen[e.Stream] {
			seen[e.Stream] = true
			streams = append(streams, e.Stream)
		}
	}
	return streams
}

// Run runs every projection until ctx ends. A projection whose handler stops on an error
// (the database or the subscription failed) reports state failed and starts again after a
// pause; the others go on. Run returns an error only when Init fails.
func (r *Runner) Run(ctx context.Context) error {
	if err := r.Init(ctx); err != nil {
		return err
	}
	r.runCtx, r.started = ctx, time.Now()
	var wg sync.WaitGroup
	wg.Go(func() { r.trackHead(ctx) })
	wg.Go(func() { r.watchRegistry(ctx) })
	wg.Go(func() { r.follow(ctx) })
	for _, pj := range r.projs {
		wg.Go(func() { r.supervise(ctx, pj) })
	}
	wg.Wait()
	return nil
}

func (r *Runner) supervise(ctx context.Context, pj *projector) {
	delay := r.cfg.RestartDelay
	for {
		err := r.hold(ctx, pj)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, lease.ErrLost) {
			// Another server applies it now; stand by at once.
			pj.fail(nil)
			delay = r.cfg.RestartDelay
			continue
		}
		if err == nil {
			err = errors.New("the subscription ended")
		}
		pj.fail(err)
		r.log.Error("Projection stopped, restarting", err, watermill.LogFields{"projection": pj.p.Name(), "restart_in": delay})
		if projections.Sleep(ctx, delay) != nil {
			return
		}
		delay = min(2*delay, r.cfg.MaxRestartDelay)
	}
}

// hold runs pj while this runner holds its lease, standing by until it does (without
// RunnerConfig.Leases it runs it at once). Taking the lease reloads the set and checkpoint
// the previous owner left.
func (r *Runner) hold(ctx context.Context, pj *projector) error {
	if r.cfg.Leases == nil {
		return r.runOnce(ctx, pj)
	}
	pj.catchingUp.Store(false) // standing by: its state follows its lag
	return r.cfg.Leases.Hold(ctx, pj.group, func(ctx context.Context) error {
		pj.lease.Store(lease.FromContext(ctx))
		defer pj.lease.Store(nil)
		pj.mu.Lock()
		err := r.adoptLocked(ctx, pj, true)
		pj.mu.Unlock()
		if err != nil {
			return err
		}
		return r.runOnce(ctx, pj)
	})
}

// runOnce catches up from the log, then runs the projection's router handler until ctx
// ends or the handler stops.
func (r *Runner) runOnce(ctx context.Context, pj *projector) error {
	pj.catchingUp.Store(true)
	if err := r.catchUp(ctx, pj); err != nil {
		return err
	}
	pj.fail(nil) // it reads and writes again: whatever failed before is over
	if r.cfg.AdvanceGroup != nil {
		if err := r.cfg.AdvanceGroup(ctx, pj.group, pj.checkpoint.Load()); err != nil {
			return fmt.Errorf("advance %s: %w", pj.group, err)
		}
	}
	sub, err := r.cfg.NewSubscriber(pj.group)
	if err != nil {
		return fmt.Errorf("subscriber of %s: %w", pj.group, err)
	}
	return wmstore.RunHandler(ctx, r.log, wmstore.Handler{
		Name:       pj.group,
		Topic:      r.cfg.Topic,
		Subscriber: sub,
		Handle: func(msg *message.Message) error {
			_, err := r.core(pj)(msg)
			return err
		},
		Middleware: r.middlewares(pj),
		Running:    func() { pj.catchingUp.Store(false) },
	})
}

// middlewares are the handler's middleware, outermost first: the poison queue sees what is
// left after the retries, and the retries see panics as errors.
func (r *Runner) middlewares(pj *projector) []message.HandlerMiddleware {
	retry := middleware.Retry{
		MaxRetries:          r.cfg.Retry.MaxRetries,
		InitialInterval:     r.cfg.Retry.InitialInterval,
		MaxInterval:         r.cfg.Retry.MaxInterval,
		Multiplier:          2,
		RandomizationFactor: 0.25,
		ShouldRetry: func(p middleware.RetryParams) bool {
			return !errors.Is(p.Err, context.Canceled) && !errors.Is(p.Err, context.DeadlineExceeded)
		},
	}
	return []message.HandlerMiddleware{r.poisonQueue(pj), retry.Middleware, middleware.Recoverer}
}

func compose(h message.HandlerFunc, m ...message.HandlerMiddleware) message.HandlerFunc {
	for i := len(m) - 1; i >= 0; i-- {
		h = m[i](h)
	}
	return h
}

type (
	eventKey    struct{}
	attemptsKey struct{}
	catchUpKey  struct{}
)

// eventMessage wraps an event read directly from the log, so that the catch-up sends the
// events it cannot apply in a batch through the same middleware as live messages.
func eventMessage(ctx context.Context, e eventstore.Event) *message.Message {
	msg := message.NewMessage(e.ID, nil)
	msg.SetContext(context.WithValue(ctx, eventKey{}, e))
	return msg
}

func (r *Runner) eventOf(msg *message.Message) (eventstore.Event, error) {
	if e, ok := msg.Context().Value(eventKey{}).(eventstore.Event); ok {
		return e, nil
	}
	e, err := r.cfg.Decode(msg)
	if err != nil {
		return eventstore.Event{}, fmt.Errorf("decode message %s: %w", msg.UUID, err)
	}
	return e, nil
}

// core applies one event with the checkpoint in one transaction. An event at or below the
// checkpoint was applied (or parked) before: it is acknowledged and nothing else happens.
func (r *Runner) core(pj *projector) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		ctx := msg.Context()
		if n, ok := ctx.Value(attemptsKey{}).(*int); ok {
			*n++
		}
		e, err := r.eventOf(msg)
		if err != nil {
			return nil, err
		}
		r.head.observe(e.Position)
		if e.Position <= pj.checkpoint.Load() {
			return nil, nil
		}
		if done, err := r.catchUpIfFarBehind(ctx, pj, e); done || err != nil {
			return nil, err
		}
		events, err := r.batchOf(ctx, pj, e)
		if err != nil {
			return nil, err
		}
		if len(events) > 1 {
			// The batch shows how far behind the handler is (and a full one, that more is
			// waiting: the store tells how much). Far behind, the catch-up's larger
			// batches go faster.
			if len(events) == r.cfg.LiveBatch {
				r.observeStoreHead(ctx)
			}
			if done, err := r.catchUpIfFarBehind(ctx, pj, e); done || err != nil {
				return nil, err
			}
		}
		if len(events) > 1 {
			err := r.applyBatch(ctx, pj, events)
			if err == nil {
				return nil, r.committed(ctx, events)
			}
			if !isPoison(ctx, err) {
				return nil, err
			}
			// The projection refuses an event of the batch: the batch's events go one by one,
			// so that the poison queue parks that event alone (and its stream behind it).
			pj.slowUntil.Store(events[len(events)-1].Position)
			events = events[:1]
		}
		if err := r.apply(ctx, pj, events, nil, false); err != nil {
			return nil, err
		}
		return nil, r.committed(ctx, events)
	}
}

// batchOf returns the live batch that starts with the delivered event e: e and the events
// after it committed in the log already, up to LiveBatch (only e in the catch-up, which
// makes its own batches, and for an event of a batch that met a refused one).
func (r *Runner) batchOf(ctx context.Context, pj *projector, e eventstore.Event) ([]eventstore.Event, error) {
	if r.cfg.LiveBatch < 2 || ctx.Value(catchUpKey{}) != nil || e.Position <= pj.slowUntil.Load() {
		return []eventstore.Event{e}, nil
	}
	ahead, err := r.readAhead(ctx, e.Position, r.cfg.LiveBatch-1)
	if err != nil {
		return nil, fmt.Errorf("read the log after %d: %w", e.Position, err)
	}
	if len(ahead) > 0 {
		r.head.observe(ahead[len(ahead)-1].Position)
	}
	return append([]eventstore.Event{e}, ahead...), nil
}

// committed runs the fault a test injects after a commit, if any.
func (r *Runner) committed(ctx context.Context, events []eventstore.Event) error {
	if r.faults.afterCommit != nil {
		return r.faults.afterCommit(ctx, events)
	}
	return nil
}

// applyBatch applies events in one transaction with the checkpoint: through the
// projection's batch path when it has one (the path of rebuilds), and, when that path
// refuses them, one by one with Apply in one transaction. A panic of the projection is
// returned as the error the recoverer middleware would make of it.
func (r *Runner) applyBatch(ctx context.Context, pj *projector, events []eventstore.Event) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = middleware.RecoveredPanicError{V: v, Stacktrace: string(debug.Stack())}
		}
	}()
	err = r.apply(ctx, pj, events, nil, true)
	if errors.Is(err, projections.ErrBatchRefused) && ctx.Err() == nil &&
		!errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		err = r.apply(ctx, pj, events, nil, false)
	}
	return err
}

// observeStoreHead reads the store's head, when the store tells it.
func (r *Runner) observeStoreHead(ctx context.Context) {
	if heads, ok := eventstore.HeadsOf(r.store); ok {
		if pos, err := heads.LastPosition(ctx); err == nil {
			r.head.observe(pos)
		}
	}
}

// catchUpIfFarBehind catches pj up from the log when the live handler, at event e, is far
// behind (see farBehind); done tells that e was applied by it.
func (r *Runner) catchUpIfFarBehind(ctx context.Context, pj *projector, e eventstore.Event) (done bool, err error) {
	if !r.farBehind(ctx, e) {
		return false, nil
	}
	// One transaction per delivery would fall further behind: read the log in batches up
	// to (nearly) the head, as at start. The messages of the events it applies are then
	// acknowledged as the duplicates they have become.
	pj.catchingUp.Store(true)
	err = r.catchUp(ctx, pj)
	pj.catchingUp.Store(false)
	if err != nil {
		return false, err
	}
	return e.Position <= pj.checkpoint.Load(), nil
}

// farBehind reports whether the live handler, at event e, is more than CatchingUpLag behind
// the head of the log it has seen (not when it is the catch-up applying e already).
func (r *Runner) farBehind(ctx context.Context, e eventstore.Event) bool {
	if ctx.Value(catchUpKey{}) != nil {
		return false
	}
	head, known := r.head.load()
	return known && head-e.Position > r.cfg.CatchingUpLag
}

// poisonQueue parks an event that is still refused after the retries, and with it, later,
// every event of the same stream: the projection goes on with the other streams. Errors
// that are not the event's fault (the database is down, the runner is stopping) are
// returned, so the message is redelivered instead.
func (r *Runner) poisonQueue(pj *projector) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			attempts := new(int)
			msg.SetContext(context.WithValue(msg.Context(), attemptsKey{}, attempts))
			out, err := h(msg)
			ctx := msg.Context()
			if err == nil {
				pj.fail(nil)
				return out, nil
			}
			if !isPoison(ctx, err) {
				if ctx.Err() == nil {
					pj.fail(err)
				}
				return nil, err
			}
			e, derr := r.eventOf(msg)
			if derr != nil {
				return nil, err
			}
			note := projections.ParkNote{Err: projections.ParkedErrorText(err), Attempts: *attempts}
			if perr := r.apply(ctx, pj, []eventstore.Event{e}, map[string]projections.ParkNote{e.ID: note}, false); perr != nil {
				pj.fail(perr)
				return nil, fmt.Errorf("park event %s (%v): %w", e.ID, err, perr)
			}
			pj.fail(nil)
			r.log.Error("Event parked", err, watermill.LogFields{"projection": pj.p.Name(), "event_id": e.ID,
				"stream": e.Stream, "position": e.Position, "attempts": *attempts})
			return nil, nil
		}
	}
}

// storageError is a failure of the runner's own bookkeeping inside an apply transaction:
// never the event's fault, so never a reason to park it.
type storageError struct{ err error }

func (e *storageError) Error() string { return e.err.Error() }
func (e *storageError) Unwrap() error { return e.err }

// isPoison tells an event the projection refuses (its Apply returned an error or panicked)
// from a failure around it.
func isPoison(ctx context.Context, err error) bool {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var (
		se *storageError
		ae *projections.ApplyError
		pe middleware.RecoveredPanicError
	)
	if errors.As(err, &se) {
		return false
	}
	return errors.As(err, &ae) || errors.As(err, &pe)
}

// apply applies events to pj's set in one transaction with the checkpoint. Events of a
// stream that has parked events are parked behind them; events named in park are parked
// with their note instead of applied. When a rebuild has replaced the set, pj moves to the
// new one and the events are applied there (those the rebuild applied are skipped by its
// checkpoint). With batch, the events go through the projection's batch path when it has
// one and none of them is to be parked; a refusal there returns projections.ErrBatchRefused.
func (r *Runner) apply(ctx context.Context, pj *projector, events []eventstore.Event, park map[string]projections.ParkNote, batch bool) error {
	var prep *livePrep
	if batch && len(park) == 0 {
		prep = r.prepare(pj, events) // decoded before the write lock is taken
	}
	pj.mu.Lock()
	defer pj.mu.Unlock()
	var (
		g   *gate
		cp  int64
		err error
	)
	for attempt := 0; ; attempt++ {
		t := pj.tables()
		g = &gate{Projection: pj.p, r: r, pj: pj, park: park, now: r.cfg.Now(), newly: map[string]int{}}
		var prepared func([]eventstore.Event) projections.PreparedBatch
		if prep != nil {
			prepared = prep.forGate(g)
		}
		cp, err = r.db.ApplyPrepared(ctx, g, t, events, r.applyGuard(pj, t, g, events), prepared)
		if !errors.Is(err, errSetSwitched) || attempt == 3 {
			break
		}
		if err := r.adoptLocked(ctx, pj, false); err != nil {
			return &storageError{err}
		}
	}
	if err != nil {
		return err
	}
	var total int64
	for _, n := range g.newly {
		total += int64(n)
	}
	pj.parkedTotal.Add(total)
	pj.advance(cp)
	return nil
}

// gate is the projection as DB.Apply sees it: it parks what must wait and applies the rest.
type gate struct {
	projections.Projection
	r    *Runner
	pj   *projector
	park map[string]projections.ParkNote
	now  time.Time
	// blocked counts the parked events of the transaction's streams before it (read under
	// the set's lock), newly those it parked.
	blocked map[string]int
	newly   map[string]int
}

func (g *gate) Apply(ctx context.Context, tx *projections.Tx, t projections.Tables, e eventstore.Event) error {
	note, parkIt := g.park[e.ID]
	if !parkIt && g.blocked[e.Stream]+g.newly[e.Stream] > 0 {
		parkIt, note = true, projections.ParkNote{Err: "waiting behind an earlier parked event of stream " + e.Stream}
	}
	if parkIt {
		if err := projections.InsertParked(ctx, tx, g.pj.p.Name(), t, e, note, g.now); err != nil {
			return &storageError{err}
		}
		g.newly[e.Stream]++
		return nil
	}
	if err := g.Projection.Apply(ctx, tx, t, e); err != nil {
		return err
	}
	if g.r.faults.beforeCommit != nil {
		return g.r.faults.beforeCommit(ctx, e)
	}
	return nil
}

// catchUp reads the log from the checkpoint in batches, each applied in one transaction,
// until it has (nearly) reached the head. A batch that fails is applied again event by
// event through the handler's middleware, which retries and parks.
func (r *Runner) catchUp(ctx context.Context, pj *projector) error {
	ctx = context.WithValue(ctx, catchUpKey{}, true)
	if err := r.build(ctx, pj); err != nil {
		return fmt.Errorf("catch up %s: %w", pj.group, err)
	}
	chain := compose(r.core(pj), r.middlewares(pj)...)
	for {
		events, err := r.store.ReadAll(ctx, pj.checkpoint.Load(), r.cfg.CatchUpBatch)
		if err != nil {
			return fmt.Errorf("catch up %s: %w", pj.group, err)
		}
		if len(events) == 0 {
			return nil
		}
		r.head.observe(events[len(events)-1].Position)
		if err := r.applyBatch(ctx, pj, events); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			for _, e := range events {
				if _, err := chain(eventMessage(ctx, e)); err != nil {
					return fmt.Errorf("catch up %s: %w", pj.group, err)
				}
			}
		} else if r.faults.afterCommit != nil {
			if err := r.faults.afterCommit(ctx, events); err != nil {
				return err
			}
		}
		if len(events) < r.cfg.CatchUpBatch {
			return nil
		}
	}
}

func (pj *projector) advance(cp int64) {
	if cp <= pj.checkpoint.Load() {
		return
	}
	pj.moveTo(cp)
}

// moveTo sets the checkpoint, also backwards (a set adopted at a lower position), and wakes
// the waiters. The count of changes moves first: a question that has seen the new
// checkpoint must not take an answer kept for the count before it.
func (pj *projector) moveTo(cp int64) {
	pj.changes.Add(1)
	pj.checkpoint.Store(cp)
	pj.wake()
}

// wake wakes the waiters of the checkpoint.
func (pj *projector) wake() {
	pj.waitMu.Lock()
	close(pj.advanced)
	pj.advanced = make(chan struct{})
	pj.waitMu.Unlock()
}

// advancedCh is closed when the checkpoint next moves.
func (pj *projector) advancedCh() <-chan struct{} {
	pj.waitMu.Lock()
	defer pj.waitMu.Unlock()
	return pj.advanced
}

// fail records why the projection is not progressing; nil clears it.
func (pj *projector) fail(err error) {
	if err == nil {
		if pj.failure.Load() != nil {
			pj.failure.Store(nil)
		}
		return
	}
	s := err.Error()
	pj.failure.Store(&s)
}

// unpark records that one parked event was applied.
func (pj *projector) unpark() {
	if pj.parkedTotal.Add(-1) < 0 {
		pj.parkedTotal.Store(0) // another server's count reached this one first
	}
}

// follow reads the state of every projection's served set from the database until ctx
// ends: the checkpoint of a projection another server applies, and the parked events and
// changes (retries) of every projection, whoever made them. So freshness, min_position and
// kept answers hold on every server.
func (r *Runner) follow(ctx context.Context) {
	projections.Every(ctx, r.cfg.SyncInterval, func() bool {
		states, err := r.db.SetStates(ctx)
		if err != nil {
			return true // a failing database shows in the projections' own state
		}
		for _, pj := range r.projs {
			pj.sync(states[pj.tables().Prefix()])
		}
		return true
	})
}

// sync takes in the state of pj's served set read from the database. Only follow calls it.
func (pj *projector) sync(st projections.SetState) {
	if st == pj.seen {
		return
	}
	changed := st.Changes != pj.seen.Changes || st.Parked != pj.seen.Parked
	pj.seen = st
	pj.parkedTotal.Store(st.Parked)
	if st.Checkpoint > pj.checkpoint.Load() {
		pj.advance(st.Checkpoint)
		return
	}
	if changed {
		pj.changes.Add(1)
		pj.wake()
	}
}

// livePrep is a batch of a live or catch-up transaction prepared for the projection's batch
// path, off the write lock.
type livePrep struct {
	r      *Runner
	bp     projections.BatchProjection
	events []eventstore.Event
	prep   projections.PreparedBatch
}

// prepare prepares events for pj's batch path; nil when pj has none or fewer than two
// events are to be applied (one event costs less on the live path).
func (r *Runner) prepare(pj *projector, events []eventstore.Event) *livePrep {
	bp, ok := pj.p.(projections.BatchProjection)
	if !ok || len(events) < 2 {
		return nil
	}
	prep, err := bp.PrepareBatch(projections.NewBatch(events))
	if err != nil {
		prep = nil // prepared again in the transaction, where it fails the batch
	}
	return &livePrep{r: r, bp: bp, events: events, prep: prep}
}

// forGate returns what DB.ApplyPrepared asks for the events after the checkpoint, inside the
// transaction of g once its guard ran: the batch prepared for them, or nil (one by one)
// when one of their streams has parked events, which g parks behind them.
func (lp *livePrep) forGate(g *gate) func([]eventstore.Event) projections.PreparedBatch {
	return func(todo []eventstore.Event) projections.PreparedBatch {
		for _, e := range todo {
			if g.blocked[e.Stream] > 0 {
				return nil
			}
		}
		prep := lp.prep
		if prep == nil || len(todo) != len(lp.events) {
			// Some were applied meanwhile (a redelivery, a retry): prepare what is left.
			p, err := lp.bp.PrepareBatch(projections.NewBatch(todo))
			if err != nil {
				return failedBatch{err}
			}
			prep = p
		}
		return &faultedBatch{PreparedBatch: prep, r: lp.r, events: todo}
	}
}

// failedBatch is a batch that could not be prepared: applying it refuses it.
type failedBatch struct{ err error }

func (f failedBatch) Apply(context.Context, *projections.Tx, projections.Tables) error {
	return f.err
}

// faultedBatch runs the fault a test injects before a commit after a prepared batch, once
// for each of its events, as the event-by-event path does after each event.
type faultedBatch struct {
	projections.PreparedBatch
	r      *Runner
	events []eventstore.Event
}

func (f *faultedBatch) Apply(ctx context.Context, tx *projections.Tx, t projections.Tables) error {
	if err := f.PreparedBatch.Apply(ctx, tx, t); err != nil {
		return err
	}
	if f.r.faults.beforeCommit == nil {
		return nil
	}
	for _, e := range f.events {
		if err := f.r.faults.beforeCommit(ctx, e); err != nil {
			return err
		}
	}
	return nil
}

// readAhead returns up to limit events of the log after position after, for a live batch:
// from the events the batches of the other projections read last when they hold them, so
// that the log is read (and each event opened) once for all projections, not once each.
func (r *Runner) readAhead(ctx context.Context, after int64, limit int) ([]eventstore.Event, error) {
	got, next := r.ahead.after(after, limit)
	if len(got) == limit {
		return got, nil
	}
	more, err := r.store.ReadAll(ctx, next, limit-len(got))
	if err != nil {
		return nil, err
	}
	r.ahead.put(next, more, 4*r.cfg.LiveBatch)
	return append(got, more...), nil
}

// aheadCache holds the events of the log in positions (from, to] as ReadAll returned them:
// every event of that range, in position order.
type aheadCache struct {
	mu       sync.Mutex
	from, to int64
	events   []eventstore.Event
}

// after returns a copy of the held events after pos, up to limit, and the position to read
// the log after for more: the end of the range held when it holds pos, else pos.
func (c *aheadCache) after(pos int64, limit int) ([]eventstore.Event, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if pos < c.from || pos >= c.to {
		return nil, pos
	}
	i, _ := slices.BinarySearchFunc(c.events, pos+1, func(e eventstore.Event, p int64) int { return cmp.Compare(e.Position, p) })
	n := min(limit, len(c.events)-i)
	got := slices.Clone(c.events[i : i+n])
	if n == limit {
		return got, got[n-1].Position
	}
	return got, c.to
}

// put records the events ReadAll returned after from, keeping at most keep events.
func (c *aheadCache) put(from int64, events []eventstore.Event, keep int) {
	if len(events) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if from != c.to || len(c.events) == 0 {
		c.from, c.events = from, nil
	}
	c.events = append(c.events, events...)
	c.to = events[len(events)-1].Position
	if drop := len(c.events) - keep; drop > 0 {
		c.from = c.events[drop-1].Position
		c.events = slices.Clone(c.events[drop:])
	}
}
