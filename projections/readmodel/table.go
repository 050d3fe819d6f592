package readmodel

import (
	"cmp"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/eventcrm/crm/projections"
)

// ErrNoRow is the error of Need when no row is stored, or recorded by the events before, under
// the key asked for.
var ErrNoRow = errors.New("no such row: the read model never recorded it")

// Table declares one table of a read model whose rows are Go values of type R: its base name
// (the set's prefix is put in front), its columns in order, how many of the first columns
// form the primary key, and its indexes. The declaration is the only place the table's
// columns are named: the schema of both dialects, the live path's statements and the batch
// path's loads and multi-row writes are all derived from it.
type Table[R any] struct {
	name      string
	columns   []Column[R]
	key       int
	clustered bool
	indexes   []Index
	searched  string // the column of text search, "" for none
	then      []follow[R]
	kinds     []kind // of the key columns
	shape     keyShape
	// counters: every column after the key is a number that is not NULL (see Add).
	counters bool
	// slot is the table's place among its read model's tables, where a fold's Rows holds its
	// part: the fold finds it without a search.
	slot int
}

// follow is a row of another table the fold reads after a row of this one.
type follow[R any] struct {
	next table
	key  func(*R) []any
}

// Column is one column of a table with rows of type R: its name, its SQL type and where its
// value is in a row.
type Column[R any] struct {
	name string
	kind kind
	null bool
	ptr  func(*R) any // the field holding the column's value: *string, *int64, *sql.Null*
	// value is the column's value as written: string, int64 or nil.
	value func(*R) any
	// text and num are the field of a column that is not NULL, typed: the fold reads the
	// key of every row it touches, without boxing it.
	text func(*R) *string
	num  func(*R) *int64
}

type kind int

const (
	kindText kind = iota
	kindBigInt
	kindInteger
	kindPosition // a log position as the key: the rowid on SQLite
)

// Text is a TEXT column (bytewise collation on both dialects, so orderings agree).
func Text[R any](name string, field func(*R) *string) Column[R] {
	return Column[R]{name: name, kind: kindText, ptr: func(r *R) any { return field(r) },
		value: func(r *R) any { return *field(r) }, text: field}
}

// NullText is a TEXT column that may be NULL.
func NullText[R any](name string, field func(*R) *sql.NullString) Column[R] {
	return Column[R]{name: name, kind: kindText, null: true, ptr: func(r *R) any { return field(r) },
		value: func(r *R) any { f := field(r); return projections.NullString(f.String, f.Valid) }}
}

// BigInt is a BIGINT column (times in microseconds, amounts).
func BigInt[R any](name string, field func(*R) *int64) Column[R] {
	return number(name, kindBigInt, field)
}

// NullBigInt is a BIGINT column that may be NULL.
func NullBigInt[R any](name string, field func(*R) *sql.NullInt64) Column[R] {
	return Column[R]{name: name, kind: kindBigInt, null: true, ptr: func(r *R) any { return field(r) },
		value: func(r *R) any { f := field(r); return projections.NullInt64(f.Int64, f.Valid) }}
}

// Integer is an INTEGER column (sequence numbers, small counts: int4 on PostgreSQL).
func Integer[R any](name string, field func(*R) *int64) Column[R] {
	return number(name, kindInteger, field)
}

// Position is a log position used as the table's whole key: on SQLite the rowid, so rows
// keyed by position are appended in log order and need no second index.
func Position[R any](name string, field func(*R) *int64) Column[R] {
	return number(name, kindPosition, field)
}

func number[R any](name string, k kind, field func(*R) *int64) Column[R] {
	return Column[R]{name: name, kind: k, ptr: func(r *R) any { return field(r) },
		value: func(r *R) any { return *field(r) }, num: field}
}

// Index is a secondary index: name is appended to the table's name, columns is the column
// list and where, when set, makes it a partial index.
type Index struct {
	Name, Columns, Where string
}

// NewTable declares a table: name is its base name, the first key columns are its primary
// key. It panics on a declaration that cannot be right (no key, a key wider than the row, a
// position key among others): declarations are constants of the code.
func NewTable[R any](name string, key int, columns ...Column[R]) *Table[R] {
	if key < 1 || key > len(columns) {
		panic(fmt.Sprintf("readmodel: table %s: key of %d columns out of %d", name, key, len(columns)))
	}
	for i, c := range columns {
		if c.kind == kindPosition && (i != 0 || key != 1) {
			panic(fmt.Sprintf("readmodel: table %s: a position column is the whole key", name))
		}
		if c.null && i < key {
			panic(fmt.Sprintf("readmodel: table %s: key column %s may not be NULL", name, c.name))
		}
	}
	kinds := make([]kind, key)
	for i := range kinds {
		kinds[i] = columns[i].kind
	}
	counters := true
	for _, c := range columns[key:] {
		counters = counters && c.num != nil && c.kind != kindPosition
	}
	return &Table[R]{name: name, columns: columns, key: key, kinds: kinds, shape: newKeyShape(kinds), counters: counters}
}

// Clustered stores the table in key order (SQLite: WITHOUT ROWID), for tables read in the
// order of their key (texts, or a text and a number): such a read is then a sequential scan.
// PostgreSQL stores every table as a heap: nothing changes there.
func (t *Table[R]) Clustered() *Table[R] {
	if t.searched != "" {
		panic(fmt.Sprintf("readmodel: table %s: a searched table keeps its rowids", t.name))
	}
	t.clustered = true
	return t
}

// WithIndexes adds secondary indexes.
func (t *Table[R]) WithIndexes(indexes ...Index) *Table[R] {
	t.indexes = append(t.indexes, indexes...)
	return t
}

// Searched makes substring search of column fast with the database's own text index (see
// projections.Dialect.TextSearch): the read model writes normalised text there and asks with
// projections.Dialect.TextMatch. A clustered table has no rowid for SQLite's index to name.
func (t *Table[R]) Searched(column string) *Table[R] {
	if t.clustered || !slices.ContainsFunc(t.columns, func(c Column[R]) bool { return c.name == column && c.kind == kindText && !c.null }) {
		panic(fmt.Sprintf("readmodel: table %s: %s is no text column of a table with rowids", t.name, column))
	}
	t.searched = column
	return t
}

// Then declares that the fold, having read a row of t, goes on to read the row of next keyed
// by key(row) (a contact's latest visit; nil: none): the batch path then loads both in one round, where
// it would otherwise fold the batch once more to find the second. A hint for speed: the
// tables end the same without it. next is declared after t.
func (t *Table[R]) Then(next AnyTable, key func(*R) []any) *Table[R] {
	t.then = append(t.then, follow[R]{next: next, key: key})
	return t
}

// Get returns the row of key (the values of the key columns, in order) as the fold sees
// it: stored, or as changed by the events before this one. ok is false when there is none.
func (t *Table[R]) Get(rows *Rows, key ...any) (r R, ok bool) {
	return rowsOf(rows, t).get(rows, t.shape.of(key))
}

// Need returns the row of key as Get does, and an error wrapping ErrNoRow that names the
// table and the key when there is none: an event about something whose first event the read
// model never folded (a deal moved before it was opened), which a sound log does not hold.
func (t *Table[R]) Need(rows *Rows, key ...any) (R, error) {
	r, ok := t.Get(rows, key...)
	if !ok {
		return r, fmt.Errorf("table %s, key %v: %w", t.name, key, ErrNoRow)
	}
	return r, nil
}

// Group returns the rows whose first key column is value, in key order: the rows of a
// table keyed by (owner, seq) that belong to one owner.
func (t *Table[R]) Group(rows *Rows, value any) []R {
	return rowsOf(rows, t).group(rows, t.shape.groupOf(value))
}

// Upsert records row as the row of its key, whatever is stored under it. Nothing is read: the
// row is recorded when the table is next used, or written (see tableRows.pending).
func (t *Table[R]) Upsert(rows *Rows, row R) {
	tr := pendingOf(rows, t)
	tr.pending = append(tr.pending, pendingRow[R]{row: row})
}

// Insert records row under its key unless a row is stored there already (the stored row
// stays): rows that only an event's first application adds, keyed by its position. On the
// batch path nothing is read either (a key nobody read is taken for new), so the row waits
// with the upserts (see tableRows.pending); on the live path the key is looked up at once.
func (t *Table[R]) Insert(rows *Rows, row R) {
	if rows.live != nil {
		rowsOf(rows, t).insert(rows, row)
		return
	}
	tr := pendingOf(rows, t)
	tr.pending = append(tr.pending, pendingRow[R]{row: row, op: pendingInsert})
}

// Add records that the counters of row (every column after the key) are added to those of
// the row stored under its key, or row inserted when none is: a count changed without reading
// it. Nothing is read on either path: on the batch path the additions to a key merge and are
// written once; on the live path they are written as INSERT ... ON CONFLICT (key) DO UPDATE
// SET c = c + excluded.c. A row whose counters come back to zero stays: queries filter it.
//
// A Get of a key added to loads the stored row and returns it with the additions; a Group of
// a group added to in the same Rows panics: a table is counted with Add or read by group, not
// both. Add panics on a table with a column after the key that is not a number.
func (t *Table[R]) Add(rows *Rows, row R) {
	if !t.counters {
		panic("readmodel: table " + t.name + ": Add to a table with columns that are not counters")
	}
	tr := pendingOf(rows, t)
	tr.pending = append(tr.pending, pendingRow[R]{row: row, op: pendingAdd})
}

// addCounters adds the counters of from to those of to.
func (t *Table[R]) addCounters(to, from *R) {
	for _, c := range t.columns[t.key:] {
		*c.num(to) += *c.num(from)
	}
}

// Delete records that the row of key is gone.
func (t *Table[R]) Delete(rows *Rows, key ...any) {
	rowsOf(rows, t).delete(rows, t.shape.of(key))
}

// table is a Table seen without its row type: what the runtime needs to read and write it.
type table interface {
	base() string
	columnNames() []string
	keyWidth() int
	keyKinds() []kind
	// newRows is the table's part of a Rows.
	newRows() tableState
	// place records the table's place among its read model's tables.
	place(slot int)
	schema(d projections.Dialect, t projections.Tables) []string
}

func (t *Table[R]) base() string { return t.name }

func (t *Table[R]) newRows() tableState { return newTableRows(t) }

func (t *Table[R]) place(slot int) { t.slot = slot }

func (t *Table[R]) columnNames() []string {
	names := make([]string, len(t.columns))
	for i, c := range t.columns {
		names[i] = c.name
	}
	return names
}

func (t *Table[R]) keyWidth() int { return t.key }

func (t *Table[R]) keyKinds() []kind { return t.kinds }

// appendValues appends the column values of r, as written (string, int64 or nil), to values.
func (t *Table[R]) appendValues(values []any, r *R) []any {
	for _, c := range t.columns {
		values = append(values, c.value(r))
	}
	return values
}

// keyOf is the key of r (see rowKey).
func (t *Table[R]) keyOf(r *R) rowKey {
	var k rowKey
	if slots := t.shape.slots; slots != nil {
		for i, c := range t.columns[:t.key] {
			if c.text != nil {
				k.s[slots[i]] = *c.text(r)
			} else {
				k.n[slots[i]] = *c.num(r)
			}
		}
		return k
	}
	var buf [64]byte
	b := buf[:0]
	for _, c := range t.columns[1:t.key] {
		if c.text != nil {
			b = appendText(b, *c.text(r))
		} else {
			b = appendNumber(b, *c.num(r))
		}
	}
	k.s[1] = string(b)
	if c := t.columns[0]; c.text != nil {
		k.s[0] = *c.text(r)
	} else {
		k.n[0] = *c.num(r)
	}
	return k
}

// compareRows orders rows by key.
func (t *Table[R]) compareRows(a, b *R) int {
	for _, c := range t.columns[:t.key] {
		var n int
		if c.text != nil {
			n = strings.Compare(*c.text(a), *c.text(b))
		} else {
			n = cmp.Compare(*c.num(a), *c.num(b))
		}
		if n != 0 {
			return n
		}
	}
	return 0
}

// scanner reads rows of a SELECT of every column in order into rows of type R.
type scanner[R any] struct {
	t    *Table[R]
	dest []any
}

func (s *scanner[R]) scan(rs *sql.Rows, r *R) error {
	if s.dest == nil {
		s.dest = make([]any, len(s.t.columns))
	}
	for i, c := range s.t.columns {
		s.dest[i] = c.ptr(r)
	}
	return rs.Scan(s.dest...)
}

// schema is the CREATE TABLE statement of the table in set t, then its indexes.
func (t *Table[R]) schema(d projections.Dialect, set projections.Tables) []string {
	name := set.Name(t.name)
	var b strings.Builder
	b.WriteString("CREATE TABLE IF NOT EXISTS " + name + " (")
	for i, c := range t.columns {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString("\n\t" + c.name + " " + columnType(d, c.kind))
		switch {
		case c.kind == kindPosition:
		case t.key == 1 && i == 0:
			b.WriteString(" PRIMARY KEY")
		case !c.null:
			b.WriteString(" NOT NULL")
		}
	}
	if t.key > 1 {
		b.WriteString(",\n\tPRIMARY KEY (" + strings.Join(t.columnNames()[:t.key], ", ") + ")")
	}
	b.WriteString(")")
	if t.clustered {
		b.WriteString(d.ClusteredByKey())
	}
	if t.counters && t.key < len(t.columns) && t.kinds[0] != kindPosition {
		// Counters, added to batch after batch (not rows of one event each).
		b.WriteString(d.UpdatedInPlace())
	}
	stmts := []string{b.String()}
	for _, ix := range t.indexes {
		s := "CREATE INDEX IF NOT EXISTS " + name + "_" + ix.Name + " ON " + name + " (" + ix.Columns + ")"
		if ix.Where != "" {
			s += " WHERE " + ix.Where
		}
		stmts = append(stmts, s)
	}
	if t.searched != "" {
		stmts = append(stmts, d.TextSearch(name, t.searched)...)
	}
	return stmts
}

func columnType(d projections.Dialect, k kind) string {
	switch k {
	case kindBigInt:
		return "BIGINT"
	case kindInteger:
		return "INTEGER"
	case kindPosition:
		return d.PositionKey()
	}
	return d.TextType()
}
