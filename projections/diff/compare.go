package diff

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/eventcrm/crm/projections"
)

// queryer runs queries: a database, a connection or a (snapshot) transaction.
type queryer = projections.Queryer

// SetDiff is how a candidate table set differs from a served one, table by table (by base
// name), rows matched by primary key.
type SetDiff struct {
	Served    string      `json:"served"`
	Candidate string      `json:"candidate"`
	Position  int64       `json:"position"`
	Tables    []TableDiff `json:"tables"`
}

// Identical tells whether the two sets hold the same rows.
func (d SetDiff) Identical() bool {
	for _, t := range d.Tables {
		if !t.Identical() {
			return false
		}
	}
	return true
}

// TableDiff is how one table differs. Added rows are in the candidate only, removed rows
// in the served set only, changed rows in both with other values.
type TableDiff struct {
	Table string   `json:"table"`
	Key   []string `json:"key"`
	// Missing is "served" or "candidate" when the table exists on one side only.
	Missing        string      `json:"missing,omitempty"`
	ColumnsAdded   []string    `json:"columns_added,omitempty"`
	ColumnsRemoved []string    `json:"columns_removed,omitempty"`
	ServedRows     int64       `json:"served_rows"`
	CandidateRows  int64       `json:"candidate_rows"`
	Added          int64       `json:"added"`
	Removed        int64       `json:"removed"`
	Changed        int64       `json:"changed"`
	SampleAdded    []Row       `json:"sample_added,omitempty"`
	SampleRemoved  []Row       `json:"sample_removed,omitempty"`
	SampleChanged  []RowChange `json:"sample_changed,omitempty"`
}

// Identical tells whether the table holds the same rows and columns on both sides.
func (t TableDiff) Identical() bool {
	return t.Missing == "" && len(t.ColumnsAdded) == 0 && len(t.ColumnsRemoved) == 0 && t.Added == 0 && t.Removed == 0 && t.Changed == 0
}

// Row is a row by column name.
type Row map[string]any

// RowChange is a row whose key is on both sides with other values: Changes maps each
// differing column to its served and candidate values.
type RowChange struct {
	Key     Row               `json:"key"`
	Changes map[string][2]any `json:"changes"`
}

// tableShape is what comparing a table needs to know of it.
type tableShape struct {
	name    string
	columns []string
	text    map[string]bool // text columns (ordered with COLLATE "C" on PostgreSQL)
	key     []string
}

func shapeOf(ctx context.Context, db *projections.DB, q queryer, name string) (tableShape, bool, error) {
	c, err := db.Dialect.DescribeTable(ctx, q, name)
	if err != nil {
		return tableShape{name: name}, false, err
	}
	s := tableShape{name: name, columns: c.Columns, text: c.Text, key: c.Key}
	if len(s.columns) == 0 {
		return s, false, nil
	}
	if len(s.key) == 0 {
		s.key = s.columns
	}
	return s, true, nil
}

// orderBy orders rows by key columns the way compareValues does.
func orderBy(db *projections.DB, s tableShape, key []string) string {
	parts := make([]string, len(key))
	for i, k := range key {
		parts[i] = k
		if s.text[k] {
			parts[i] = db.Dialect.OrderText(k)
		}
		parts[i] += " NULLS FIRST"
	}
	return strings.Join(parts, ", ")
}

// compareTables merges the rows of served (read with qs) and candidate (read with qc), both
// ordered by key. Two queryers: PostgreSQL cannot stream two results on one connection.
func compareTables(ctx context.Context, db *projections.DB, qs, qc queryer, base string, served, cand *tableShape, sample int) (TableDiff, error) {
	d := TableDiff{Table: base}
	switch {
	case served == nil && cand == nil:
		return d, nil
	case served == nil:
		d.Missing = "served"
		d.Key = cand.key
		n, err := countRows(ctx, qc, cand.name)
		d.CandidateRows, d.Added = n, n
		return d, err
	case cand == nil:
		d.Missing = "candidate"
		d.Key = served.key
		n, err := countRows(ctx, qs, served.name)
		d.ServedRows, d.Removed = n, n
		return d, err
	}
	var common []string
	for _, c := range served.columns {
		if slices.Contains(cand.columns, c) {
			common = append(common, c)
		} else {
			d.ColumnsRemoved = append(d.ColumnsRemoved, c)
		}
	}
	for _, c := range cand.columns {
		if !slices.Contains(served.columns, c) {
			d.ColumnsAdded = append(d.ColumnsAdded, c)
		}
	}
	key := served.key
	if !slices.Equal(served.key, cand.key) || slices.ContainsFunc(key, func(k string) bool { return !slices.Contains(common, k) }) {
		key = common // keys changed: match rows by all common columns
	}
	d.Key = key
	cols := append(slices.Clone(key), slices.DeleteFunc(slices.Clone(common), func(c string) bool { return slices.Contains(key, c) })...)
	query := func(s *tableShape) string {
		return `SELECT ` + strings.Join(cols, ", ") + ` FROM ` + s.name + ` ORDER BY ` + orderBy(db, *s, key)
	}
	ra, err := qs.QueryContext(ctx, query(served))
	if err != nil {
		return d, fmt.Errorf("read %s: %w", served.name, err)
	}
	defer ra.Close()
	rb, err := qc.QueryContext(ctx, query(cand))
	if err != nil {
		return d, fmt.Errorf("read %s: %w", cand.name, err)
	}
	defer rb.Close()
	next := func(rows *sql.Rows, n *int64) ([]any, error) {
		if !rows.Next() {
			return nil, rows.Err()
		}
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		for i, v := range vals {
			vals[i] = normalize(v)
		}
		*n++
		return vals, nil
	}
	row := func(vals []any) Row {
		r := make(Row, len(cols))
		for i, c := range cols {
			r[c] = vals[i]
		}
		return r
	}
	a, err := next(ra, &d.ServedRows)
	if err != nil {
		return d, fmt.Errorf("read %s: %w", served.name, err)
	}
	b, err := next(rb, &d.CandidateRows)
	if err != nil {
		return d, fmt.Errorf("read %s: %w", cand.name, err)
	}
	nk := len(key)
	for a != nil || b != nil {
		c := 0
		switch {
		case a == nil:
			c = 1
		case b == nil:
			c = -1
		default:
			c = projections.CompareRows(a[:nk], b[:nk])
		}
		switch {
		case c < 0:
			d.Removed++
			if len(d.SampleRemoved) < sample {
				d.SampleRemoved = append(d.SampleRemoved, row(a))
			}
		case c > 0:
			d.Added++
			if len(d.SampleAdded) < sample {
				d.SampleAdded = append(d.SampleAdded, row(b))
			}
		default:
			if projections.CompareRows(a[nk:], b[nk:]) != 0 {
				d.Changed++
				if len(d.SampleChanged) < sample {
					ch := RowChange{Key: Row{}, Changes: map[string][2]any{}}
					for i := range nk {
						ch.Key[cols[i]] = a[i]
					}
					for i := nk; i < len(cols); i++ {
						if projections.CompareValues(a[i], b[i]) != 0 {
							ch.Changes[cols[i]] = [2]any{a[i], b[i]}
						}
					}
					d.SampleChanged = append(d.SampleChanged, ch)
				}
			}
		}
		if c <= 0 {
			if a, err = next(ra, &d.ServedRows); err != nil {
				return d, fmt.Errorf("read %s: %w", served.name, err)
			}
		}
		if c >= 0 {
			if b, err = next(rb, &d.CandidateRows); err != nil {
				return d, fmt.Errorf("read %s: %w", cand.name, err)
			}
		}
	}
	return d, nil
}

func countRows(ctx context.Context, q queryer, table string) (int64, error) {
	var n int64
	if err := q.QueryRowContext(ctx, `SELECT count(*) FROM `+table).Scan(&n); err != nil {
		return 0, fmt.Errorf("count %s: %w", table, err)
	}
	return n, nil
}

// normalize turns driver values into comparable ones: int64, float64, string, []byte, bool
// or nil.
func normalize(v any) any {
	switch x := v.(type) {
	case int:
		return int64(x)
	case int32:
		return int64(x)
	case float32:
		return float64(x)
	}
	return v
}

// TableDigest sums up a table order-independently: its row count and the sum, modulo 2^128,
// of a hash of each row (a sum, not a xor, so that duplicate rows do not cancel out).
type TableDigest struct {
	Rows   int64  `json:"rows"`
	Digest string `json:"digest"`
}

// Digest returns the digest of every table of set t of p, by base name: two sets hold the
// same rows when their digests are equal.
func Digest(ctx context.Context, db *projections.DB, p projections.Projection, t projections.Tables) (map[string]TableDigest, error) {
	out := map[string]TableDigest{}
	for _, name := range projections.SetTables(db.Dialect, p, t) {
		s, ok, err := shapeOf(ctx, db, db.SQL, name)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("digest of %s: no such table", name)
		}
		d, err := digestTable(ctx, db, db.SQL, s)
		if err != nil {
			return nil, err
		}
		out[strings.TrimPrefix(name, t.Prefix())] = d
	}
	return out, nil
}

func digestTable(ctx context.Context, db *projections.DB, q queryer, s tableShape) (TableDigest, error) {
	cols := slices.Sorted(slices.Values(s.columns))
	rows, err := q.QueryContext(ctx, `SELECT `+strings.Join(cols, ", ")+` FROM `+s.name)
	if err != nil {
		return TableDigest{}, fmt.Errorf("digest of %s: %w", s.name, err)
	}
	defer rows.Close()
	var (
		d      TableDigest
		hi, lo uint64
		buf    []byte
	)
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return TableDigest{}, fmt.Errorf("digest of %s: %w", s.name, err)
		}
		buf = buf[:0]
		for i, v := range vals {
			buf = append(buf, cols[i]...)
			buf = appendCanonical(append(buf, '='), normalize(v))
			buf = append(buf, 0)
		}
		h := sha256.Sum256(buf)
		a, b := binary.BigEndian.Uint64(h[:8]), binary.BigEndian.Uint64(h[8:16])
		var carry uint64
		lo, carry = addCarry(lo, b)
		hi += a + carry
		d.Rows++
	}
	if err := rows.Err(); err != nil {
		return TableDigest{}, fmt.Errorf("digest of %s: %w", s.name, err)
	}
	var sum [16]byte
	binary.BigEndian.PutUint64(sum[:8], hi)
	binary.BigEndian.PutUint64(sum[8:], lo)
	d.Digest = hex.EncodeToString(sum[:])
	return d, nil
}

func addCarry(a, b uint64) (uint64, uint64) {
	s := a + b
	if s < a {
		return s, 1
	}
	return s, 0
}

// appendCanonical writes a value with its type, so that 1 and "1" differ.
func appendCanonical(buf []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(buf, 'n')
	case int64:
		return strconv.AppendInt(append(buf, 'i'), x, 10)
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return strconv.AppendInt(append(buf, 'i'), int64(x), 10)
		}
		return strconv.AppendFloat(append(buf, 'f'), x, 'g', -1, 64)
	case bool:
		return strconv.AppendBool(append(buf, 'b'), x)
	case string:
		return strconv.AppendQuote(append(buf, 's'), x)
	case []byte:
		return hex.AppendEncode(append(buf, 'x'), x)
	}
	return fmt.Appendf(append(buf, '?'), "%v", v)
}
