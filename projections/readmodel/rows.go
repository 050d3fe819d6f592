package readmodel

import (
	"cmp"
	"context"
	"slices"
	"strings"

	"github.com/eventcrm/crm/projections"
)

// Rows is what a fold reads and changes: the rows of a read model's tables as stored, with
// the changes of the events folded before (those of the same batch) on top. A fold reads
// with Table.Get and Table.Group and records changes with Table.Upsert, Insert and Delete;
// the runtime writes them.
//
// On the live path a row the fold asks for is read from the transaction at once. On the
// batch path it is not: a pass over the batch notes the rows it missed, they are loaded
// together, and the batch is folded again, until a pass misses nothing. So a fold must not
// depend on anything but its event and the rows it reads (no clock, no counters of its
// own): that is also what makes a rebuild equal to the live tables.
type Rows struct {
	tables []*tableRows
	live   *live // nil on the batch path
	// missed: a row or group this pass asked for was not loaded (batch path).
	missed bool
	// err is the first error of reading the transaction (live path): later reads find nothing.
	err error
}

// tableRows is one table's part of Rows.
type tableRows struct {
	t table
	// stored holds the rows known as stored, by encoded key: a row (*R), or nil when none is.
	stored map[string]any
	// groups holds the groups loaded whole, by the encoding of their first key value, with
	// the keys of their stored rows.
	groups map[string][]string
	// changed holds the rows the fold changed, by key, first change first in order.
	changed map[string]change
	order   []string
	// changedGroups lists the changed keys of each group, once a pass read a group (nil
	// before: most tables are never read by group).
	changedGroups map[string][]string
	// missKeys and missGroups are what a batch pass asked for and did not find loaded.
	missKeys   map[string][]any
	missGroups map[string]any
}

type change struct {
	row any   // *R, nil when deleted
	key []any // the key values of a deleted row
}

func newRows(tables []table, l *live) *Rows {
	rows := &Rows{live: l, tables: make([]*tableRows, len(tables))}
	for i, t := range tables {
		rows.tables[i] = &tableRows{t: t, stored: map[string]any{}, groups: map[string][]string{}, changed: map[string]change{},
			missKeys: map[string][]any{}, missGroups: map[string]any{}}
	}
	return rows
}

// reset forgets the changes and misses of a pass; what was loaded stays.
func (rows *Rows) reset() {
	rows.missed = false
	for _, tr := range rows.tables {
		clear(tr.changed)
		tr.order = tr.order[:0]
		tr.changedGroups = nil
		clear(tr.missKeys)
		clear(tr.missGroups)
	}
}

// dropChanges forgets the changes of a pass, keeping its misses.
func (rows *Rows) dropChanges() {
	for _, tr := range rows.tables {
		tr.changed = map[string]change{}
		tr.order = nil
		tr.changedGroups = nil
	}
}

func (rows *Rows) of(t table) *tableRows {
	for _, tr := range rows.tables {
		if tr.t == t {
			return tr
		}
	}
	panic("readmodel: table " + t.base() + " is not a table of this read model")
}

// lookup says what is stored under key k: the row, and whether it is known at all.
func (tr *tableRows) lookup(k string) (row any, known bool) {
	if row, ok := tr.stored[k]; ok {
		return row, true
	}
	if len(tr.groups) > 0 {
		if _, ok := tr.groups[groupOf(k)]; ok {
			return nil, true
		}
	}
	return nil, false
}

func (rows *Rows) get(t table, k string, key []any) (any, bool) {
	tr := rows.of(t)
	if c, ok := tr.changed[k]; ok {
		return c.row, c.row != nil
	}
	row, known := tr.lookup(k)
	if known {
		return row, row != nil
	}
	if rows.live != nil {
		row = rows.live.row(rows, tr, key)
		return row, row != nil
	}
	tr.missKeys[k] = key
	rows.missed = true
	return nil, false
}

func (rows *Rows) group(t table, first any) []any {
	tr := rows.of(t)
	g := encodeKey([]any{first})
	stored, loaded := tr.groups[g]
	switch {
	case loaded:
	case rows.live != nil:
		stored = rows.live.group(rows, tr, first)
	default:
		tr.missGroups[g] = first
		rows.missed = true
	}
	if tr.changedGroups == nil {
		tr.changedGroups = map[string][]string{}
		for _, k := range tr.order {
			tr.changedGroups[groupOf(k)] = append(tr.changedGroups[groupOf(k)], k)
		}
	}
	keys := append(slices.Clone(stored), tr.changedGroups[g]...)
	slices.Sort(keys)
	keys = slices.Compact(keys)
	var out []any
	for _, k := range keys {
		if c, ok := tr.changed[k]; ok {
			if c.row != nil {
				out = append(out, c.row)
			}
			continue
		}
		if row := tr.stored[k]; row != nil {
			out = append(out, row)
		}
	}
	slices.SortFunc(out, func(a, b any) int { return compareKeys(tr.t.keyValues(a), tr.t.keyValues(b)) })
	return out
}

func (rows *Rows) upsert(t table, row any) {
	tr := rows.of(t)
	tr.set(t.keyOf(row), change{row: row})
}

func (rows *Rows) insert(t table, row any) {
	tr := rows.of(t)
	k := t.keyOf(row)
	if c, ok := tr.changed[k]; ok {
		if c.row == nil {
			tr.set(k, change{row: row})
		}
		return
	}
	stored, known := tr.lookup(k)
	if !known && rows.live != nil {
		stored = rows.live.row(rows, tr, t.keyValues(row))
	}
	// On the batch path a key nobody read is taken for new: were it stored, the write of the
	// batch fails and its events are folded one by one, on the live path.
	if stored == nil {
		tr.set(k, change{row: row})
	}
}

func (rows *Rows) delete(t table, k string, key []any) {
	tr := rows.of(t)
	// On the batch path a deleted row is loaded first: the batch then knows whether it must
	// delete it, and upserts it when the fold records it again.
	if _, known := tr.lookup(k); !known && rows.live == nil {
		if _, changed := tr.changed[k]; !changed {
			tr.missKeys[k] = key
			rows.missed = true
		}
	}
	tr.set(k, change{key: key})
}

func (tr *tableRows) set(k string, c change) {
	if _, ok := tr.changed[k]; !ok {
		tr.order = append(tr.order, k)
		if tr.changedGroups != nil {
			tr.changedGroups[groupOf(k)] = append(tr.changedGroups[groupOf(k)], k)
		}
	}
	tr.changed[k] = c
}

// compareKeys orders key values (strings, int64s) column by column.
func compareKeys(a, b []any) int {
	for i := range a {
		var c int
		switch x := a[i].(type) {
		case string:
			c = strings.Compare(x, b[i].(string))
		case int64:
			c = cmp.Compare(x, b[i].(int64))
		}
		if c != 0 {
			return c
		}
	}
	return 0
}

// write writes the changed rows into set in tx: deleted rows, then rows known as stored with
// upserts. Other rows are inserted when presumeNew (the batch path: new rows are copied in
// on PostgreSQL, and a row stored after all fails the batch, which is then folded event by
// event), else upserted.
func (rows *Rows) write(ctx context.Context, tx *projections.Tx, set projections.Tables, presumeNew bool) error {
	for _, tr := range rows.tables {
		if err := tr.write(ctx, tx, set, presumeNew); err != nil {
			return err
		}
	}
	return nil
}

func (tr *tableRows) write(ctx context.Context, tx *projections.Tx, set projections.Tables, presumeNew bool) error {
	if len(tr.order) == 0 {
		return nil
	}
	var (
		news, olds []any
		gone       [][]any
	)
	for _, k := range tr.order {
		c := tr.changed[k]
		stored, known := tr.lookup(k)
		if c.row == nil {
			if !known || stored != nil {
				gone = append(gone, c.key)
			}
			continue
		}
		values := tr.t.valuesOf(c.row)
		if presumeNew && stored == nil {
			news = append(news, values...)
		} else {
			olds = append(olds, values...)
		}
	}
	name := set.Name(tr.t.base())
	columns := tr.t.columnNames()
	if err := deleteKeys(ctx, tx, name, tr.t, gone); err != nil {
		return err
	}
	if err := tx.Insert(ctx, name, columns, tr.t.keyWidth(), projections.ConflictFail, news); err != nil {
		return err
	}
	return tx.Insert(ctx, name, columns, tr.t.keyWidth(), projections.ConflictUpdate, olds)
}
