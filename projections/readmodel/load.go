package readmodel

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/eventcrm/crm/projections"
)

// live reads the rows a fold asks for on the live path, from the transaction, one at a time.
type live struct {
	ctx context.Context
	tx  *projections.Tx
	set projections.Tables
}

// readRow reads the row of key k on the live path and remembers it; it returns its index in
// loaded, -1 when none is stored.
func (tr *tableRows[R]) readRow(rows *Rows, k rowKey) int32 {
	if rows.err != nil {
		return -1
	}
	l := rows.live
	columns := tr.t.columnNames()
	cond := make([]string, tr.t.key)
	for i, c := range columns[:tr.t.key] {
		cond[i] = c + " = ?"
	}
	query := selectFrom(tr.t, l.set) + ` WHERE ` + strings.Join(cond, " AND ")
	start := len(tr.loaded)
	if err := tr.query(l, query, tr.t.shape.values(k)...); err != nil {
		rows.err = fmt.Errorf("read %s: %w", l.set.Name(tr.t.base()), err)
		return -1
	}
	tr.stored[k] = -1
	if len(tr.loaded) > start {
		tr.stored[k] = int32(start)
	}
	return tr.stored[k]
}

// readGroup reads the rows of group g on the live path and remembers them; it returns their
// keys.
func (tr *tableRows[R]) readGroup(rows *Rows, g rowKey) []rowKey {
	if rows.err != nil {
		return nil
	}
	l := rows.live
	query := selectFrom(tr.t, l.set) + ` WHERE ` + tr.t.columnNames()[0] + ` = ?`
	start := len(tr.loaded)
	if err := tr.query(l, query, tr.t.shape.groupValue(g)); err != nil {
		rows.err = fmt.Errorf("read %s: %w", l.set.Name(tr.t.base()), err)
		return nil
	}
	keys := tr.remember(start)
	tr.groups[g] = keys
	return keys
}

// query runs a query of the live path and appends the rows it reads to loaded. On SQLite it
// is prepared once per transaction: a catch-up transaction folds hundreds of events, and
// SQLite would parse the text again for each. PostgreSQL's driver keeps prepared statements
// per connection already: one round trip.
func (tr *tableRows[R]) query(l *live, query string, args ...any) error {
	var (
		rs  *sql.Rows
		err error
	)
	if l.tx.Dialect().Features().PreparesEachStatement {
		var st projections.Stmt
		if st, err = l.tx.Prepared(l.ctx, query); err == nil {
			rs, err = st.QueryContext(l.ctx, args...)
		}
	} else {
		rs, err = l.tx.Query(l.ctx, query, args...)
	}
	if err != nil {
		return err
	}
	return tr.scanAll(rs)
}

// remember records the rows loaded from index start as stored and returns their keys.
func (tr *tableRows[R]) remember(start int) []rowKey {
	keys := make([]rowKey, 0, len(tr.loaded)-start)
	for i := start; i < len(tr.loaded); i++ {
		k := tr.t.keyOf(&tr.loaded[i])
		tr.stored[k] = int32(i)
		keys = append(keys, k)
	}
	return keys
}

func selectFrom(t table, set projections.Tables) string {
	return `SELECT ` + strings.Join(t.columnNames(), ", ") + ` FROM ` + set.Name(t.base())
}

// scanAll appends the rows of rs to loaded.
func (tr *tableRows[R]) scanAll(rs *sql.Rows) error {
	defer rs.Close()
	s := scanner[R]{t: tr.t}
	var zero R
	for rs.Next() {
		tr.loaded = append(tr.loaded, zero)
		if err := s.scan(rs, &tr.loaded[len(tr.loaded)-1]); err != nil {
			tr.loaded = tr.loaded[:len(tr.loaded)-1]
			return err
		}
	}
	return rs.Err()
}

// loadMisses loads, in one query per table and kind, the rows and groups a batch pass missed;
// keys not found are remembered as not stored.
func (rows *Rows) loadMisses(ctx context.Context, tx *projections.Tx, set projections.Tables) error {
	for _, tr := range rows.tables {
		if err := tr.loadMisses(ctx, tx, set, rows); err != nil {
			return err
		}
	}
	return nil
}

func (tr *tableRows[R]) loadMisses(ctx context.Context, tx *projections.Tx, set projections.Tables, rows *Rows) error {
	start := len(tr.loaded)
	if err := tr.loadKeys(ctx, tx, set); err != nil {
		return err
	}
	tr.follow(rows, tr.loaded[start:])
	return tr.loadGroups(ctx, tx, set)
}

// follow adds to the misses of the tables declared after tr the rows the fold reads after
// the rows found (see Table.Then), so that they are loaded in the same round.
func (tr *tableRows[R]) follow(rows *Rows, found []R) {
	for _, f := range tr.t.then {
		next := rows.of(f.next)
		for i := range found {
			if key := f.key(&found[i]); key != nil {
				next.want(key)
			}
		}
	}
}

func (tr *tableRows[R]) want(key []any) {
	k := tr.t.shape.of(key)
	if _, known := tr.lookup(k); !known {
		tr.missKeys[k] = struct{}{}
	}
}

// loadKeys loads the rows of the keys missed.
func (tr *tableRows[R]) loadKeys(ctx context.Context, tx *projections.Tx, set projections.Tables) error {
	if len(tr.missKeys) == 0 {
		return nil
	}
	keys := make([][]any, 0, len(tr.missKeys))
	for k := range tr.missKeys {
		keys = append(keys, tr.t.shape.values(k))
	}
	start := len(tr.loaded)
	if err := tr.loadWhere(ctx, tx, set, tr.t.key, keys); err != nil {
		return err
	}
	for k := range tr.missKeys {
		tr.stored[k] = -1
	}
	tr.remember(start)
	return nil
}

func (tr *tableRows[R]) loadGroups(ctx context.Context, tx *projections.Tx, set projections.Tables) error {
	if len(tr.missGroups) == 0 {
		return nil
	}
	firsts := make([][]any, 0, len(tr.missGroups))
	for g := range tr.missGroups {
		firsts = append(firsts, []any{tr.t.shape.groupValue(g)})
	}
	start := len(tr.loaded)
	if err := tr.loadWhere(ctx, tx, set, 1, firsts); err != nil {
		return err
	}
	byGroup := map[rowKey][]rowKey{}
	for _, k := range tr.remember(start) {
		g := tr.t.shape.group(k)
		byGroup[g] = append(byGroup[g], k)
	}
	for g := range tr.missGroups {
		tr.groups[g] = byGroup[g]
	}
	return nil
}

// loadWhere appends to loaded the rows of the table whose first width key columns are one
// of keys.
func (tr *tableRows[R]) loadWhere(ctx context.Context, tx *projections.Tx, set projections.Tables, width int, keys [][]any) error {
	query, args, err := keysQuery(tx.Dialect(), tr.t, set, width, keys)
	if err != nil {
		return err
	}
	rs, err := tx.Query(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("load %s: %w", set.Name(tr.t.base()), err)
	}
	if err := tr.scanAll(rs); err != nil {
		return fmt.Errorf("load %s: %w", set.Name(tr.t.base()), err)
	}
	return nil
}

// keysQuery selects the rows of t whose first width key columns are one of keys, in one
// statement whatever the number of keys: a JSON array read by json_each on SQLite, arrays
// unnested on PostgreSQL. On SQLite a key of several columns is joined from the list, so that
// the primary key is searched on all of them.
func keysQuery(d projections.Dialect, t table, set projections.Tables, width int, keys [][]any) (string, []any, error) {
	columns := t.columnNames()[:width]
	kinds := t.keyKinds()[:width]
	if d.Features().BindsArrays {
		args := make([]any, width)
		casts := make([]string, width)
		for i := range width {
			args[i], casts[i] = pgArray(kinds[i], keys, i)
		}
		if width == 1 {
			return selectFrom(t, set) + ` WHERE ` + columns[0] + ` = ANY(` + casts[0] + `)`, args, nil
		}
		return selectFrom(t, set) + ` WHERE (` + strings.Join(columns, ", ") + `) IN (SELECT * FROM unnest(` +
			strings.Join(casts, ", ") + `))`, args, nil
	}
	if width == 1 {
		list := make([]any, len(keys))
		for i, k := range keys {
			list[i] = k[0]
		}
		raw, err := json.Marshal(list)
		if err != nil {
			return "", nil, fmt.Errorf("keys of %s: %w", t.base(), err)
		}
		return selectFrom(t, set) + ` WHERE ` + columns[0] + ` IN (SELECT value FROM json_each(?))`, []any{string(raw)}, nil
	}
	raw, err := json.Marshal(keys)
	if err != nil {
		return "", nil, fmt.Errorf("keys of %s: %w", t.base(), err)
	}
	all := t.columnNames()
	selected := make([]string, len(all))
	for i, c := range all {
		selected[i] = "r." + c
	}
	on := make([]string, width)
	for i, c := range columns {
		on[i] = "r." + c + " = k.value ->> " + strconv.Itoa(i)
	}
	return `SELECT ` + strings.Join(selected, ", ") + ` FROM json_each(?) AS k CROSS JOIN ` + set.Name(t.base()) +
		` AS r ON ` + strings.Join(on, " AND "), []any{string(raw)}, nil
}

// pgArray is column i of keys as a PostgreSQL array argument, with its cast.
func pgArray(k kind, keys [][]any, i int) (any, string) {
	if k == kindText {
		list := make([]string, len(keys))
		for j, key := range keys {
			list[j] = key[i].(string)
		}
		return list, "?::text[]"
	}
	list := make([]int64, len(keys))
	for j, key := range keys {
		list[j] = key[i].(int64)
	}
	return list, "?::bigint[]"
}

// deleteKeys deletes the rows of keys from the table name.
func deleteKeys(ctx context.Context, tx *projections.Tx, name string, t table, keys [][]any) error {
	columns := t.columnNames()[:t.keyWidth()]
	cond := make([]string, len(columns))
	for i, c := range columns {
		cond[i] = c + " = ?"
	}
	query := `DELETE FROM ` + name + ` WHERE ` + strings.Join(cond, " AND ")
	for _, key := range keys {
		if _, err := tx.Exec(ctx, query, key...); err != nil {
			return fmt.Errorf("delete from %s: %w", name, err)
		}
	}
	return nil
}
