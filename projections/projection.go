package projections

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/eventcrm/crm/eventstore"
)

// Projection is a read model built from events. Implementations are stateless: all state is
// in their tables, so any number of table sets (live, rebuilding) can be served by one value.
type Projection interface {
	// Name is the persisted identifier (snake_case); never derived from a Go type name.
	Name() string
	// Version changes whenever Schema or Apply changes meaning: a new version is rebuilt.
	Version() int
	// Schema returns the statements creating the projection's tables, named with t.
	Schema(d Dialect, t Tables) []string
	// Apply applies one event inside tx. Events arrive in global position order, each at most
	// once per table set. An error aborts the transaction (the checkpoint does not move).
	Apply(ctx context.Context, tx *Tx, t Tables, e eventstore.Event) error
}

// Tables names the tables of one set of a projection: "<name>_v<version>_<base>" for the
// live set, with a suffix for a set being rebuilt. Every table name of a projection must come
// from here, so a set can be built beside another and swapped.
type Tables struct {
	prefix string
}

// TablesFor returns the table names of a projection's set; set "" is the default set.
func TablesFor(p Projection, set string) Tables {
	prefix := p.Name() + "_v" + strconv.Itoa(p.Version()) + "_"
	if set != "" {
		prefix += set + "_"
	}
	return Tables{prefix: prefix}
}

// TablesWithPrefix returns the set whose tables are named prefix + base name: a set found in
// a database (the registry, a diff's --against) rather than derived from a projection.
func TablesWithPrefix(prefix string) Tables { return Tables{prefix: prefix} }

// Name is the full name of a base table.
func (t Tables) Name(base string) string { return t.prefix + base }

// Prefix is the common prefix of the set's tables.
func (t Tables) Prefix() string { return t.prefix }

// DB is a read-model database.
type DB struct {
	SQL     *sql.DB
	Dialect Dialect
	// Path is the file of a SQLite database opened by OpenSQLite ("" otherwise).
	Path string
	// frozen: nothing writes to the tables read through this DB any more (see Frozen).
	frozen bool

	registryReady atomic.Bool // the table-set registry exists (see EnsureRegistry)
	// writeMu admits the SQLite writers of this process one at a time, in turn (Go's mutex
	// hands over to a writer that waited long): a rebuild's batches and the live runner's
	// transactions then alternate, where SQLite's busy handler would let the rebuild, which
	// begins its next transaction at once, keep the lock.
	writeMu sync.Mutex
}

// Frozen tells whether nothing writes to the tables read through db any more: a time-travel
// set once built (TravelSet.DB). The statements of one answer may then run side by side,
// each in a read transaction of its own, and still see one state.
func (db *DB) Frozen() bool { return db.frozen }

// AsFrozen returns db as its readers see it once nothing writes to the tables they read any
// more: the same pool, Frozen. Time travel hands out its built sets so.
func (db *DB) AsFrozen() *DB {
	return &DB{SQL: db.SQL, Dialect: db.Dialect, Path: db.Path, frozen: true}
}

// LockWrites takes writeMu where the dialect has one writer at a time; the returned
// function releases it.
func (db *DB) LockWrites() func() {
	if !db.Dialect.Features().SerialWriters {
		return func() {}
	}
	db.writeMu.Lock()
	return db.writeMu.Unlock
}

// Tx is a read-model transaction with placeholders rebound for its dialect.
type Tx struct {
	tx      *sql.Tx
	dialect Dialect
	stmts   map[string]*sql.Stmt   // prepared by Prepared, closed with the transaction
	inserts map[insertShape]string // texts of Insert's statements (see insertText)
	shared  *stmtCache             // statements of the rebuild the transaction belongs to
	plain   bool                   // statements run unprepared on PostgreSQL, whatever shared says
	conn    *sql.Conn              // the transaction's connection, when known: COPY on PostgreSQL
}

// Begin begins a read-model transaction on a pooled connection.
func (db *DB) Begin(ctx context.Context) (*Tx, error) {
	sqlTx, err := db.SQL.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	return &Tx{tx: sqlTx, dialect: db.Dialect}, nil
}

// ReadOnly runs read in one read-only transaction, so that all statements of an answer see
// the same state (a snapshot: repeatable read on PostgreSQL, a WAL read transaction on
// SQLite). Every read model's queries read through it.
func (db *DB) ReadOnly(ctx context.Context, read func(tx *sql.Tx) error) error {
	tx, err := db.SQL.BeginTx(ctx, db.Dialect.ReadSnapshot())
	if err != nil {
		return fmt.Errorf("begin read: %w", closedAs(err))
	}
	defer tx.Rollback() //nolint:errcheck // read only: nothing to keep
	return read(tx)
}

// Commit commits the transaction. Only the code that began it does (the runtime, a
// rebuild's switch); a projection's Apply never does.
func (t *Tx) Commit() error { return t.tx.Commit() }

// Rollback rolls the transaction back; after Commit it is a no-op.
func (t *Tx) Rollback() error { return t.tx.Rollback() }

// Dialect is the SQL flavour of the transaction.
func (t *Tx) Dialect() Dialect { return t.dialect }

// Exec runs a statement written with ? placeholders; its text arguments are made storable
// (see storableText), as are those of every statement of a Tx.
func (t *Tx) Exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return t.tx.ExecContext(ctx, t.dialect.Rebind(query), storableArgs(args)...)
}

// QueryRow runs a query written with ? placeholders.
func (t *Tx) QueryRow(ctx context.Context, query string, args ...any) *sql.Row {
	return t.tx.QueryRowContext(ctx, t.dialect.Rebind(query), storableArgs(args)...)
}

// Query runs a query written with ? placeholders.
func (t *Tx) Query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return t.tx.QueryContext(ctx, t.dialect.Rebind(query), storableArgs(args)...)
}

// CheckpointsTable holds, per table set, the position of the last event applied to it.
const CheckpointsTable = "projection_checkpoints"

// EnsureSchema creates the checkpoint table, the table-set registry and the tables of a set
// if they do not exist.
func (db *DB) EnsureSchema(ctx context.Context, p Projection, t Tables) error {
	if err := db.EnsureRegistry(ctx); err != nil {
		return err
	}
	for _, s := range p.Schema(db.Dialect, t) {
		if _, err := db.SQL.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("schema of %s: %w", t.Prefix(), err)
		}
	}
	return nil
}

// Checkpoint returns the position of the last event applied to a set, 0 when none.
func (db *DB) Checkpoint(ctx context.Context, t Tables) (int64, error) {
	var pos int64
	err := db.SQL.QueryRowContext(ctx, db.Dialect.Rebind(`SELECT position FROM `+CheckpointsTable+` WHERE set_name = ?`), t.Prefix()).Scan(&pos)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("checkpoint of %s: %w", t.Prefix(), err)
	}
	return pos, nil
}

// Apply applies events (in position order) to a set in one transaction together with the
// checkpoint. Events at or below the checkpoint are skipped: redelivery is a no-op. It
// returns the checkpoint after the transaction.
func (db *DB) Apply(ctx context.Context, p Projection, t Tables, events []eventstore.Event) (int64, error) {
	return db.ApplyGuarded(ctx, p, t, events, nil)
}

// ApplyGuarded is Apply with a guard run inside the transaction once the set is locked,
// before anything is applied: the live runner's check that t is still the served set.
func (db *DB) ApplyGuarded(ctx context.Context, p Projection, t Tables, events []eventstore.Event, guard func(ctx context.Context, tx *Tx) error) (int64, error) {
	return db.ApplyPrepared(ctx, p, t, events, guard, nil)
}

// ErrBatchRefused: a prepared batch failed to apply (an event its fold refuses, a row it
// took for new that is stored); its transaction was rolled back and nothing moved. Apply the
// same events again one by one, where Apply decides.
var ErrBatchRefused = errors.New("the batch path refused the batch")

// ApplyPrepared is ApplyGuarded through a batch path: once the guard passed and the
// checkpoint is read, prepared is given the events after the checkpoint and returns their
// prepared batch, which is applied in their place (the rows the batch reads loaded in one
// statement per table, each changed row written once); nil applies them one by one with
// p.Apply. A prepared batch that fails returns an error wrapping ErrBatchRefused, with the
// transaction rolled back. A nil prepared is ApplyGuarded.
func (db *DB) ApplyPrepared(ctx context.Context, p Projection, t Tables, events []eventstore.Event, guard func(ctx context.Context, tx *Tx) error, prepared func(events []eventstore.Event) PreparedBatch) (int64, error) {
	defer db.LockWrites()()
	sqlTx, err := db.SQL.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("begin %s: %w", t.Prefix(), err)
	}
	defer sqlTx.Rollback() //nolint:errcheck // after Commit this is a no-op
	tx := &Tx{tx: sqlTx, dialect: db.Dialect}
	if err := db.Dialect.LockSet(ctx, tx, t); err != nil {
		return 0, err
	}
	if guard != nil {
		if err := guard(ctx, tx); err != nil {
			return 0, err
		}
	}
	var start int64
	err = tx.QueryRow(ctx, `SELECT position FROM `+CheckpointsTable+` WHERE set_name = ?`, t.Prefix()).Scan(&start)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("checkpoint of %s: %w", t.Prefix(), err)
	}
	events = after(events, start)
	if len(events) == 0 {
		return start, nil
	}
	var prep PreparedBatch
	if prepared != nil {
		prep = prepared(events)
	}
	if prep != nil {
		if err := prep.Apply(ctx, tx, t); err != nil {
			if ctx.Err() != nil {
				return start, ctx.Err()
			}
			return start, fmt.Errorf("%s, %d events after %d: %w: %w", t.Prefix(), len(events), start, ErrBatchRefused, err)
		}
	} else {
		for _, e := range events {
			if err := p.Apply(ctx, tx, t, e); err != nil {
				return start, &ApplyError{Projection: p.Name(), Event: e, Err: err}
			}
		}
	}
	checkpoint := events[len(events)-1].Position
	if err := SaveCheckpoint(ctx, tx, t, checkpoint); err != nil {
		return start, err
	}
	if err := sqlTx.Commit(); err != nil {
		return start, fmt.Errorf("commit %s: %w", t.Prefix(), err)
	}
	return checkpoint, nil
}

// ApplyError is an event a projection could not apply.
type ApplyError struct {
	Projection string
	Event      eventstore.Event
	Err        error
}

func (e *ApplyError) Error() string {
	return fmt.Sprintf("projection %s: event %s (%s, position %d): %v", e.Projection, e.Event.ID, e.Event.Type, e.Event.Position, e.Err)
}

func (e *ApplyError) Unwrap() error { return e.Err }

// SafeApply runs a projection's Apply, turning a panic into an error (a retry requested
// over HTTP must not take the server down) and a refusal into an *ApplyError.
func SafeApply(ctx context.Context, p Projection, tx *Tx, t Tables, e eventstore.Event) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("panic: %v", v)
		}
	}()
	if err := p.Apply(ctx, tx, t, e); err != nil {
		return &ApplyError{Projection: p.Name(), Event: e, Err: err}
	}
	return nil
}

// closedAs is err, or ErrClosed wrapping it when it says that the database was closed (the
// process is stopping): database/sql does not export that error, only its text.
func closedAs(err error) error {
	if err != nil && strings.Contains(err.Error(), "sql: database is closed") {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return err
}
