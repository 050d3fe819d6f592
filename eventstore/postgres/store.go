// Package postgres is the production event store: PostgreSQL through pgx/v5 and a pgxpool.
//
// Appends are one round trip: a call of the append_events function (see the embedded
// migrations) checks the stream head, takes the global positions and inserts the events, in
// one implicit transaction. Appends that wait while the Store's writers are busy share the
// next call, transaction and WAL flush, each still checked and answered on its own. The hash
// chain is computed here, from the head this Store last saw for the stream; the function
// refuses a head that moved, so a stale one costs a retry, never a broken chain.
//
// The global log never skips an event when transactions commit out of order. Every event
// records its transaction id, and positions are taken in transaction id order. ReadAll
// returns an event when it directly follows the previous one (no position between them is
// left to commit) or when its transaction is older than every running transaction of the
// cluster (pg_snapshot_xmin: whatever took a position before it has ended), and stops at the
// first event that is neither, waiting a moment for the transaction that holds it back. When
// that lasts (10 ms), it asks which running transactions hold positions of this log (they
// hold its position sequence's lock) and waits only for those: a long transaction elsewhere in
// the cluster (another schema's rebuild, another application's batch) does not hold the feed
// back at a rolled-back or refused position; a writer of this log that took a position and
// has not ended does, as it must. The xid8 values stay valid across pg_upgrade;
// after a logical dump and restore into another cluster, run "UPDATE events SET tx = '0'"
// (Open refuses to start until then).
//
// Subscriptions poll ReadAll and are woken by LISTEN/NOTIFY: appends through this Store wake
// its own subscriptions at once and send one coalesced pg_notify after they committed, which
// wakes the subscriptions of other processes.
package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventcrm/crm/eventstore"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Default option values.
const (
	DefaultSchema       = "eventstore"
	DefaultPollInterval = 500 * time.Millisecond
	DefaultHeadCache    = 100_000
	DefaultWriters      = 2
	DefaultReadWait     = 2 * time.Second
	// DefaultConnectTimeout bounds each connection attempt when the URL sets no
	// connect_timeout (nor PGCONNECT_TIMEOUT): pgx's own default waits forever for a server
	// that accepts the connection and never answers.
	DefaultConnectTimeout = 5 * time.Second
	// DefaultOpenTimeout bounds Open's first connection, migration and checks.
	DefaultOpenTimeout = 30 * time.Second
)

type options struct {
	schema       string
	pollInterval time.Duration
	headCache    int
	maxConns     int32
	writers      int
	readWait     time.Duration
	connect      time.Duration
	openTimeout  time.Duration
	now          func() time.Time
	readOnly     bool
}

func (o options) validate() error {
	var errs []error
	if o.schema == "" {
		errs = append(errs, errors.New("empty schema name"))
	}
	if o.pollInterval <= 0 {
		errs = append(errs, fmt.Errorf("poll interval %v: want more than 0", o.pollInterval))
	}
	if o.headCache < 0 {
		errs = append(errs, fmt.Errorf("head cache %d: want at least 0", o.headCache))
	}
	if o.maxConns < 0 {
		errs = append(errs, fmt.Errorf("max connections %d: want at least 0", o.maxConns))
	}
	if o.readWait < 0 {
		errs = append(errs, fmt.Errorf("read wait %v: want at least 0", o.readWait))
	}
	if o.connect <= 0 {
		errs = append(errs, fmt.Errorf("connect timeout %v: want more than 0", o.connect))
	}
	if o.openTimeout <= 0 {
		errs = append(errs, fmt.Errorf("open timeout %v: want more than 0", o.openTimeout))
	}
	if o.writers < 1 {
		errs = append(errs, fmt.Errorf("writers %d: want at least 1", o.writers))
	}
	if o.now == nil {
		errs = append(errs, errors.New("no clock"))
	}
	return errors.Join(errs...)
}

// Option configures Open.
type Option func(*options)

// WithSchema sets the schema that holds the store's tables (default DefaultSchema). Open
// creates it when it does not exist.
func WithSchema(name string) Option { return func(o *options) { o.schema = name } }

// WithPollInterval sets how often subscriptions read the log when no notification woke them
// (default DefaultPollInterval): the fallback when a notification is lost.
func WithPollInterval(d time.Duration) Option { return func(o *options) { o.pollInterval = d } }

// WithHeadCache sets how many stream heads (version and hash) the Store remembers so that an
// append needs no read first (default DefaultHeadCache). 0 turns the cache off.
func WithHeadCache(n int) Option { return func(o *options) { o.headCache = n } }

// WithMaxConns sets the size of the connection pool. By default it is the URL's
// pool_max_conns, or pgxpool's default. Concurrent appends share WAL flushes only as far as
// they have connections to run on.
func WithMaxConns(n int32) Option { return func(o *options) { o.maxConns = n } }

// WithWriters sets how many transactions of appends a Store runs at once (default
// DefaultWriters). Appends waiting while all writers are busy share the next transaction.
func WithWriters(n int) Option { return func(o *options) { o.writers = n } }

// WithReadWait sets how long ReadAll waits for a running transaction that may precede
// events it found (default DefaultReadWait). It is short unless a long transaction that wrote
// runs anywhere in the cluster; past the wait, ReadAll returns the events before.
func WithReadWait(d time.Duration) Option { return func(o *options) { o.readWait = d } }

// WithConnectTimeout sets how long a connection attempt may take when the URL sets no
// connect_timeout (default DefaultConnectTimeout).
func WithConnectTimeout(d time.Duration) Option { return func(o *options) { o.connect = d } }

// WithOpenTimeout sets how long Open may take to connect, migrate and check the store
// (default DefaultOpenTimeout).
func WithOpenTimeout(d time.Duration) Option { return func(o *options) { o.openTimeout = d } }

// WithReadOnly opens the store for reading only, as verifying a backup, a standby or a schema
// the role may only read needs: Open migrates nothing and only checks that the schema is this
// program's, and every session is read-only (default_transaction_read_only), so an Append or
// SaveCheckpoint is refused by the server.
func WithReadOnly() Option { return func(o *options) { o.readOnly = true } }

// WithClock sets the clock that stamps RecordedAt (and OccurredAt when an event has none).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// Store is an eventstore.Store and eventstore.Checkpoints in a PostgreSQL schema.
type Store struct {
	opts      options
	pool      *pgxpool.Pool
	listenCfg *pgx.ConnConfig
	channel   string
	heads     *headCache
	wake      *eventstore.Notifier
	subs      eventstore.SubscriptionSet

	bg        context.Context // ends at Close; background goroutines run under it
	stopBg    context.CancelFunc
	bgWG      sync.WaitGroup
	notifyCh  chan struct{}    // asks the notify pump for one pg_notify
	calls     chan *appendCall // appends waiting for a writer
	listenMu  sync.Mutex
	listening bool

	closed    atomic.Bool
	closeOnce sync.Once
}

var (
	_ eventstore.Store       = (*Store)(nil)
	_ eventstore.Checkpoints = (*Store)(nil)
)

// Open connects to the database at url (a PostgreSQL URL or keyword/value string, as pgxpool
// parses it), brings the store's schema up to date and returns the Store.
func Open(ctx context.Context, url string, opts ...Option) (*Store, error) {
	o := options{
		schema:       DefaultSchema,
		pollInterval: DefaultPollInterval,
		headCache:    DefaultHeadCache,
		writers:      DefaultWriters,
		readWait:     DefaultReadWait,
		connect:      DefaultConnectTimeout,
		openTimeout:  DefaultOpenTimeout,
		now:          time.Now,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{o.schema}.Sanitize()
	if o.readOnly {
		cfg.ConnConfig.RuntimeParams["default_transaction_read_only"] = "on"
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = o.connect
	}
	if o.maxConns > 0 {
		cfg.MaxConns = o.maxConns
	}
	// The listening connection keeps pgx's default: it waits for notifications, not for a
	// statement, so a cancel request would only delay its closing.
	listenCfg := cfg.ConnConfig.Copy()
	// A cancelled context cancels the statement on the server too. pgx's default only sets a
	// deadline on the socket, which leaves the server to finish an append nobody waits for,
	// or to wait on for a lock on behalf of an abandoned batch.
	cfg.ConnConfig.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: time.Second}
	}
	s := &Store{
		opts:      o,
		listenCfg: listenCfg,
		channel:   channelName(o.schema),
		heads:     newHeadCache(o.headCache),
		wake:      eventstore.NewNotifier(),
		notifyCh:  make(chan struct{}, 1),
		calls:     make(chan *appendCall, maxBatchAppends),
	}
	s.bg, s.stopBg = context.WithCancel(context.Background())
	if err := s.open(ctx, cfg); err != nil {
		s.stopBg()
		if s.pool != nil {
			s.pool.Close()
		}
		return nil, fmt.Errorf("open postgres store in schema %s: %w", o.schema, err)
	}
	s.bgWG.Go(s.notifyPump)
	for range o.writers {
		s.bgWG.Go(s.writeLoop)
	}
	return s, nil
}

// open connects, migrates and checks the store, within the open timeout: a server that takes
// the connection and then never answers must not hold the program forever.
func (s *Store) open(ctx context.Context, cfg *pgxpool.Config) error {
	openCtx, cancel := context.WithTimeout(ctx, s.opts.openTimeout)
	defer cancel()
	err := s.prepare(openCtx, cfg)
	if err != nil && ctx.Err() == nil && openCtx.Err() != nil {
		return fmt.Errorf("no answer within %v: %w", s.opts.openTimeout, err)
	}
	return err
}

func (s *Store) prepare(ctx context.Context, cfg *pgxpool.Config) error {
	var err error
	s.pool, err = pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Release()
	if s.opts.readOnly {
		if err := checkSchema(ctx, conn.Conn(), s.opts.schema); err != nil {
			return err
		}
	} else if err := migrate(ctx, conn.Conn(), s.opts.schema); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	// A log whose transaction ids lie ahead of the cluster's would never be read (see the
	// package doc): refuse it loudly instead of stalling every subscription.
	var ahead bool
	err = conn.QueryRow(ctx, `SELECT tx >= pg_snapshot_xmax(pg_current_snapshot())
		FROM events ORDER BY position DESC LIMIT 1`).Scan(&ahead)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("check transaction ids: %w", err)
	}
	if ahead {
		return errors.New("events.tx lies ahead of this cluster's transaction ids " +
			"(restored from a dump?): run UPDATE events SET tx = '0' once")
	}
	return nil
}

// channelName is the LISTEN/NOTIFY channel of a schema. Channel names are identifiers of at
// most 63 bytes, so a long schema name is replaced by its hash.
func channelName(schema string) string {
	name := "eventstore." + schema
	if len(name) > 63 {
		sum := sha256.Sum256([]byte(schema))
		name = "eventstore." + hex.EncodeToString(sum[:16])
	}
	return name
}

// Pool returns the Store's connection pool, for read models in the same database. Its
// connections have the store's schema as search_path.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close ends the subscriptions with eventstore.ErrClosed, stops the background work and
// closes the pool.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.subs.CloseAll()
		s.stopBg()
		s.bgWG.Wait()
		s.pool.Close()
	})
	return nil
}

// closedErr turns the error of an operation that raced with Close into ErrClosed.
func (s *Store) closedErr(err error) error {
	if err != nil && s.closed.Load() {
		return eventstore.ErrClosed
	}
	return err
}

// querier is what an append and its lookups need: a pool, a connection or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}
