package projections

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
)

// sqlite is the dialect of SQLite, the embedded default.
type sqlite struct{}

func (sqlite) String() string { return "sqlite" }

// Pragmas of a build's connection. synchronous=OFF: a set being built is served by nobody
// until it is switched to, and a crash loses at most the last batches, which the checkpoint
// written with them makes the resumed build apply again (the switch itself runs with the
// default NORMAL). A larger page cache keeps the B-trees of the new tables in memory; it is
// bounded, so memory stays flat as the log grows.
var (
	sqliteBuildPragmas   = []string{"PRAGMA synchronous = OFF", "PRAGMA cache_size = -32768", "PRAGMA temp_store = MEMORY"}
	sqliteRestorePragmas = []string{"PRAGMA synchronous = NORMAL", "PRAGMA cache_size = -2000", "PRAGMA temp_store = DEFAULT"}
)

// Features is asked on the live path (every statement of a catch-up): it allocates nothing.
func (sqlite) Features() Features {
	return Features{
		SerialWriters:         true,
		PreparesEachStatement: true,
		BuildPragmas:          sqliteBuildPragmas,
		RestorePragmas:        sqliteRestorePragmas,
		KeepsBuildTxOpen:      true,
		SnapshotFiles:         true,
	}
}

func (sqlite) Rebind(query string) string { return query }

// PositionKey is the table's rowid: rows keyed by position are appended to its B-tree in
// log order and need no second index.
func (sqlite) PositionKey() string { return "INTEGER PRIMARY KEY" }

// ClusteredByKey stores the table WITHOUT ROWID, as one B-tree in key order, so a read in
// key order is a sequential scan rather than a lookup of every row through an index of the
// key; copying it (time travel) appends in key order.
func (sqlite) ClusteredByKey() string { return " WITHOUT ROWID" }

// UpdatedInPlace: SQLite rewrites a row in its B-tree page, nothing to add.
func (sqlite) UpdatedInPlace() string { return "" }

// TextType: SQLite compares text bytewise (BINARY) unless told otherwise.
func (sqlite) TextType() string { return "TEXT" }

func (sqlite) AutoID() string { return "INTEGER PRIMARY KEY AUTOINCREMENT" }

func (sqlite) OrderText(column string) string { return column }

// ForUpdate: SQLite's write transactions lock the whole database at BEGIN.
func (sqlite) ForUpdate() string { return "" }

// ReadSnapshot: a deferred read transaction on a WAL database is a snapshot.
func (sqlite) ReadSnapshot() *sql.TxOptions { return &sql.TxOptions{ReadOnly: true} }

// InKeys passes the keys as a JSON list read by json_each.
func (sqlite) InKeys(column string, keys []string) (string, any, error) {
	raw, err := json.Marshal(storableStrings(keys)) // as the keys were written; inside JSON, Query could not see them
	if err != nil {
		return "", nil, fmt.Errorf("keys of %s: %w", column, err)
	}
	return column + " IN (SELECT value FROM json_each(?))", string(raw), nil
}

// TablesWithPrefixQuery lists ordinary tables only: the trigram tables of text search (and
// the tables FTS5 keeps for them) belong to the table they index (see TextSearch).
func (sqlite) TablesWithPrefixQuery() string {
	return `SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'table' AND substr(name, 1, ?) = ?`
}

// DescribeTable reads pragma_table_info; its types are only what the schema wrote, so no
// column is marked as text (SQLite orders text bytewise anyway).
func (sqlite) DescribeTable(ctx context.Context, q Queryer, name string) (TableColumns, error) {
	s := TableColumns{Text: map[string]bool{}}
	rows, err := q.QueryContext(ctx, `SELECT name, type, pk FROM pragma_table_info(?)`, name)
	if err != nil {
		return s, fmt.Errorf("columns of %s: %w", name, err)
	}
	defer rows.Close()
	type keyCol struct {
		name string
		pos  int
	}
	var keys []keyCol
	for rows.Next() {
		var (
			col, typ string
			pk       int
		)
		if err := rows.Scan(&col, &typ, &pk); err != nil {
			return s, fmt.Errorf("columns of %s: %w", name, err)
		}
		s.Columns = append(s.Columns, col)
		if pk > 0 {
			keys = append(keys, keyCol{col, pk})
		}
	}
	if err := rows.Err(); err != nil {
		return s, fmt.Errorf("columns of %s: %w", name, err)
	}
	slices.SortFunc(keys, func(a, b keyCol) int { return cmp.Compare(a.pos, b.pos) })
	for _, k := range keys {
		s.Key = append(s.Key, k.name)
	}
	return s, nil
}

// LockSet: SQLite never runs two write transactions at once, and refuses to write from a
// snapshot another writer made stale.
func (sqlite) LockSet(context.Context, *Tx, Tables) error { return nil }

func (sqlite) ServerStart(context.Context, *sql.DB) (string, error) { return "", nil }
