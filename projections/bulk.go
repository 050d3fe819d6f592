package projections

import (
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/eventstore"
)

// BatchProjection is a projection that can apply many events at once, much faster than one
// by one: rebuilds use it, and the live runner for the batches it is delivered and its
// catch-up (see DB.ApplyPrepared).
//
// A batch must leave the tables exactly as Apply would, applied to each event in order;
// the tests of every read model and the live-equals-rebuilt test hold them to it. When a
// batch meets anything it does not handle exactly (an event Apply would refuse, a row it
// did not expect), it returns an error: the rebuild then rolls it back and applies the same
// events one by one with Apply, which decides.
type BatchProjection interface {
	Projection
	// PrepareBatch decodes the events of b (in position order, each at most once per set)
	// without any I/O: it may run while earlier batches are still being written, and at the
	// same time as the other projections of a rebuild prepare the same events.
	PrepareBatch(b *Batch) (PreparedBatch, error)
}

// Batch is a batch of events read from the log, shared by the projections a rebuild builds
// together: Decode decodes each event's data once for all of them.
type Batch struct {
	events []eventstore.Event
	slots  []decoded // shared by the views of one read
	offset int       // index of events[0] in slots
	// start is the checkpoint of the set the view is prepared for (-1: not known).
	start int64
}

type decoded struct {
	once sync.Once
	v    any
	err  error
}

// NewBatch returns a batch of events (tests and DB.ApplyBatch; rebuilds make their own).
func NewBatch(events []eventstore.Event) *Batch {
	return &Batch{events: events, slots: make([]decoded, len(events)), start: -1}
}

// after is the view of the events with a position above pos.
func (b *Batch) after(pos int64) *Batch {
	for i, e := range b.events {
		if e.Position > pos {
			return &Batch{events: b.events[i:], slots: b.slots, offset: b.offset + i, start: -1}
		}
	}
	return &Batch{slots: b.slots, start: -1}
}

// Start is the checkpoint of the set a builder prepared the batch for, when the batch comes to
// be written: its events are those after it. 0 is a set that holds nothing yet; -1, not known
// (a batch of the live runner).
func (b *Batch) Start() int64 { return b.start }

// Events are the events of the batch, in position order. They belong to the batch: read
// only.
func (b *Batch) Events() []eventstore.Event { return b.events }

// Decode returns the data of event i of b decoded as JSON into a T, decoding it only the
// first time it is asked for: the value is shared, read only. (An event asked for as two
// types is decoded again for the second.)
func Decode[T any](b *Batch, i int) (*T, error) {
	s := &b.slots[b.offset+i]
	s.once.Do(func() {
		v := new(T)
		s.v, s.err = v, domain.DecodeData(b.events[i].Data, v)
	})
	if v, ok := s.v.(*T); ok {
		if s.err != nil {
			return nil, fmt.Errorf("decode %s: %w", b.events[i].Type, s.err)
		}
		return v, nil
	}
	v := new(T)
	if err := domain.DecodeData(b.events[i].Data, v); err != nil {
		return nil, fmt.Errorf("decode %s: %w", b.events[i].Type, err)
	}
	return v, nil
}

// BuildEnder is a BatchProjection that keeps, while a builder writes a set from empty, what it
// knows the set holds (readmodel: the keys of the counters written): Builder.Close calls
// EndBuild for each of its targets, so that nothing of a build outlives it.
type BuildEnder interface {
	EndBuild(t Tables)
}

// PreparedBatch is a decoded batch, ready to be written.
type PreparedBatch interface {
	// Apply writes the batch into set t inside tx: it reads the rows the batch changes,
	// applies the events to them in memory and writes each changed row once.
	Apply(ctx context.Context, tx *Tx, t Tables) error
}

// Prepared returns a statement prepared once for query (written with ?): once per
// transaction, or once per rebuild when the transaction belongs to one (the statements of a
// rebuild's connection outlive its transactions). Multi-row statements have thousands of
// parameters: parsing them again for every batch would cost as much as running them.
func (t *Tx) Prepared(ctx context.Context, query string) (Stmt, error) {
	if st, ok := t.stmts[query]; ok {
		return Stmt{st}, nil
	}
	var (
		st  *sql.Stmt
		err error
	)
	if t.shared != nil {
		st, err = t.shared.stmt(ctx, t.dialect.Rebind(query))
		if err == nil {
			st = t.tx.StmtContext(ctx, st)
		}
	} else {
		st, err = t.tx.PrepareContext(ctx, t.dialect.Rebind(query))
	}
	if err != nil {
		return Stmt{}, err
	}
	if t.stmts == nil {
		t.stmts = map[string]*sql.Stmt{}
	}
	t.stmts[query] = st
	return Stmt{st}, nil
}

// Stmt is a statement of a Tx prepared by Prepared: like the Tx's own statements, it makes
// its text arguments storable (see storableText).
type Stmt struct{ st *sql.Stmt }

// ExecContext runs the statement.
func (s Stmt) ExecContext(ctx context.Context, args ...any) (sql.Result, error) {
	return s.st.ExecContext(ctx, storableArgs(args)...)
}

// QueryContext runs the query.
func (s Stmt) QueryContext(ctx context.Context, args ...any) (*sql.Rows, error) {
	return s.st.QueryContext(ctx, storableArgs(args)...)
}

// QueryRowContext runs the query for one row.
func (s Stmt) QueryRowContext(ctx context.Context, args ...any) *sql.Row {
	return s.st.QueryRowContext(ctx, storableArgs(args)...)
}

// stmtCache holds statements prepared on the database: a transaction on a connection where
// one was prepared before reuses it (database/sql keeps it per connection).
type stmtCache struct {
	db    *sql.DB
	mu    sync.Mutex
	stmts map[string]*sql.Stmt
}

func (c *stmtCache) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.stmts[query]; ok {
		return st, nil
	}
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if c.stmts == nil {
		c.stmts = map[string]*sql.Stmt{}
	}
	c.stmts[query] = st
	return st, nil
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.stmts {
		_ = st.Close()
	}
	c.stmts = nil
}

// OnConflict says what a bulk insert does with a row whose key is already stored.
type OnConflict int

// Conflict modes of Insert.
const (
	// ConflictFail: the statement fails (a plain INSERT).
	ConflictFail OnConflict = iota
	// ConflictIgnore: the stored row stays (ON CONFLICT DO NOTHING).
	ConflictIgnore
	// ConflictUpdate: every column that is not part of the key is overwritten.
	ConflictUpdate
	// ConflictAdd: every column that is not part of the key is added to the stored one
	// (counters: no read before the write).
	ConflictAdd
)

// maxParams bounds the parameters of one statement: SQLite allows 32766, PostgreSQL 65535.
const maxParams = 30000

// rowsPerInsert bounds the rows of one multi-row statement: beyond a few hundred, a bigger
// statement saves nothing and costs more to parse.
const rowsPerInsert = 256

// Insert writes rows (values flattened, len(columns) per row) into table with multi-row
// INSERT statements; the first key columns are the conflict target of onConflict. Rows
// must have distinct keys when onConflict is ConflictUpdate or ConflictAdd; with ConflictIgnore, the first
// of rows with one key wins, as with one statement per row. With ConflictFail on PostgreSQL,
// in a rebuild's transaction, the rows are copied in (COPY: several times faster; a key
// already stored fails it as an INSERT would).
//
// Rows are written in key order: consecutive inserts then land on neighbouring pages of the
// key's B-tree, which matters for random keys (UUIDs).
func (t *Tx) Insert(ctx context.Context, table string, columns []string, key int, onConflict OnConflict, values []any) error {
	width := len(columns)
	if width == 0 || len(values)%width != 0 {
		return fmt.Errorf("insert into %s: %d values for %d columns", table, len(values), width)
	}
	// Made storable before sorting: rows are then ordered by the keys as stored.
	values = sortRows(storableArgs(values), width, key)
	if t.dialect.Features().Copy && t.conn != nil {
		switch {
		case onConflict == ConflictFail && len(values) >= copyMinRows*width:
			return t.copyRows(ctx, table, columns, values)
		case (onConflict == ConflictUpdate || onConflict == ConflictAdd) && len(values) >= copyMergeMinRows*width:
			return t.copyMerge(ctx, table, columns, key, onConflict, values)
		}
	}
	per := min(rowsPerInsert, maxParams/width)
	shape := insertShape{table: table, columns: strings.Join(columns, ","), key: key, onConflict: onConflict}
	for len(values) > 0 {
		// Full statements, then powers of two: few shapes of statement, each prepared once.
		n := min(per, len(values)/width)
		if n < per {
			n = 1 << (bits.Len(uint(n)) - 1)
		}
		shape.rows = n
		if err := t.execPrepared(ctx, t.insertText(shape, columns), values[:n*width]); err != nil {
			return fmt.Errorf("insert into %s: %w", table, err)
		}
		values = values[n*width:]
	}
	return nil
}

// insertShape is what the text of a multi-row INSERT of Insert depends on.
type insertShape struct {
	table, columns string // columns joined
	key, rows      int
	onConflict     OnConflict
}

// insertText is the statement of shape (of the columns joined in shape.columns), built once per
// transaction: a rebuild's batch writes tens of statements of one shape, each text thousands
// of parameters long.
func (t *Tx) insertText(shape insertShape, columns []string) string {
	if q, ok := t.inserts[shape]; ok {
		return q
	}
	q := insertSQL(shape.table, columns, shape.key, shape.onConflict, shape.rows)
	if t.inserts == nil {
		t.inserts = map[insertShape]string{}
	}
	t.inserts[shape] = q
	return q
}

// execPrepared runs query (written with ?) with args, prepared: once per transaction, or once
// per rebuild. A live transaction on PostgreSQL runs it plainly: the driver keeps prepared
// statements per connection already, and preparing it for one transaction would cost a
// round trip more.
//
// args are made storable by the caller (Insert does it once for all its rows).
func (t *Tx) execPrepared(ctx context.Context, query string, args []any) error {
	if !t.dialect.Features().PreparesEachStatement && (t.shared == nil || t.plain) {
		_, err := t.tx.ExecContext(ctx, t.dialect.Rebind(query), args...)
		return err
	}
	st, err := t.Prepared(ctx, query)
	if err != nil {
		return err
	}
	_, err = st.st.ExecContext(ctx, args...)
	return err
}

// sortRows returns the rows of values ordered by their first key columns, stably.
func sortRows(values []any, width, key int) []any {
	n := len(values) / width
	if n < 2 || key == 0 {
		return values
	}
	// The keys of the read models are a position, a text, or a text and a number: compared
	// as such, without going through interfaces for each comparison.
	type sortKey struct {
		s string
		n int64
		i int
	}
	keys := make([]sortKey, n)
	typed := key <= 2
	_, byNumber := values[0].(int64)
	byNumber = byNumber && key == 1
	for i := range n {
		row := values[i*width:]
		var ok bool
		if byNumber {
			keys[i].n, ok = row[0].(int64)
		} else {
			keys[i].s, ok = row[0].(string)
		}
		keys[i].i = i
		typed = typed && ok
		if typed && key == 2 {
			keys[i].n, ok = row[1].(int64)
			typed = ok
		}
	}
	if !typed {
		// A wider key, or one of other types: each row's key encoded once into a text that
		// sorts as the key does, compared as such (comparing the values themselves went
		// through interfaces for each of the n log n comparisons).
		// The encodings are appended to one buffer, made one text, and each key is a slice
		// of it: one allocation, not one per row.
		typed = true
		var (
			buf  []byte
			ends = make([]int, n)
		)
		for i := range n {
			var ok bool
			if i == 1 {
				// Room for every key the size of the first, and a little more.
				buf = slices.Grow(buf, len(buf)*(n-1)+len(buf)/2*n)
			}
			if buf, ok = appendSortKey(buf, values[i*width:i*width+key]); !ok {
				typed = false
				break
			}
			ends[i] = len(buf)
		}
		if typed {
			all, start := string(buf), 0
			for i := range n {
				keys[i] = sortKey{s: all[start:ends[i]], i: i}
				start = ends[i]
			}
		}
	}
	var less func(a, b sortKey) int
	if typed {
		less = func(a, b sortKey) int {
			if c := strings.Compare(a.s, b.s); c != 0 {
				return c
			}
			return cmp.Compare(a.n, b.n)
		}
	} else {
		less = func(a, b sortKey) int {
			return CompareRows(values[a.i*width:a.i*width+key], values[b.i*width:b.i*width+key])
		}
	}
	if slices.IsSortedFunc(keys, less) {
		return values
	}
	// Ties broken by position, as a stable sort would, but in O(n log n): a stable sort's
	// merges cost several times more on the thousands of rows of a rebuild's batch.
	slices.SortFunc(keys, func(a, b sortKey) int {
		if c := less(a, b); c != 0 {
			return c
		}
		return cmp.Compare(a.i, b.i)
	})
	out := make([]any, 0, len(values))
	for _, k := range keys {
		out = append(out, values[k.i*width:(k.i+1)*width]...)
	}
	return out
}

// appendSortKey appends to b the key values of row encoded so that the encodings of two keys
// compare bytewise as the keys do (texts bytewise, numbers as numbers, column after column);
// ok is false when a value is neither a text nor an int64.
func appendSortKey(b []byte, row []any) (_ []byte, ok bool) {
	for _, v := range row {
		switch v := v.(type) {
		case string:
			// Each 0 byte escaped as 0 1, the end as 0 0: a text sorts before its extensions.
			for {
				j := strings.IndexByte(v, 0)
				if j < 0 {
					break
				}
				b = append(append(b, v[:j]...), 0, 1)
				v = v[j+1:]
			}
			b = append(append(b, v...), 0, 0)
		case int64:
			b = binary.BigEndian.AppendUint64(b, uint64(v)^(1<<63))
		default:
			return b, false
		}
	}
	return b, true
}

// copyMinRows is the fewest rows worth a COPY rather than an INSERT.
const copyMinRows = 4

// copyRows copies rows into table on the transaction's connection (PostgreSQL): the COPY
// runs in the transaction, since it is the same session.
func (t *Tx) copyRows(ctx context.Context, table string, columns []string, values []any) error {
	width := len(columns)
	rows := make([][]any, len(values)/width)
	for i := range rows {
		rows[i] = values[i*width : (i+1)*width : (i+1)*width]
	}
	err := t.conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("no pgx connection (%T)", dc)
		}
		_, err := c.Conn().CopyFrom(ctx, pgx.Identifier{table}, columns, pgx.CopyFromRows(rows))
		return err
	})
	if err != nil {
		return fmt.Errorf("copy into %s: %w", table, err)
	}
	return nil
}

// copyMergeMinRows is the fewest rows worth copying into a temporary table and merging from
// there rather than upserting with multi-row INSERTs.
const copyMergeMinRows = 512

// copyMerge upserts rows into table on the transaction's connection (PostgreSQL): they are
// copied into a temporary table of the same columns, then inserted from it in one statement
// with the conflict clause of onConflict. A rebuild's batch upserts tens of thousands of
// rows into the counters of the read models: binding them as parameters of multi-row
// statements cost more than the upserts themselves.
func (t *Tx) copyMerge(ctx context.Context, table string, columns []string, key int, onConflict OnConflict, values []any) error {
	tmp := mergeTable(table)
	if _, err := t.tx.ExecContext(ctx, `CREATE TEMPORARY TABLE IF NOT EXISTS `+tmp+` (LIKE `+table+`) ON COMMIT DELETE ROWS`); err != nil {
		return fmt.Errorf("merge into %s: %w", table, err)
	}
	if err := t.copyRows(ctx, tmp, columns, values); err != nil {
		return err
	}
	cols := strings.Join(columns, ", ")
	merge := strings.Replace(insertSQL(table, columns, key, onConflict, 0), " VALUES ", " SELECT "+cols+" FROM "+tmp, 1)
	if _, err := t.tx.ExecContext(ctx, merge); err != nil {
		return fmt.Errorf("merge into %s: %w", table, err)
	}
	if _, err := t.tx.ExecContext(ctx, `TRUNCATE `+tmp); err != nil {
		return fmt.Errorf("merge into %s: %w", table, err)
	}
	return nil
}

// mergeTable is the name of the temporary table of copyMerge for table: a name of its own
// (an unqualified name finds a temporary table before a table of the same name).
func mergeTable(table string) string {
	name := "merge_" + table
	if len(name) > 63 {
		sum := sha256.Sum256([]byte(table))
		name = "merge_" + hex.EncodeToString(sum[:12])
	}
	return name
}

func insertSQL(table string, columns []string, key int, onConflict OnConflict, rows int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO ")
	b.WriteString(table)
	b.WriteString(" (")
	b.WriteString(strings.Join(columns, ", "))
	b.WriteString(") VALUES ")
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(columns)), ", ") + ")"
	for i := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
	if key == len(columns) && onConflict != ConflictFail {
		// A row that is all key has nothing to update or add: a second one is the same row.
		onConflict = ConflictIgnore
	}
	switch onConflict {
	case ConflictIgnore:
		b.WriteString(" ON CONFLICT (" + strings.Join(columns[:key], ", ") + ") DO NOTHING")
	case ConflictUpdate:
		b.WriteString(" ON CONFLICT (" + strings.Join(columns[:key], ", ") + ") DO UPDATE SET ")
		for i, c := range columns[key:] {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(c + " = excluded." + c)
		}
	case ConflictAdd:
		// The stored row is named by its table: unqualified, PostgreSQL finds the column
		// ambiguous.
		b.WriteString(" ON CONFLICT (" + strings.Join(columns[:key], ", ") + ") DO UPDATE SET ")
		for i, c := range columns[key:] {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(c + " = " + table + "." + c + " + excluded." + c)
		}
	}
	return b.String()
}

// InKeys returns a condition matching column against a list of text keys, and its one
// argument: a JSON array read by json_each on SQLite, a text[] on PostgreSQL. One statement
// then loads the rows of any number of keys.
func (t *Tx) InKeys(column string, keys []string) (cond string, arg any, err error) {
	return t.dialect.InKeys(column, keys)
}

// NullInt64 is v as a column value: NULL when !valid.
func NullInt64(v int64, valid bool) any {
	if !valid {
		return nil
	}
	return v
}

// NullString is v as a column value: NULL when !valid.
func NullString(v string, valid bool) any {
	if !valid {
		return nil
	}
	return v
}

// savepoint applies fn inside a savepoint of tx, rolled back alone when fn fails: the rest
// of the transaction stays.
func savepoint(ctx context.Context, tx *Tx, n int, fn func() error) (applyErr, err error) {
	name := "sp" + strconv.Itoa(n)
	if _, err := tx.tx.ExecContext(ctx, "SAVEPOINT "+name); err != nil {
		return nil, fmt.Errorf("savepoint: %w", err)
	}
	if applyErr = fn(); applyErr != nil {
		if _, err := tx.tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT "+name); err != nil {
			return nil, fmt.Errorf("roll back to savepoint: %w", err)
		}
	}
	if _, err := tx.tx.ExecContext(ctx, "RELEASE SAVEPOINT "+name); err != nil {
		return nil, fmt.Errorf("release savepoint: %w", err)
	}
	return applyErr, nil
}
