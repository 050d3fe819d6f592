package readmodel

import (
	"database/sql"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"github.com/eventcrm/crm/projections"
)

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
	then      []follow
}

// follow is a row of another table the fold reads after a row of this one.
type follow struct {
	next table
	key  func(row any) []any
}

// Column is one column of a table with rows of type R: its name, its SQL type and where its
// value is in a row.
type Column[R any] struct {
	name string
	kind kind
	null bool
	ptr  func(*R) any // the field holding the column's value: *string, *int64, *sql.Null*
	// appendKey appends the column's value to an encoded key (key columns only: texts and
	// numbers), without boxing it: the folds compute a key for every row they touch.
	appendKey func(b []byte, r *R) []byte
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
		appendKey: func(b []byte, r *R) []byte { return appendText(b, *field(r)) }}
}

// NullText is a TEXT column that may be NULL.
func NullText[R any](name string, field func(*R) *sql.NullString) Column[R] {
	return Column[R]{name: name, kind: kindText, null: true, ptr: func(r *R) any { return field(r) }}
}

// BigInt is a BIGINT column (times in microseconds, amounts).
func BigInt[R any](name string, field func(*R) *int64) Column[R] {
	return Column[R]{name: name, kind: kindBigInt, ptr: func(r *R) any { return field(r) },
		appendKey: func(b []byte, r *R) []byte { return appendNumber(b, *field(r)) }}
}

// NullBigInt is a BIGINT column that may be NULL.
func NullBigInt[R any](name string, field func(*R) *sql.NullInt64) Column[R] {
	return Column[R]{name: name, kind: kindBigInt, null: true, ptr: func(r *R) any { return field(r) }}
}

// Integer is an INTEGER column (sequence numbers, small counts: int4 on PostgreSQL).
func Integer[R any](name string, field func(*R) *int64) Column[R] {
	return Column[R]{name: name, kind: kindInteger, ptr: func(r *R) any { return field(r) },
		appendKey: func(b []byte, r *R) []byte { return appendNumber(b, *field(r)) }}
}

// Position is a log position used as the table's whole key: on SQLite the rowid, so rows
// keyed by position are appended in log order and need no second index.
func Position[R any](name string, field func(*R) *int64) Column[R] {
	return Column[R]{name: name, kind: kindPosition, ptr: func(r *R) any { return field(r) },
		appendKey: func(b []byte, r *R) []byte { return appendNumber(b, *field(r)) }}
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
	return &Table[R]{name: name, columns: columns, key: key}
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
	t.then = append(t.then, follow{next: next, key: func(row any) []any { return normalKey(key(row.(*R))) }})
	return t
}

// Get returns the row of key (the values of the key columns, in order) as the fold sees
// it: stored, or as changed by the events before this one. ok is false when there is none.
func (t *Table[R]) Get(rows *Rows, key ...any) (r R, ok bool) {
	key = normalKey(key)
	v, ok := rows.get(t, encodeKey(key), key)
	if !ok {
		return r, false
	}
	return *v.(*R), true
}

// Group returns the rows whose first key column is value, in key order: the rows of a
// table keyed by (owner, seq) that belong to one owner.
func (t *Table[R]) Group(rows *Rows, value any) []R {
	vs := rows.group(t, normalKey([]any{value})[0])
	out := make([]R, len(vs))
	for i, v := range vs {
		out[i] = *v.(*R)
	}
	return out
}

// Upsert records row as the row of its key, whatever is stored under it.
func (t *Table[R]) Upsert(rows *Rows, row R) {
	rows.upsert(t, &row)
}

// Insert records row under its key unless a row is stored there already (the stored row
// stays): rows that only an event's first application adds, keyed by its position.
func (t *Table[R]) Insert(rows *Rows, row R) {
	rows.insert(t, &row)
}

// Delete records that the row of key is gone.
func (t *Table[R]) Delete(rows *Rows, key ...any) {
	key = normalKey(key)
	rows.delete(t, encodeKey(key), key)
}

// table is a Table seen without its row type: what the runtime needs to read and write it.
type table interface {
	base() string
	columnNames() []string
	keyWidth() int
	keyKinds() []kind
	// valuesOf are the column values of a row (a *R), as written: string, int64 or nil.
	valuesOf(row any) []any
	// keyOf is the encoded key of a row.
	keyOf(row any) string
	// keyValues are the values of a row's key columns.
	keyValues(row any) []any
	// follows are the rows the fold reads after one of this table (see Then).
	follows() []follow
	// scan reads one row of a SELECT of every column in order.
	scan(rows *sql.Rows) (any, error)
	schema(d projections.Dialect, t projections.Tables) []string
}

func (t *Table[R]) base() string { return t.name }

func (t *Table[R]) follows() []follow { return t.then }

func (t *Table[R]) columnNames() []string {
	names := make([]string, len(t.columns))
	for i, c := range t.columns {
		names[i] = c.name
	}
	return names
}

func (t *Table[R]) keyWidth() int { return t.key }

func (t *Table[R]) keyKinds() []kind {
	kinds := make([]kind, t.key)
	for i := range kinds {
		kinds[i] = t.columns[i].kind
	}
	return kinds
}

func (t *Table[R]) valuesOf(row any) []any {
	r := row.(*R)
	values := make([]any, len(t.columns))
	for i, c := range t.columns {
		values[i] = value(c.ptr(r))
	}
	return values
}

func (t *Table[R]) keyOf(row any) string {
	r := row.(*R)
	var buf [64]byte
	b := buf[:0]
	for _, c := range t.columns[:t.key] {
		b = c.appendKey(b, r)
	}
	return string(b)
}

func (t *Table[R]) keyValues(row any) []any {
	r := row.(*R)
	values := make([]any, t.key)
	for i := range values {
		values[i] = value(t.columns[i].ptr(r))
	}
	return values
}

func (t *Table[R]) scan(rows *sql.Rows) (any, error) {
	r := new(R)
	dest := make([]any, len(t.columns))
	for i, c := range t.columns {
		dest[i] = c.ptr(r)
	}
	if err := rows.Scan(dest...); err != nil {
		return nil, err
	}
	return r, nil
}

// value is the column value held by a field.
func value(field any) any {
	switch f := field.(type) {
	case *string:
		return *f
	case *int64:
		return *f
	case *sql.NullString:
		return projections.NullString(f.String, f.Valid)
	case *sql.NullInt64:
		return projections.NullInt64(f.Int64, f.Valid)
	}
	panic(fmt.Sprintf("readmodel: column of type %T", field))
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

// normalKey returns key values as the columns hold them: an int (an untyped constant) as an
// int64.
func normalKey(values []any) []any {
	for i, v := range values {
		if n, ok := v.(int); ok {
			values[i] = int64(n)
		}
	}
	return values
}

// encodeKey encodes key values (strings and int64s) as one map key: each value length-prefixed,
// so no two keys share an encoding, and the encoding of a key's first value is the group's.
func encodeKey(values []any) string {
	var buf [64]byte
	b := buf[:0]
	for _, v := range values {
		b = appendKeyValue(b, v)
	}
	return string(b)
}

func appendKeyValue(b []byte, v any) []byte {
	switch v := v.(type) {
	case string:
		return appendText(b, v)
	case int64:
		return appendNumber(b, v)
	}
	panic(fmt.Sprintf("readmodel: key value of type %T", v))
}

// A text is its length times two, then its bytes; a number 1, then its 8 bytes.
func appendText(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s))<<1)
	return append(b, s...)
}

func appendNumber(b []byte, n int64) []byte {
	b = binary.AppendUvarint(b, 1)
	return binary.BigEndian.AppendUint64(b, uint64(n))
}

// groupOf is the encoding of the first value of the encoded key k: the key of its group.
func groupOf(k string) string {
	var (
		h     uint64
		shift uint
		n     int
	)
	for n < len(k) {
		c := k[n]
		n++
		h |= uint64(c&0x7f) << shift
		if c < 0x80 {
			break
		}
		shift += 7
	}
	if h&1 == 1 {
		return k[:n+8]
	}
	return k[:n+int(h>>1)]
}
