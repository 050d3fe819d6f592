package directory

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/projections"
)

// Page sizes of the lists.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// sortKey is a column a list may be sorted by.
type sortKey struct {
	column  string
	numeric bool
}

// order is a list's sort, checked: the key and its direction ("-name" is descending).
type order struct {
	name string
	key  sortKey
	desc bool
}

// parseOrder reads sort: one of keys by name, "-" first for descending; def when empty.
func parseOrder(sort, def string, keys map[string]sortKey) (order, error) {
	if sort == "" {
		sort = def
	}
	name, desc := strings.CutPrefix(sort, "-")
	key, ok := keys[name]
	if !ok {
		names := slices.Sorted(maps.Keys(keys))
		return order{}, domain.Invalid("sort", "%q is not one of %s (a leading - sorts descending)", sort, strings.Join(names, ", "))
	}
	return order{name: sort, key: key, desc: desc}, nil
}

// cursor is the position after the last row of a page: the sort it belongs to, the row's
// sort key and its id. Keyset paging: the next page starts after it whatever was added or
// removed before it meanwhile, so no row is shown twice or skipped unless its own sort key
// changed between the pages.
type cursor struct {
	Sort string `json:"s"`
	Text string `json:"t,omitempty"`
	Num  int64  `json:"n,omitempty"`
	ID   string `json:"i"`
}

func (c cursor) encode() string {
	b, _ := json.Marshal(c) // strings and an integer always encode
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string, o order) (*cursor, error) {
	if s == "" {
		return nil, nil
	}
	var c cursor
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil || c.ID == "" {
		return nil, domain.Invalid("cursor", "is not a cursor of this list")
	}
	if c.Sort != o.name {
		return nil, domain.Invalid("cursor", "belongs to sort %s, not %s", c.Sort, o.name)
	}
	return &c, nil
}

// limitOf checks a page size: DefaultLimit when 0.
func limitOf(limit int) (int, error) {
	switch {
	case limit == 0:
		return DefaultLimit, nil
	case limit < 0 || limit > MaxLimit:
		return 0, domain.Invalid("limit", "%d is outside 1..%d", limit, MaxLimit)
	}
	return limit, nil
}

// filter is the WHERE clause of a list, built condition by condition.
type filter struct {
	conds []string
	args  []any
}

func (f *filter) add(cond string, args ...any) {
	f.conds = append(f.conds, cond)
	f.args = append(f.args, args...)
}

func (f *filter) where() string {
	if len(f.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(f.conds, " AND ")
}

// search adds q, normalised, as a substring of the search column of table (aliased alias).
func (f *filter) search(d projections.Dialect, table, alias, q string) {
	if q == "" {
		return
	}
	cond, arg := d.TextMatch(table, alias, "search", Normalize(q))
	f.add(cond, arg)
}

// list is one list question: what it reads and how it pages.
type list struct {
	from string // FROM clause, the listed table aliased x
	// countFrom is the FROM clause of the total, when the filter needs less than from.
	countFrom string
	id        string // the id column of x
	cols      string // the columns read
	filter    filter
	order     order
	after     *cursor
	limit     int
}

// keyset is the condition that starts a page after its cursor.
func (l *list) keyset() (string, []any) {
	k, op := "x."+l.order.key.column, ">"
	if l.order.desc {
		op = "<"
	}
	var v any = l.after.Text
	if l.order.key.numeric {
		v = l.after.Num
	}
	return "(" + k + " " + op + " ? OR (" + k + " = ? AND x." + l.id + " " + op + " ?))", []any{v, v, l.after.ID}
}

func (l *list) pageQuery() (string, []any) {
	f := filter{conds: append([]string(nil), l.filter.conds...), args: append([]any(nil), l.filter.args...)}
	if l.after != nil {
		cond, args := l.keyset()
		f.add(cond, args...)
	}
	dir := " ASC"
	if l.order.desc {
		dir = " DESC"
	}
	return "SELECT " + l.cols + " FROM " + l.from + f.where() + " ORDER BY x." + l.order.key.column + dir +
		", x." + l.id + dir + " LIMIT ?", append(f.args, l.limit+1)
}

// read runs the list in one read transaction: the exact total of the filter and one page,
// both of one state. scan reads a row and returns its sort key and id for the cursor.
func (l *list) read(ctx context.Context, db *projections.DB, scan func(*sql.Rows) (cursor, error)) (total int64, next string, err error) {
	err = db.ReadOnly(ctx, func(tx *sql.Tx) error {
		from := l.from
		if l.countFrom != "" {
			from = l.countFrom
		}
		count := "SELECT COUNT(*) FROM " + from + l.filter.where()
		if err := tx.QueryRowContext(ctx, db.Dialect.Rebind(count), l.filter.args...).Scan(&total); err != nil {
			return fmt.Errorf("count: %w", err)
		}
		stmt, args := l.pageQuery()
		rows, err := tx.QueryContext(ctx, db.Dialect.Rebind(stmt), args...)
		if err != nil {
			return fmt.Errorf("page: %w", err)
		}
		defer rows.Close()
		var last cursor
		for n := 0; rows.Next(); n++ {
			if n == l.limit {
				next = last.encode()
				break
			}
			if last, err = scan(rows); err != nil {
				return fmt.Errorf("page: %w", err)
			}
			last.Sort = l.order.name
		}
		return rows.Err()
	})
	return total, next, err
}

// timeOf is a stored time, nil for none (0).
func timeOf(micros int64) *time.Time {
	if micros == 0 {
		return nil
	}
	t := time.UnixMicro(micros).UTC()
	return &t
}

// timeRange reads a from/to pair of times or dates: a date stands for its whole day (UTC),
// so to=2024-03-31 includes that day. It returns the bounds in microseconds, to exclusive.
func timeRange(fromField, from, toField, to string) (lo, hi int64, err error) {
	lo, hi = 0, 0
	if from != "" {
		t, _, err := parseTimeOrDate(fromField, from)
		if err != nil {
			return 0, 0, err
		}
		lo = t.UnixMicro()
	}
	if to != "" {
		t, date, err := parseTimeOrDate(toField, to)
		if err != nil {
			return 0, 0, err
		}
		if date {
			t = t.AddDate(0, 0, 1)
		} else {
			t = t.Add(time.Microsecond)
		}
		hi = t.UnixMicro()
	}
	return lo, hi, nil
}

func parseTimeOrDate(field, s string) (t time.Time, date bool, err error) {
	if t, err := time.Parse(domain.DateLayout, s); err == nil {
		return t, true, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), false, nil
	}
	return time.Time{}, false, domain.Invalid(field, "%q is neither a date (YYYY-MM-DD) nor an RFC 3339 time", s)
}

// checkDate checks a date parameter (YYYY-MM-DD).
func checkDate(field, s string) error {
	if s == "" {
		return nil
	}
	if _, err := time.Parse(domain.DateLayout, s); err != nil {
		return domain.Invalid(field, "%q is not a date (YYYY-MM-DD)", s)
	}
	return nil
}
