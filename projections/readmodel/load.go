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

// row reads the row of key and remembers it (nil: none is stored).
func (l *live) row(rows *Rows, tr *tableRows, key []any) any {
	if rows.err != nil {
		return nil
	}
	cond := make([]string, len(key))
	for i, c := range tr.t.columnNames()[:len(key)] {
		cond[i] = c + " = ?"
	}
	query := selectFrom(tr.t, l.set) + ` WHERE ` + strings.Join(cond, " AND ")
	found, err := l.query(tr, query, key...)
	if err != nil {
		rows.err = fmt.Errorf("read %s: %w", l.set.Name(tr.t.base()), err)
		return nil
	}
	k := encodeKey(key)
	tr.stored[k] = nil
	if len(found) > 0 {
		tr.stored[k] = found[0]
	}
	return tr.stored[k]
}

// group reads the rows of a group and remembers them; it returns their keys.
func (l *live) group(rows *Rows, tr *tableRows, first any) []string {
	if rows.err != nil {
		return nil
	}
	query := selectFrom(tr.t, l.set) + ` WHERE ` + tr.t.columnNames()[0] + ` = ?`
	found, err := l.query(tr, query, first)
	if err != nil {
		rows.err = fmt.Errorf("read %s: %w", l.set.Name(tr.t.base()), err)
		return nil
	}
	return tr.remember(encodeKey([]any{first}), found)
}

// query runs a query of the live path. On SQLite it is prepared once per transaction: a
// catch-up transaction folds hundreds of events, and SQLite would parse the text again for
// each. PostgreSQL's driver keeps prepared statements per connection already: one round trip.
func (l *live) query(tr *tableRows, query string, args ...any) ([]any, error) {
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
		return nil, err
	}
	return scanAll(tr.t, rs)
}

// remember records the rows of a group loaded whole and returns their keys.
func (tr *tableRows) remember(g string, found []any) []string {
	keys := make([]string, 0, len(found))
	for _, row := range found {
		k := tr.t.keyOf(row)
		tr.stored[k] = row
		keys = append(keys, k)
	}
	tr.groups[g] = keys
	return keys
}

func selectFrom(t table, set projections.Tables) string {
	return `SELECT ` + strings.Join(t.columnNames(), ", ") + ` FROM ` + set.Name(t.base())
}

func scanAll(t table, rs *sql.Rows) ([]any, error) {
	defer rs.Close()
	var out []any
	for rs.Next() {
		row, err := t.scan(rs)
		if err != nil {
			return nil, err
		}
		out = append(out, row)
	}
	return out, rs.Err()
}

// loadMisses loads, in one query per table and kind, the rows and groups a batch pass missed;
// keys not found are remembered as not stored.
func (rows *Rows) loadMisses(ctx context.Context, tx *projections.Tx, set projections.Tables) error {
	for _, tr := range rows.tables {
		found, err := tr.loadKeys(ctx, tx, set)
		if err != nil {
			return err
		}
		rows.follow(tr, found)
		if err := tr.loadGroups(ctx, tx, set); err != nil {
			return err
		}
	}
	return nil
}

// follow adds to the misses of the tables declared after tr the rows the fold reads after
// the rows found (see Table.Then), so that they are loaded in the same round.
func (rows *Rows) follow(tr *tableRows, found []any) {
	for _, f := range tr.t.follows() {
		next := rows.of(f.next)
		for _, row := range found {
			key := f.key(row)
			if key == nil {
				continue
			}
			k := encodeKey(key)
			if _, known := next.lookup(k); !known {
				next.missKeys[k] = key
			}
		}
	}
}

// loadKeys loads the rows of the keys missed and returns those found.
func (tr *tableRows) loadKeys(ctx context.Context, tx *projections.Tx, set projections.Tables) ([]any, error) {
	if len(tr.missKeys) == 0 {
		return nil, nil
	}
	keys := make([][]any, 0, len(tr.missKeys))
	for _, key := range tr.missKeys {
		keys = append(keys, key)
	}
	found, err := loadWhere(ctx, tx, set, tr.t, tr.t.keyWidth(), keys)
	if err != nil {
		return nil, err
	}
	for k := range tr.missKeys {
		tr.stored[k] = nil
	}
	for _, row := range found {
		tr.stored[tr.t.keyOf(row)] = row
	}
	return found, nil
}

func (tr *tableRows) loadGroups(ctx context.Context, tx *projections.Tx, set projections.Tables) error {
	if len(tr.missGroups) == 0 {
		return nil
	}
	firsts := make([][]any, 0, len(tr.missGroups))
	for _, first := range tr.missGroups {
		firsts = append(firsts, []any{first})
	}
	found, err := loadWhere(ctx, tx, set, tr.t, 1, firsts)
	if err != nil {
		return err
	}
	byGroup := map[string][]any{}
	for _, row := range found {
		g := groupOf(tr.t.keyOf(row))
		byGroup[g] = append(byGroup[g], row)
	}
	for g := range tr.missGroups {
		tr.remember(g, byGroup[g])
	}
	return nil
}

// loadWhere reads the rows of t whose first width key columns are one of keys.
func loadWhere(ctx context.Context, tx *projections.Tx, set projections.Tables, t table, width int, keys [][]any) ([]any, error) {
	query, args, err := keysQuery(tx.Dialect(), t, set, width, keys)
	if err != nil {
		return nil, err
	}
	rs, err := tx.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", set.Name(t.base()), err)
	}
	found, err := scanAll(t, rs)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", set.Name(t.base()), err)
	}
	return found, nil
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
