package projections

import (
	"context"
	"database/sql"
)

// Dialect is the SQL flavour of a read-model database: every difference between SQLite and
// PostgreSQL that the runtime, rebuilds, time travel, diffs and the read-model kit depend on
// is a method here, implemented once per database (sqlite.go, postgres.go), so callers ask
// for a behaviour rather than test which database they run on. Implementations are
// stateless values: SQLite and Postgres.
type Dialect interface {
	// String is the dialect's name: "sqlite" or "postgres".
	String() string
	// Features are the honest differences that change what a caller does, not the SQL it
	// writes.
	Features() Features

	// Rebind turns ? placeholders into the dialect's. Queries of projections are written
	// with ?, never with a literal question mark in a string.
	Rebind(query string) string
	// PositionKey is the column type of a primary key holding a log position.
	PositionKey() string
	// ClusteredByKey ends a CREATE TABLE statement whose rows are read in key order.
	ClusteredByKey() string
	// UpdatedInPlace ends a CREATE TABLE statement of a table whose rows are updated over
	// and over (counters added to).
	UpdatedInPlace() string
	// TextType is the type of a text column, compared bytewise.
	TextType() string
	// AutoID is the definition of an integer primary key numbered by the database.
	AutoID() string
	// OrderText is an ORDER BY term that orders a text column bytewise.
	OrderText(column string) string
	// ForUpdate ends a SELECT whose rows the transaction is about to update ("" when the
	// database locks more coarsely anyway).
	ForUpdate() string
	// ReadSnapshot are the options of a read-only transaction whose statements all see one
	// state while writers go on.
	ReadSnapshot() *sql.TxOptions
	// InKeys returns a condition, with one placeholder, and its argument that select the
	// rows whose column is one of keys, in one statement whatever the number of keys.
	InKeys(column string, keys []string) (cond string, arg any, err error)
	// TablesWithPrefixQuery selects the names of the tables whose name starts with a prefix;
	// its two placeholders are the prefix's length and the prefix.
	TablesWithPrefixQuery() string
	// DescribeTable reads the columns and primary key of table; no columns when it does not
	// exist.
	DescribeTable(ctx context.Context, q Queryer, table string) (TableColumns, error)
	// LockSet takes the lock that serializes the writers of set t until tx ends; a no-op
	// where the database admits one writer at a time anyway.
	LockSet(ctx context.Context, tx *Tx, t Tables) error
	// TextSearch returns the statements that make a substring search of column, a text
	// column of table normalised by the read model, use the database's own text index:
	// SQLite keeps a trigram FTS5 table, named table + SearchTableSuffix, in step with the
	// table by triggers (it is dropped with the table); PostgreSQL puts a pg_trgm GIN index
	// on the column. The statement creating an index is deferred by rebuilds as any index is.
	TextSearch(table, column string) []string
	// TextMatch returns a condition, with one placeholder, and its argument that select the
	// rows of table, aliased alias, whose column (see TextSearch) holds text as a substring.
	// Text shorter than a trigram cannot use a trigram index: it is matched exactly by a
	// scan of the column.
	TextMatch(table, alias, column, text string) (cond string, arg any)
	// ServerStart identifies the database server's life ("" when it has none): unlogged
	// tables are emptied by a crash, after which it starts again.
	ServerStart(ctx context.Context, db *sql.DB) (string, error)
}

// Features are what callers do differently on a dialect.
type Features struct {
	// SerialWriters: one writer at a time per database. The writers of this process then
	// take turns on a mutex (DB.LockWrites) rather than on the database's busy handler.
	SerialWriters bool
	// PreparesEachStatement: the database parses a statement's text on every run, so a
	// statement run many times in one transaction is prepared (the PostgreSQL driver keeps
	// prepared statements per connection already).
	PreparesEachStatement bool
	// BindsArrays: a Go slice binds as an SQL array, so the keys of many rows are passed as
	// one array per column (otherwise as one JSON list).
	BindsArrays bool
	// Copy: new rows of a batch can be streamed with COPY on the transaction's connection.
	Copy bool
	// BuildPragmas tune the one connection a build writes on, and RestorePragmas return it
	// to the pool as it was (the first makes commits durable again); none: each group of
	// sets writes on a pooled connection of its own.
	BuildPragmas, RestorePragmas []string
	// KeepsBuildTxOpen: a build's transaction may stay open across batches (fewer commits
	// write each changed page once for many batches).
	KeepsBuildTxOpen bool
	// LaxCommit is run first in a transaction of a set nobody serves yet, so that it
	// commits without waiting for the disk ("" when the connection is lax already).
	LaxCommit string
	// Unlogged: tables can be created without a write-ahead log and logged later.
	Unlogged bool
	// IndexesSideBySide: the indexes of a built set are created at once, each on a
	// connection of its own, and its statistics gathered.
	IndexesSideBySide bool
	// SnapshotFiles: a set can be copied into a file of its own (time-travel snapshots).
	SnapshotFiles bool
	// BoundedLockWait is run first in a transaction that drops tables, so that it gives up
	// rather than wait without end for a lock (and queue every reader of the table behind
	// it) while another server's transaction reads the table ("" when writers take turns
	// anyway).
	BoundedLockWait string
	// CustomPlans is run first in a read transaction whose question must be planned for its
	// arguments each time it runs, where the connections plan a prepared statement once for
	// any arguments ("" when every statement is planned as it runs).
	CustomPlans string
}

// TableColumns are the columns of a table in their order, those holding text, and the
// primary key's in key order.
type TableColumns struct {
	Columns []string
	Text    map[string]bool
	Key     []string
}

// Queryer runs queries: a database, a connection or a (snapshot) transaction.
type Queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// The dialects.
var (
	SQLite   Dialect = sqlite{}
	Postgres Dialect = postgres{}
)
