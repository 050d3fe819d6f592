package readmodel

import (
	"context"
	"slices"

	"github.com/eventcrm/crm/projections"
)

// Rows is what a fold reads and changes: the rows of a read model's tables as stored, with
// the changes of the events folded before (those of the same batch) on top. A fold reads
// with Table.Get and Table.Group and records changes with Table.Upsert, Insert, Add and
// Delete; the runtime writes them.
//
// On the live path a row the fold asks for is read from the transaction at once. On the
// batch path it is not: a pass over the batch notes the rows it missed, they are loaded
// together, and the batch is folded again, until a pass misses nothing. So a fold must not
// depend on anything but its event and the rows it reads (no clock, no counters of its
// own): that is also what makes a rebuild equal to the live tables.
type Rows struct {
	tables []tableState
	live   *live // nil on the batch path
	// missed: a row or group this pass asked for was not loaded (batch path).
	missed bool
	// touched: the fold read or changed a row since it was last cleared (the first pass
	// of a batch notes the events the fold does nothing with).
	touched bool
	// err is the first error of reading the transaction (live path): later reads find nothing.
	err error
}

// tableState is one table's part of Rows, seen without its row type.
type tableState interface {
	table() table
	// reset forgets the changes and misses of a pass; what was loaded stays.
	reset()
	// clear forgets everything, loads included: the Rows is used again for another batch or
	// event.
	clear()
	// loadMisses loads the rows and groups the pass missed, and notes as missed in the
	// tables after this one the rows the fold reads after those found (Table.Then).
	loadMisses(ctx context.Context, tx *projections.Tx, set projections.Tables, rows *Rows) error
	// want notes the row of key as missed unless it is known.
	want(key []any)
	// misses returns the table's part of new Rows holding only its misses; addMisses adds
	// to it the misses of such a part.
	misses() tableState
	addMisses(from tableState)
	// settlePending records the upserts, additions and inserts the fold made since the
	// table's last other operation.
	settlePending(rows *Rows)
	write(ctx context.Context, tx *projections.Tx, set projections.Tables, presumeNew bool, f *fresh) error
}

// tableRows is the part of Rows of a table with rows of type R. Rows are held as values of
// type R and looked up by key values: a fold touches a few rows per event, and boxing them
// or encoding their keys would cost more than the fold itself.
type tableRows[R any] struct {
	t *Table[R]
	// stored holds the rows known as stored, by key: an index in loaded, or -1 when none is.
	stored map[rowKey]int32
	loaded []R
	// groups holds the groups loaded whole, by the key of their first value, with the keys of
	// their stored rows.
	groups map[rowKey][]rowKey
	// changes are the rows the fold changed, first change first; changed indexes them by key.
	changes []change[R]
	changed map[rowKey]int32
	// changedGroups lists the changes of each group, once a pass read a group (nil before:
	// most tables are never read by group).
	changedGroups map[rowKey][]int32
	// missKeys and missGroups are what a batch pass asked for and did not find loaded.
	missKeys   map[rowKey]struct{}
	missGroups map[rowKey]struct{}
	// pending are the rows given to Upsert and Add (and Insert on the batch path) since the
	// table's last other operation, in order, not recorded yet: they are recorded
	// (settlePending) before any other operation on the table and before the write, and a
	// batch pass that missed a row drops them unrecorded. None reads anything the fold sees
	// (an insert of the batch path looks up only what was loaded before the pass), so
	// recording later changes nothing, and the
	// passes of a batch that are folded again cost no key nor map work for the rows they
	// write without reading (a phase change adds some sixty on the journey map, and most
	// events write a part that no fold reads).
	pending []pendingRow[R]
}

// pendingRow is a row given to Upsert, Add or (batch path) Insert, not recorded yet.
type pendingRow[R any] struct {
	row R
	op  pendingOp
}

type pendingOp uint8

const (
	pendingUpsert pendingOp = iota
	pendingAdd
	pendingInsert
)

type change[R any] struct {
	key  rowKey
	row  R
	gone bool // deleted
	// ifAbsent: an insert on the live path, of a key not read: the row is written unless one
	// is stored (ON CONFLICT DO NOTHING), and read only if the fold asks for it again.
	ifAbsent bool
	// dropped: such an insert found a row stored, which stays: the change is void.
	dropped bool
	// add: row holds amounts to add to the counters of the row stored under key, whatever it
	// is (none: zeros), not read: written as an INSERT ... ON CONFLICT DO UPDATE SET c = c +
	// excluded.c.
	add bool
}

func newTableRows[R any](t *Table[R]) *tableRows[R] {
	return &tableRows[R]{t: t, stored: map[rowKey]int32{}, groups: map[rowKey][]rowKey{}, changed: map[rowKey]int32{},
		missKeys: map[rowKey]struct{}{}, missGroups: map[rowKey]struct{}{}}
}

func newRows(tables []table, l *live) *Rows {
	rows := &Rows{live: l, tables: make([]tableState, len(tables))}
	for i, t := range tables {
		rows.tables[i] = t.newRows()
	}
	return rows
}

// reset forgets the changes and misses of a pass; what was loaded stays.
func (rows *Rows) reset() {
	rows.missed = false
	for _, tr := range rows.tables {
		tr.reset()
	}
}

// clear forgets everything: the rows are used again, for another batch or event, with the
// room of their maps and lists.
func (rows *Rows) clear() {
	rows.missed, rows.touched, rows.err, rows.live = false, false, nil, nil
	for _, tr := range rows.tables {
		tr.clear()
	}
}

// misses returns new Rows holding only the misses of rows.
func (rows *Rows) misses() *Rows {
	out := &Rows{tables: make([]tableState, len(rows.tables)), missed: rows.missed}
	for i, tr := range rows.tables {
		out.tables[i] = tr.misses()
	}
	return out
}

// addMisses adds the misses of from, Rows of the same read model.
func (rows *Rows) addMisses(from *Rows) {
	rows.missed = rows.missed || from.missed
	for i, tr := range rows.tables {
		tr.addMisses(from.tables[i])
	}
}

func (tr *tableRows[R]) misses() tableState {
	out := newTableRows(tr.t)
	out.addMisses(tr)
	return out
}

func (tr *tableRows[R]) addMisses(from tableState) {
	f := from.(*tableRows[R])
	for k := range f.missKeys {
		tr.missKeys[k] = struct{}{}
	}
	for g := range f.missGroups {
		tr.missGroups[g] = struct{}{}
	}
}

// rowsOf is the part of rows of table t, with its upserts and additions recorded: for any
// operation but Upsert and Add.
func rowsOf[R any](rows *Rows, t *Table[R]) *tableRows[R] {
	tr := pendingOf(rows, t)
	if len(tr.pending) > 0 {
		tr.settlePending(rows)
	}
	return tr
}

// pendingOf is the part of rows of table t, as it is: for Upsert and Add.
func pendingOf[R any](rows *Rows, t *Table[R]) *tableRows[R] {
	rows.touched = true
	if t.slot < len(rows.tables) {
		if tr, ok := rows.tables[t.slot].(*tableRows[R]); ok && tr.t == t {
			return tr
		}
	}
	// A table declared in two read models has the place of the last.
	for _, tr := range rows.tables {
		if tr, ok := tr.(*tableRows[R]); ok && tr.t == t {
			return tr
		}
	}
	panic("readmodel: table " + t.base() + " is not a table of this read model")
}

// of is the part of rows of table t, whatever its row type.
func (rows *Rows) of(t table) tableState {
	for _, tr := range rows.tables {
		if tr.table() == t {
			return tr
		}
	}
	panic("readmodel: table " + t.base() + " is not a table of this read model")
}

func (tr *tableRows[R]) table() table { return tr.t }

func (tr *tableRows[R]) reset() {
	clear(tr.pending)
	tr.pending = tr.pending[:0]
	clear(tr.changed)
	clear(tr.changes)
	tr.changes = tr.changes[:0]
	tr.changedGroups = nil
	clear(tr.missKeys)
	clear(tr.missGroups)
}

func (tr *tableRows[R]) clear() {
	tr.reset()
	clear(tr.stored)
	clear(tr.loaded)
	tr.loaded = tr.loaded[:0]
	clear(tr.groups)
}

// lookup says what is stored under key k: the index of its row in loaded (-1: none), and
// whether it is known at all.
func (tr *tableRows[R]) lookup(k rowKey) (i int32, known bool) {
	if i, ok := tr.stored[k]; ok {
		return i, true
	}
	if len(tr.groups) > 0 {
		if _, ok := tr.groups[tr.t.shape.group(k)]; ok {
			return -1, true
		}
	}
	return -1, false
}

func (tr *tableRows[R]) get(rows *Rows, k rowKey) (r R, ok bool) {
	if i, ok := tr.changed[k]; ok {
		c := &tr.changes[i]
		if c.add {
			return tr.addedTo(rows, k, c)
		}
		if c.ifAbsent {
			if j := tr.settle(rows, i); j >= 0 {
				return tr.loaded[j], true
			}
		}
		return c.row, !c.gone
	}
	i, known := tr.lookup(k)
	if !known && rows.live != nil {
		i, known = tr.readRow(rows, k), true
	}
	if known {
		if i < 0 {
			return r, false
		}
		return tr.loaded[i], true
	}
	tr.missKeys[k] = struct{}{}
	rows.missed = true
	return r, false
}

func (tr *tableRows[R]) group(rows *Rows, g rowKey) []R {
	stored, loaded := tr.groups[g]
	switch {
	case loaded:
	case rows.live != nil:
		stored = tr.readGroup(rows, g)
	default:
		tr.missGroups[g] = struct{}{}
		rows.missed = true
	}
	if tr.changedGroups == nil {
		tr.changedGroups = map[rowKey][]int32{}
		for i := range tr.changes {
			cg := tr.t.shape.group(tr.changes[i].key)
			tr.changedGroups[cg] = append(tr.changedGroups[cg], int32(i))
		}
	}
	for _, i := range tr.changedGroups[g] {
		if tr.changes[i].add {
			panic("readmodel: table " + tr.t.base() + ": Group of a group the fold added to")
		}
		if tr.changes[i].ifAbsent {
			tr.settle(rows, i)
		}
	}
	var in []*R
	for _, k := range stored {
		if _, changed := tr.changed[k]; changed {
			continue
		}
		if i := tr.stored[k]; i >= 0 {
			in = append(in, &tr.loaded[i])
		}
	}
	for _, i := range tr.changedGroups[g] {
		if c := &tr.changes[i]; !c.gone && !c.dropped {
			in = append(in, &c.row)
		}
	}
	slices.SortFunc(in, tr.t.compareRows)
	out := make([]R, len(in))
	for i, r := range in {
		out[i] = *r
	}
	return out
}

// upsert records row as the row of its key.
func (tr *tableRows[R]) upsert(row R) {
	k, i := tr.stage(row)
	tr.commit(k, i, false)
}

func (tr *tableRows[R]) insert(rows *Rows, row R) {
	k, i := tr.stage(row)
	if j, ok := tr.changed[k]; ok {
		if tr.changes[j].gone {
			tr.commit(k, i, false)
			return
		}
		tr.unstage()
		return
	}
	stored, known := tr.lookup(k)
	switch {
	case !known && rows.live != nil:
		// Not read: the write keeps a stored row (one statement, as an INSERT of its own
		// would), and a later read of the key in this event settles which row it is.
		tr.commit(k, i, false)
		tr.changes[i].ifAbsent = true
	case stored < 0:
		// On the batch path a key nobody read is taken for new: were it stored, the write of
		// the batch fails and its events are folded one by one, on the live path.
		tr.commit(k, i, false)
	default:
		tr.unstage()
	}
}

// settlePending records the rows given to Upsert, Add and Insert since the last operation on
// the table, in order.
func (tr *tableRows[R]) settlePending(rows *Rows) {
	for i := range tr.pending {
		switch p := &tr.pending[i]; p.op {
		case pendingAdd:
			tr.add(rows, p.row)
		case pendingInsert:
			tr.insert(rows, p.row)
		default:
			tr.upsert(p.row)
		}
	}
	clear(tr.pending)
	tr.pending = tr.pending[:0]
}

// add records that the counters of row are added to those of the row of its key, stored or
// not: nothing is read. Additions to one key merge into one change; an addition to a row the
// fold changed otherwise is made to that row.
func (tr *tableRows[R]) add(rows *Rows, row R) {
	k, i := tr.stage(row)
	j, ok := tr.changed[k]
	if ok && tr.changes[j].ifAbsent {
		tr.settle(rows, j)
		j, ok = tr.changed[k]
	}
	switch {
	case !ok:
		tr.commit(k, i, false)
		tr.changes[i].add = true
	case tr.changes[j].gone:
		// Added to a deleted row: the row is the amounts.
		tr.commit(k, i, false)
	default:
		tr.t.addCounters(&tr.changes[j].row, &tr.changes[i].row)
		tr.unstage()
	}
}

// addedTo returns the row of k as the fold sees it when its change c is an addition: the
// stored row (none: zeros, with the key) plus the amounts. On the batch path the stored row
// is missed until loaded, as for Get.
func (tr *tableRows[R]) addedTo(rows *Rows, k rowKey, c *change[R]) (R, bool) {
	i, known := tr.lookup(k)
	if !known && rows.live != nil {
		i, known = tr.readRow(rows, k), true
	}
	if !known {
		tr.missKeys[k] = struct{}{}
		rows.missed = true
	}
	r := c.row
	if i >= 0 {
		r = tr.loaded[i]
		tr.t.addCounters(&r, &c.row)
	}
	return r, true
}

// settle reads the row stored under the key of the insert i not read yet (live path): when
// there is one, it stays and the insert is void. It returns the stored row's index in
// loaded, -1 when none is stored.
func (tr *tableRows[R]) settle(rows *Rows, i int32) int32 {
	c := &tr.changes[i]
	stored, known := tr.lookup(c.key)
	if !known {
		stored = tr.readRow(rows, c.key)
	}
	c.ifAbsent = false
	if stored >= 0 {
		c.dropped = true
		delete(tr.changed, c.key)
	}
	return stored
}

// stage appends row to the changes, not recorded yet, and returns its key and index: its key
// is computed where it is stored, so that a row given to the fold is not copied to the heap
// to be read by the columns' fields.
func (tr *tableRows[R]) stage(row R) (rowKey, int32) {
	tr.changes = append(tr.changes, change[R]{row: row})
	i := len(tr.changes) - 1
	tr.changes[i].key = tr.t.keyOf(&tr.changes[i].row)
	return tr.changes[i].key, int32(i)
}

// unstage drops the staged change.
func (tr *tableRows[R]) unstage() {
	tr.changes[len(tr.changes)-1] = change[R]{}
	tr.changes = tr.changes[:len(tr.changes)-1]
}

// commit records the staged change i as the change of the row of k: a new change, or the
// row of k's earlier change.
func (tr *tableRows[R]) commit(k rowKey, i int32, gone bool) {
	if j, ok := tr.changed[k]; ok {
		tr.changes[j].row, tr.changes[j].gone, tr.changes[j].ifAbsent = tr.changes[i].row, gone, false
		tr.changes[j].add = false
		tr.unstage()
		return
	}
	tr.changes[i].gone = gone
	tr.changed[k] = i
	if tr.changedGroups != nil {
		g := tr.t.shape.group(k)
		tr.changedGroups[g] = append(tr.changedGroups[g], i)
	}
}

func (tr *tableRows[R]) delete(rows *Rows, k rowKey) {
	// On the batch path a deleted row is loaded first: the batch then knows whether it must
	// delete it, and upserts it when the fold records it again.
	if _, known := tr.lookup(k); !known && rows.live == nil {
		if _, changed := tr.changed[k]; !changed {
			tr.missKeys[k] = struct{}{}
			rows.missed = true
		}
	}
	tr.changes = append(tr.changes, change[R]{key: k})
	tr.commit(k, int32(len(tr.changes)-1), true)
}

// write writes the changed rows into set in tx: deleted rows, then rows known as stored with
// upserts. Other rows are inserted when presumeNew (the batch path: new rows are copied in
// on PostgreSQL, and a row stored after all fails the batch, which is then folded event by
// event), else upserted.
func (rows *Rows) write(ctx context.Context, tx *projections.Tx, set projections.Tables, presumeNew bool, f *fresh) error {
	for _, tr := range rows.tables {
		tr.settlePending(rows)
	}
	if rows.err != nil {
		return rows.err // a read of the live path, settling an addition
	}
	for _, tr := range rows.tables {
		if err := tr.write(ctx, tx, set, presumeNew, f); err != nil {
			return err
		}
	}
	return nil
}

// How a changed row is written, in this order: new rows first (copied in on PostgreSQL, they
// fail the batch when one is stored), then inserts that keep a stored row, then upserts, then
// additions.
const (
	writeNew = iota
	writeIfAbsent
	writeOver
	writeAdd
	writeNone // deleted, or void
)

var conflicts = [...]projections.OnConflict{
	writeNew:      projections.ConflictFail,
	writeIfAbsent: projections.ConflictIgnore,
	writeOver:     projections.ConflictUpdate,
	writeAdd:      projections.ConflictAdd,
}

func (tr *tableRows[R]) write(ctx context.Context, tx *projections.Tx, set projections.Tables, presumeNew bool, f *fresh) error {
	if len(tr.changes) == 0 {
		return nil
	}
	// How each row is written is decided first, so that each list of values is allocated
	// once.
	how := make([]uint8, len(tr.changes))
	var (
		gone  [][]any
		count [writeNone + 1]int
	)
	for i := range tr.changes {
		c := &tr.changes[i]
		stored, known := tr.lookup(c.key)
		switch {
		case c.dropped:
			how[i] = writeNone
		case c.gone:
			how[i] = writeNone
			if !known || stored >= 0 {
				gone = append(gone, tr.t.shape.values(c.key))
			}
		case c.ifAbsent:
			how[i] = writeIfAbsent
		case c.add && tr.t.counters && f.firstWrite(tr.t, c.key):
			// In a set written from empty, counters never written before: the amounts are
			// the row (zeros included, as below).
			how[i] = writeNew
		case c.add:
			// Even when the amounts are zeros: the row is then stored, as it is on the live
			// path, whatever the batches.
			how[i] = writeAdd
		case presumeNew && stored < 0:
			how[i] = writeNew
		default:
			how[i] = writeOver
		}
		if !c.add && how[i] != writeNone && tr.t.counters {
			// A row of counters written otherwise (Upsert) is stored too.
			f.firstWrite(tr.t, c.key)
		}
		count[how[i]]++
	}
	width := len(tr.t.columns)
	var values [writeNone][]any
	for h := range values {
		values[h] = make([]any, 0, count[h]*width)
	}
	for i := range tr.changes {
		if h := how[i]; h != writeNone {
			values[h] = tr.t.appendValues(values[h], &tr.changes[i].row)
		}
	}
	name := set.Name(tr.t.base())
	if err := deleteKeys(ctx, tx, name, tr.t, gone); err != nil {
		return err
	}
	for h, rows := range values {
		if err := tx.Insert(ctx, name, tr.t.columnNames(), tr.t.keyWidth(), conflicts[h], rows); err != nil {
			return err
		}
	}
	return nil
}
