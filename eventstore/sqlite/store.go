// Package sqlite is the embedded event store: one SQLite file in WAL mode with synchronous=FULL,
// written through the pure Go driver modernc.org/sqlite, so the product runs with zero setup.
//
// A single writer goroutine owns the only write connection and commits appends in groups:
// every Append is checked and answered on its own, but all appends waiting while the previous
// commit flushed share the next transaction and its one fsync. Reads use a separate pool of
// connections, which WAL lets run next to the writer.
//
//	s, err := sqlite.Open(ctx, "crm.db")
//	...
//	defer s.Close()
//	res, err := s.Append(ctx, "contact-42", eventstore.NoStream, events)
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/eventcrm/crm/eventstore"

	"modernc.org/sqlite" // registers the "sqlite" driver
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/eventcrm/crm/internal/sqlitefile"
)

// Default option values.
const (
	DefaultMaxBatch     = 512
	DefaultReadConns    = 4
	DefaultPollInterval = time.Second
	DefaultBusyTimeout  = 10 * time.Second
)

type options struct {
	maxBatch     int
	readConns    int
	pollInterval time.Duration
	busyTimeout  time.Duration
	now          func() time.Time
}

func (o options) validate() error {
	var errs []error
	if o.maxBatch < 1 {
		errs = append(errs, fmt.Errorf("max batch %d: want at least 1", o.maxBatch))
	}
	if o.readConns < 1 {
		errs = append(errs, fmt.Errorf("read connections %d: want at least 1", o.readConns))
	}
	if o.pollInterval <= 0 {
		errs = append(errs, fmt.Errorf("poll interval %v: want more than 0", o.pollInterval))
	}
	if o.busyTimeout < 0 {
		errs = append(errs, fmt.Errorf("busy timeout %v: want at least 0", o.busyTimeout))
	}
	if o.now == nil {
		errs = append(errs, errors.New("no clock"))
	}
	return errors.Join(errs...)
}

// Option configures Open.
type Option func(*options)

// WithMaxBatch caps how many appends share one transaction (default DefaultMaxBatch).
// 1 turns group commit off: one transaction, and one fsync, per append.
func WithMaxBatch(n int) Option { return func(o *options) { o.maxBatch = n } }

// WithReadConns sets the size of the read connection pool (default DefaultReadConns).
func WithReadConns(n int) Option { return func(o *options) { o.readConns = n } }

// WithPollInterval sets how often subscriptions look for events that another process wrote
// to the same file (default DefaultPollInterval). Appends through this Store wake them at once.
func WithPollInterval(d time.Duration) Option { return func(o *options) { o.pollInterval = d } }

// WithBusyTimeout sets how long a connection waits for a lock held by another process
// (default DefaultBusyTimeout).
func WithBusyTimeout(d time.Duration) Option { return func(o *options) { o.busyTimeout = d } }

// WithClock sets the clock that stamps RecordedAt (and OccurredAt when an event has none).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// Store is an eventstore.Store and eventstore.Checkpoints in one SQLite file.
type Store struct {
	opts     options
	path     string
	read     *sql.DB
	readStmt readStatements
	writeDB  *sql.DB
	w        *writer
	ckptDB   *sql.DB
	ckpt     *walCheckpointer
	notifier *eventstore.Notifier
	subs     eventstore.SubscriptionSet

	closed    chan struct{}
	closeOnce sync.Once
	closeErr  error
}

var (
	_ eventstore.Store       = (*Store)(nil)
	_ eventstore.Checkpoints = (*Store)(nil)
)

// Open opens (creating it if needed) the event store in the SQLite file at path and brings its
// schema up to date. The path must name a file: an in-memory database cannot be shared by the
// writer and the readers.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	o := options{
		maxBatch:     DefaultMaxBatch,
		readConns:    DefaultReadConns,
		pollInterval: DefaultPollInterval,
		busyTimeout:  DefaultBusyTimeout,
		now:          time.Now,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("open %q: want the path of a file", path)
	}
	if err := createPrivate(path); err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	s := &Store{opts: o, path: path, notifier: eventstore.NewNotifier(), closed: make(chan struct{})}
	if err := s.open(ctx, path); err != nil {
		s.closeDBs()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return s, nil
}

func (s *Store) open(ctx context.Context, path string) error {
	var err error
	// The write pool holds exactly one connection, owned by the writer goroutine.
	s.writeDB, err = sql.Open("sqlite", dsn(path, s.opts.busyTimeout, connWriter))
	if err != nil {
		return err
	}
	s.writeDB.SetMaxOpenConns(1)
	conn, err := s.writeDB.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	var mode string
	if err := conn.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		conn.Close()
		return fmt.Errorf("journal mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") { // readers next to the writer need WAL
		conn.Close()
		return fmt.Errorf("journal mode is %s, not wal", mode)
	}
	if err := migrate(ctx, conn); err != nil {
		conn.Close()
		return err
	}
	s.ckptDB, err = sql.Open("sqlite", dsn(path, s.opts.busyTimeout, connCheckpointer))
	if err != nil {
		conn.Close()
		return err
	}
	s.ckptDB.SetMaxOpenConns(1)
	s.ckpt = newWALCheckpointer(s.ckptDB)
	s.w, err = newWriter(ctx, conn, s.opts, func() {
		s.notifier.Notify()
		s.ckpt.committed()
	})
	if err != nil {
		conn.Close()
		return err
	}

	s.read, err = sql.Open("sqlite", dsn(path, s.opts.busyTimeout, connReader))
	if err != nil {
		return err
	}
	s.read.SetMaxOpenConns(s.opts.readConns)
	s.read.SetMaxIdleConns(s.opts.readConns)
	if err := s.readStmt.prepare(ctx, s.read); err != nil {
		return err
	}
	go s.w.run()
	return nil
}

// createPrivate creates the file at path, empty, with mode 0600 when it does not exist. SQLite
// would create it 0644 (less the umask), and gives its -wal and -shm files the mode of the
// database file: the log would be readable by every user of the machine.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	return f.Close()
}

// ErrReadOnly is returned by Append and SaveCheckpoint of a Store opened with OpenReadOnly.
var ErrReadOnly = errors.New("event store opened read-only")

// OpenReadOnly opens the event store in the SQLite file at path for reading only, such as a
// backup an auditor may not write: it creates nothing, runs no migration and writes nothing,
// not even a WAL checkpoint, so the file and its directory may be read-only. The file must
// hold the schema of this program. Append and SaveCheckpoint return ErrReadOnly.
//
// SQLite reads a WAL file next to the database through the -shm file, which it creates when
// the directory lets it; when it can do neither (a bare copy in a read-only directory), the
// file is opened as immutable, which only a file nobody writes can be.
func OpenReadOnly(ctx context.Context, path string, opts ...Option) (*Store, error) {
	o := options{readConns: DefaultReadConns, maxBatch: DefaultMaxBatch, pollInterval: DefaultPollInterval,
		busyTimeout: DefaultBusyTimeout, now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("open %q: want the path of a file", path)
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	s := &Store{opts: o, notifier: eventstore.NewNotifier(), closed: make(chan struct{})}
	err := s.openReadOnly(ctx, path, false)
	if isCantOpen(err) {
		s.closeDBs()
		s = &Store{opts: o, notifier: eventstore.NewNotifier(), closed: make(chan struct{})}
		err = s.openReadOnly(ctx, path, true)
	}
	if err != nil {
		s.closeDBs()
		return nil, fmt.Errorf("open %s read-only: %w", path, err)
	}
	return s, nil
}

func (s *Store) openReadOnly(ctx context.Context, path string, immutable bool) error {
	var err error
	s.read, err = sql.Open("sqlite", readOnlyDSN(path, s.opts.busyTimeout, immutable))
	if err != nil {
		return err
	}
	s.read.SetMaxOpenConns(s.opts.readConns)
	s.read.SetMaxIdleConns(s.opts.readConns)
	if err := checkSchema(ctx, s.read); err != nil {
		return err
	}
	return s.readStmt.prepare(ctx, s.read)
}

// readOnlyDSN is the data source name of a read-only connection to path: a URI, so that
// SQLite takes its mode and immutable parameters.
func readOnlyDSN(path string, busyTimeout time.Duration, immutable bool) string {
	q := url.Values{}
	q.Add("mode", "ro")
	if immutable {
		q.Add("immutable", "1")
	}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "query_only(1)")
	q.Add("_pragma", "cache_size(-16384)")
	return sqlitefile.DSN(path, q)
}

// isCantOpen reports whether err is SQLite's SQLITE_CANTOPEN.
func isCantOpen(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_CANTOPEN
}

// The roles of the store's connections.
type connRole int

const (
	connWriter connRole = iota
	connReader
	connCheckpointer
)

// dsn is the modernc.org/sqlite data source name of path with the settings of a connection.
func dsn(path string, busyTimeout time.Duration, role connRole) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	// FULL: an acknowledged append survives a power cut, not only a crash of the process.
	q.Add("_pragma", "synchronous(FULL)")
	switch role {
	case connWriter:
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", fmt.Sprintf("wal_autocheckpoint(%d)", walBackstopPages))
		// The indexes on event id and stream take random inserts: keep them in memory.
		q.Add("_pragma", "cache_size(-65536)")
	case connReader:
		// Readers must never take the write lock away from the group committer.
		q.Add("_pragma", "query_only(1)")
		q.Add("_pragma", "cache_size(-16384)")
	}
	return sqlitefile.DSN(path, q)
}

// DB returns the pool of read connections, for read-model queries on the same file. Its
// connections are query-only: every write goes through the Store's single writer.
func (s *Store) DB() *sql.DB { return s.read }

// Stats counts the work of the writer since Open.
type Stats struct {
	Commits  int64 // transactions committed
	Requests int64 // appends and checkpoint saves answered by them, successful or not
	Events   int64 // events written
}

// Stats returns what the writer has done so far. Requests/Commits is the mean group size.
func (s *Store) Stats() Stats {
	if s.w == nil {
		return Stats{}
	}
	return s.w.stats()
}

// Close ends the subscriptions (with eventstore.ErrClosed), lets the writer finish the appends
// it has accepted, and closes the database. Appends after Close return eventstore.ErrClosed.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.closed)
		s.subs.CloseAll()
		if s.w != nil {
			s.w.shutdown()
		}
		s.closeErr = s.closeDBs()
	})
	return s.closeErr
}

func (s *Store) closeDBs() error {
	if s.ckpt != nil {
		s.ckpt.close()
	}
	var errs []error
	if s.w != nil {
		errs = append(errs, s.w.close())
	}
	errs = append(errs, s.readStmt.close())
	if s.read != nil {
		errs = append(errs, s.read.Close())
	}
	if s.writeDB != nil {
		errs = append(errs, s.writeDB.Close())
	}
	if s.ckptDB != nil {
		errs = append(errs, s.ckptDB.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	return nil
}

func (s *Store) isClosed() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}

// closedErr turns the error of a read that raced with Close into eventstore.ErrClosed.
func (s *Store) closedErr(err error) error {
	if s.isClosed() {
		return eventstore.ErrClosed
	}
	return err
}

// DiskSize returns the bytes of the store's file and of its write-ahead log.
func (s *Store) DiskSize(context.Context) (int64, error) {
	var size int64
	for _, name := range []string{s.path, s.path + "-wal"} {
		fi, err := os.Stat(name)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("size of the store: %w", err)
		}
		size += fi.Size()
	}
	return size, nil
}
