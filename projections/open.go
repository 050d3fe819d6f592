package projections

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	// Database drivers of both dialects: "pgx" and "sqlite".
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/eventcrm/crm/internal/sqlitefile"
)

// DefaultPostgresSchema is the schema that holds read models in a PostgreSQL database.
const DefaultPostgresSchema = "readmodels"

// sqliteConns is the size of a SQLite read-model connection pool: its readers never wait for
// its one writer (WAL), and a build writes on one connection of its own.
const sqliteConns = 16

// readModelConns is the size of a PostgreSQL read-model connection pool, unless its URL sets
// pool_max_conns. 32: a first start builds every projection far behind at once, each build
// holding a transaction on a connection of its own while it prepares statements and renews
// its lease on others; with 16 the builds and the lease renewals waiting for them filled the
// pool and each waited for the other. Queries waiting for a connection are handed one in no
// particular order (database/sql), so a short question queued behind a hundred readers may
// wait for many longer ones: on PostgreSQL the wait is better spent in the database, which
// shares its cores among the statements.
const readModelConns = 32

// minReadModelConns is the smallest PostgreSQL read-model pool that works: a build writes on
// half the pool (at least one connection), and the questions, the lease renewals and the
// fencing checks need at least one more, or a first start stands still with every lease lost.
const minReadModelConns = 2

// Bounds of opening PostgreSQL read models, as the event store's: a connection attempt when
// the URL sets no connect_timeout (pgx's default waits forever for a server that accepts the
// connection and never answers), and the whole open.
const (
	postgresConnectTimeout = 5 * time.Second
	postgresOpenTimeout    = 30 * time.Second
)

// OpenSQLite opens (creating it) the read-model database in the SQLite file at path: WAL, so
// queries run next to the projections' writes.
//
// It runs with synchronous=NORMAL, unlike the event store's FULL: a power cut may lose the
// last transactions of the read models, but each of them carried its own checkpoint, so the
// lost tail is simply applied again from the log on the next start. Write transactions take
// the lock at BEGIN (IMMEDIATE), so projections sharing the file wait for each other instead
// of failing on a stale snapshot.
func OpenSQLite(ctx context.Context, path string) (*DB, error) {
	return openSQLite(ctx, path, "wal", "normal", sqliteConns)
}

// OpenSQLiteScratch opens (creating it) a SQLite file whose content need not survive a
// crash, with a pool of conns connections: a rollback journal in a file, no waiting for the
// disk. Time travel builds its snapshots and temporary sets so, one file each.
func OpenSQLiteScratch(ctx context.Context, path string, conns int) (*DB, error) {
	return openSQLite(ctx, path, "truncate", "off", conns)
}

// openSQLite opens the SQLite file at path with a journal mode and a synchronous setting,
// and a pool of conns connections.
func openSQLite(ctx context.Context, path, journal, synchronous string, conns int) (*DB, error) {
	if path == "" || path == ":memory:" {
		return nil, fmt.Errorf("open read models %q: want the path of a file", path)
	}
	if err := createPrivate(path); err != nil {
		return nil, fmt.Errorf("open read models %s: %w", path, err)
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode("+journal+")")
	q.Add("_pragma", "synchronous("+synchronous+")")
	// Reads through a memory map of the file: the whole-table reads of the journey map and
	// the churn points take about a fifth less time than through each connection's page
	// cache and read(2), and the pages are shared by the connections (the OS page cache).
	q.Add("_pragma", "mmap_size(2147418112)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", sqlitefile.DSN(path, q))
	if err != nil {
		return nil, fmt.Errorf("open read models %s: %w", path, err)
	}
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		db.Close()
		return nil, fmt.Errorf("open read models %s: %w", path, err)
	}
	if !strings.EqualFold(mode, journal) {
		db.Close()
		return nil, fmt.Errorf("open read models %s: journal mode is %s, not %s", path, mode, journal)
	}
	db.SetMaxOpenConns(conns)
	// Kept open between queries: a new connection costs its settings and a read of the schema.
	db.SetMaxIdleConns(conns)
	return &DB{SQL: db, Dialect: SQLite, Path: path}, nil
}

// createPrivate creates the file at path, empty, with mode 0600 when it does not exist. SQLite
// would create it 0644 (less the umask), and gives its journal, -wal and -shm files the mode
// of the database file: customer data would be readable by every user of the machine.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	return f.Close()
}

// OpenPostgres opens the read models in schema (created when missing; DefaultPostgresSchema
// when empty) of the PostgreSQL database at rawURL. Every connection has the schema as its
// search_path, so projections use unqualified table names and analysts find the tables in
// one place.
func OpenPostgres(ctx context.Context, rawURL, schema string) (*DB, error) {
	openCtx, cancel := context.WithTimeout(ctx, postgresOpenTimeout)
	defer cancel()
	db, err := openPostgres(openCtx, rawURL, schema)
	if err != nil && ctx.Err() == nil && openCtx.Err() != nil {
		return nil, fmt.Errorf("open read models: no answer within %v: %w", postgresOpenTimeout, err)
	}
	return db, err
}

func openPostgres(ctx context.Context, rawURL, schema string) (*DB, error) {
	if schema == "" {
		schema = DefaultPostgresSchema
	}
	rawURL, conns, err := poolSize(rawURL)
	if err != nil {
		return nil, fmt.Errorf("open read models: %w", err)
	}
	cfg, err := pgx.ParseConfig(rawURL)
	if err != nil {
		return nil, fmt.Errorf("open read models: %w", err)
	}
	timeout := cfg.ConnectTimeout
	if timeout == 0 {
		timeout = postgresConnectTimeout
		cfg.ConnectTimeout = timeout
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open read models: %w", err)
	}
	_, err = conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize())
	conn.Close(context.Background())
	if err != nil {
		return nil, fmt.Errorf("create read-model schema %s: %w", schema, err)
	}
	dsn, err := sessionDSN(rawURL, schema, timeout)
	if err != nil {
		return nil, fmt.Errorf("open read models: %w", err)
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("open read models: %w", err)
	}
	db.SetMaxOpenConns(conns)
	// Kept open between queries: a new connection costs its settings and a read of the schema.
	db.SetMaxIdleConns(conns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open read models: %w", err)
	}
	return &DB{SQL: db, Dialect: Postgres}, nil
}

// PostgresPoolSize is the size of the read-model pool OpenPostgres opens for rawURL (see
// poolSize), or why the URL's pool_max_conns cannot serve: for checking a configuration
// before anything is opened.
func PostgresPoolSize(rawURL string) (int, error) {
	_, conns, err := poolSize(rawURL)
	return conns, err
}

// poolSize takes the pool settings (pool_max_conns and the other pool_ parameters pgxpool
// reads) out of a postgres:// URL, which a single connection would send to the server as
// settings it does not know, and returns the read-model pool size: the URL's pool_max_conns,
// so that one setting bounds each pool a server opens, or readModelConns.
func poolSize(rawURL string) (string, int, error) {
	if !strings.HasPrefix(rawURL, "postgres://") && !strings.HasPrefix(rawURL, "postgresql://") {
		return rawURL, readModelConns, nil
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", 0, err
	}
	q := u.Query()
	conns := readModelConns
	if v := q.Get("pool_max_conns"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return "", 0, fmt.Errorf("pool_max_conns %q: want a whole number of at least %d", v, minReadModelConns)
		}
		if n < minReadModelConns {
			return "", 0, fmt.Errorf("pool_max_conns %q: the read models want at least %d connections (a build writes on half of them; the questions and lease renewals use the others)", v, minReadModelConns)
		}
		conns = n
	}
	kept := false
	for k := range q {
		if strings.HasPrefix(k, "pool_") {
			q.Del(k)
			kept = true
		}
	}
	if kept {
		u.RawQuery = q.Encode()
	}
	return u.String(), conns, nil
}

// sessionDSN adds the read-model session settings to a PostgreSQL URL or keyword/value string:
// search_path, synchronous_commit off, plan_cache_mode force_generic_plan and the connect
// timeout. pgx prepares each statement once per connection; PostgreSQL then plans it once,
// for any arguments, where by default it planned most runs anew for their arguments, which
// cost more of its CPU than running the lists (a question that needs a plan for its
// arguments runs Features.CustomPlans first). A read-model commit does
// not wait for its WAL flush: a crash can lose the last transactions, but each took its checkpoint with it (and
// PostgreSQL loses a suffix, never a transaction before a kept one), so the projection
// catches up from its checkpoint by reading the log. The same holds for SQLite's
// synchronous=NORMAL; the log itself is always written with a flush per commit.
func sessionDSN(dsn, schema string, connectTimeout time.Duration) (string, error) {
	seconds := strconv.Itoa(max(1, int(connectTimeout.Round(time.Second)/time.Second)))
	path := pgx.Identifier{schema}.Sanitize()
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", err
		}
		q := u.Query()
		q.Set("search_path", path)
		q.Set("synchronous_commit", "off")
		q.Set("plan_cache_mode", "force_generic_plan")
		q.Set("connect_timeout", seconds)
		u.RawQuery = q.Encode()
		return u.String(), nil
	}
	return dsn + " search_path='" + strings.ReplaceAll(path, `'`, `\'`) + "' synchronous_commit=off plan_cache_mode=force_generic_plan connect_timeout=" + seconds, nil
}
