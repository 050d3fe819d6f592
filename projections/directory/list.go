package directory

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/paging"
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

func decodeCursor(s string, o order) (*cursor, error) {
	c, err := paging.Cursor(s, "cursor", "is not a cursor of this list", func(c cursor) bool { return c.ID != "" })
	if err != nil || c == nil {
		return nil, err
	}
	if c.Sort != o.name {
		return nil, domain.Invalid("cursor", "belongs to sort %s, not %s", c.Sort, o.name)
	}
	return c, nil
}

// limitOf checks a page size: DefaultLimit when 0.
func limitOf(limit int) (int, error) { return paging.Limit(limit, DefaultLimit, MaxLimit) }

// filter is the WHERE clause of a list, built condition by condition.
type filter struct {
	conds []string
	args  []any
}

func (f *filter) add(cond string, args ...any) {
	f.conds = append(f.conds, cond)
	f.args = append(f.args, args...)
}

func (f *filter) clone() filter {
	return filter{conds: append([]string(nil), f.conds...), args: append([]any(nil), f.args...)}
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
	// kept, when set, reads the total from kept counts instead of counting the rows.
	kept *keptTotal
	// postings, when set, is a search of the posting table: one more condition of the
	// filter, written once the postings are counted (see postings.plan).
	postings *postings
	// searchAlone tells that the postings are the whole filter: the total is their count.
	searchAlone bool
	// prepare, when set, reads what the rows are shown with, in the read transaction of the
	// page (the deals list: the stage probabilities in force).
	prepare func(ctx context.Context, tx *sql.Tx) error
	// matches, when set, is a search of a text longer than the postings answer, on the rows
	// of table (x in from), which a page reads first (see matchesFirst).
	matches filter
	table   string
}

// keptTotal is a question that reads a list's exact total from rows the fold keeps.
type keptTotal struct {
	stmt string
	args []any
}

// postings restricts a list to the rows whose search column holds a text of one or two
// characters (a gram), from the postings the fold keeps: the rows that hold it. The condition
// selects the same rows whichever way it is written; the way tells the database which side
// to start from, which its planner does not know (SQLite keeps no statistics, and PostgreSQL
// takes a look-up per posting for dearer than it is once the tables are in memory).
type postings struct {
	// table and counts are the postings and their number per gram (gram '': the rows of the
	// list); text is the gram, normalised.
	table, counts, text string
	// sortColumn is the column of the postings that holds the list's default sort key: a
	// page in that order can be read from the postings in order.
	sortColumn string
	// listTable is the list's table, whose search column the trigram index serves.
	listTable string
}

// shortPostings is the search of q in the postings of a list (tables postings and counts of
// set t, the default sort key in column sortColumn; the list's table listTable), when q,
// normalised, is one to three characters (nil else: the trigram index answers a longer q).
func shortPostings(t projections.Tables, listTable, postingsTable, countsTable, sortColumn, q string) *postings {
	q = Normalize(q)
	if q == "" || utf8.RuneCountInString(q) > countedSearch {
		return nil
	}
	return &postings{table: t.Name(postingsTable), counts: t.Name(countsTable), text: q, sortColumn: sortColumn,
		listTable: t.Name(listTable)}
}

// matchesFirst makes a page of the list read the rows of table (aliased x in its FROM
// clause) whose search column holds q from the trigram index first, then sort them, when q
// is longer than a search the postings answer; its total counts them. Planned once for any
// q, a page in the order of another index walks that index down the whole table in the hope
// of meeting matches, which a text of four characters or more seldom has: the matches are
// fewer to sort than the rows such a walk reads.
func (l *list) matchesFirst(d projections.Dialect, table, q string) {
	if utf8.RuneCountInString(Normalize(q)) <= countedSearch {
		return
	}
	l.table = table
	l.matches.search(d, table, "x", q)
}

// filterWithMatches makes the matches a page reads first those the filter keeps too, read
// with it, when the list has them (see matchesFirst): for a list whose filter is on the rows
// of the matched table alone. The database then reads the matches with the indexes of the
// filter as well (one owner's contacts: the owner's index and the trigram index combined)
// rather than every row that holds the text.
func (l *list) filterWithMatches() {
	if len(l.matches.conds) == 0 {
		return
	}
	l.matches = filter{conds: append(l.filter.conds, l.matches.conds...), args: append(l.filter.args, l.matches.args...)}
	l.filter = filter{}
}

// plan is how a page and its total read the postings of a search.
type plan struct {
	// count is the number of postings: the rows that match.
	count int64
	// walk tells that the page is read from the postings in their order (the page's sort is
	// theirs): as many postings as the page shows, each joined to its row.
	walk bool
	// page and total (for a filter with more than the search) are the conditions, with
	// their arguments.
	page, total         string
	pageArgs, totalArgs []any
}

// plan reads how many rows the postings and the list hold, and chooses how to read a page.
// When the page is in the order the postings keep (the list's default sort), and the search
// is the whole filter or its matches are a quarter of the list or more, the page is read from
// the postings in order, each joined to its row, until it is full: as many rows as it shows
// when nothing else filters. Else from the postings (read first, and passed as the keys of
// the page, which the database looks up and sorts) unless they are a quarter of the list or
// more; then down the sorted list, each row probed in the postings (a subquery per row, which
// neither database turns into a join that would read every posting) until the page is full,
// which such common matches do soon. Matches are not spread evenly in the order of a list (a
// family name's contacts are next to each other by name): a search with few matches and
// other filters is never sent down a list in the hope of meeting its few matches early.
//
// A text of three characters has no postings of its own, only its count: its page is read
// from the postings of its rarer pair in order, the text checked on each row, when its
// matches are a quarter of that pair's or more (a page then reads about four rows per row it
// shows); else the trigram index finds its rows.
func (p *postings) plan(ctx context.Context, tx *sql.Tx, d projections.Dialect, l *list) (plan, error) {
	var pl plan
	r := []rune(p.text)
	grams := []string{"", p.text}
	if len(r) > shortSearch {
		grams = append(grams, string(r[:2]), string(r[1:3]))
	}
	counts, err := p.read(ctx, tx, d, grams)
	if err != nil {
		return pl, err
	}
	listed := counts[""]
	pl.count = counts[p.text]
	id := l.id
	common := pl.count*4 > listed
	inOrder := l.order.key.column == p.sortColumn && (l.searchAlone || common)
	if len(r) > shortSearch {
		pair, other := grams[2], grams[3]
		if counts[other] < counts[pair] {
			pair, other = other, pair
		}
		pairCount := counts[pair]
		cond, arg := d.TextMatch(p.listTable, "x", "search", p.text)
		pl.total, pl.totalArgs = cond, []any{arg}
		if inOrder && pl.count*4 >= pairCount {
			pl.walk = true
			pl.page = "g.gram = ? AND x." + id + " = g." + id + " AND " + contains(d, "x.search")
			pl.pageArgs = []any{pair, p.text}
			if other != pair {
				// A row holds the text only if it holds both pairs: the postings of the
				// other pair, in the same order, leave out most rows that hold one pair only
				// before their row is looked up (a family name's rows are next to each other
				// in the order, so that the rarer pair alone can be thousands of look-ups
				// for a page).
				// The other pair is probed per posting (a subquery, which neither database
				// turns into a join): written as a join, a plan made for any text hashes
				// the postings of both pairs and sorts every match before the first row.
				pl.page += " AND (SELECT 1 FROM " + p.table + " h WHERE h.gram = ? AND h." + p.sortColumn + " = g." + p.sortColumn +
					" AND h." + id + " = g." + id + ") = 1"
				pl.pageArgs = append(pl.pageArgs, other)
			}
			return pl, nil
		}
		pl.page, pl.pageArgs = pl.total, pl.totalArgs
		return pl, nil
	}
	pl.total = "x." + id + " IN (SELECT g." + id + " FROM " + p.table + " g WHERE g.gram = ?)"
	pl.totalArgs = []any{p.text}
	switch {
	case inOrder:
		pl.walk = true
		pl.page, pl.pageArgs = "g.gram = ? AND x."+id+" = g."+id, []any{p.text}
		return pl, nil
	case common:
		pl.page = "(SELECT 1 FROM " + p.table + " g WHERE g.gram = ? AND g." + id + " = x." + id + ") = 1"
		pl.pageArgs = []any{p.text}
		return pl, nil
	}
	keys, err := p.ids(ctx, tx, d, id, p.text, pl.count)
	if err != nil {
		return pl, err
	}
	cond, arg, err := d.InKeys("x."+id, keys)
	if err != nil {
		return pl, err
	}
	pl.page, pl.pageArgs = cond, []any{arg}
	pl.total, pl.totalArgs = pl.page, pl.pageArgs
	return pl, nil
}

// read reads the kept counts of grams (”: the rows of the list) in one question.
func (p *postings) read(ctx context.Context, tx *sql.Tx, d projections.Dialect, grams []string) (map[string]int64, error) {
	args := make([]any, len(grams))
	for i, g := range grams {
		args[i] = g
	}
	stmt := "SELECT gram, matches FROM " + p.counts + " WHERE gram IN (?" + strings.Repeat(", ?", len(grams)-1) + ")"
	rows, err := tx.QueryContext(ctx, d.Rebind(stmt), args...)
	if err != nil {
		return nil, fmt.Errorf("postings: %w", err)
	}
	defer rows.Close()
	counts := make(map[string]int64, len(grams))
	for rows.Next() {
		var (
			g string
			n int64
		)
		if err := rows.Scan(&g, &n); err != nil {
			return nil, fmt.Errorf("postings: %w", err)
		}
		counts[g] += n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postings: %w", err)
	}
	return counts, nil
}

// contains is the condition, with one placeholder, that column holds a text, checked on the
// row (no index serves it).
func contains(d projections.Dialect, column string) string {
	if d == projections.Postgres {
		return "strpos(" + column + ", ?) > 0"
	}
	return "instr(" + column + ", ?) > 0"
}

// ids reads the ids of the postings of gram.
func (p *postings) ids(ctx context.Context, tx *sql.Tx, d projections.Dialect, id, gram string, count int64) ([]string, error) {
	rows, err := tx.QueryContext(ctx, d.Rebind("SELECT "+id+" FROM "+p.table+" WHERE gram = ?"), gram)
	if err != nil {
		return nil, fmt.Errorf("postings: %w", err)
	}
	defer rows.Close()
	keys := make([]string, 0, count)
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, fmt.Errorf("postings: %w", err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postings: %w", err)
	}
	return keys, nil
}

// keyset is the condition that starts a page after its cursor, on the sort key and the id
// of the table aliased alias.
func (l *list) keyset(alias string) (string, []any) {
	k, op := alias+"."+l.order.key.column, ">"
	if l.order.desc {
		op = "<"
	}
	var v any = l.after.Text
	if l.order.key.numeric {
		v = l.after.Num
	}
	// The bound on the key alone lets an index start at the cursor rather than filter every
	// entry before it.
	return "(" + k + " " + op + "= ? AND (" + k + " " + op + " ? OR (" + k + " = ? AND " + alias + "." + l.id + " " + op + " ?)))",
		[]any{v, v, v, l.after.ID}
}

// pageQuery is the question of a page. A page read from the postings in order (plan.walk)
// starts from them (on SQLite a CROSS JOIN keeps them first) and is sorted by their key,
// which is the row's.
func (l *list) pageQuery(pl *plan) (string, []any) {
	f := l.filter.clone()
	from, alias := l.from, "x"
	if pl != nil {
		f.add(pl.page, pl.pageArgs...)
		if pl.walk {
			from, alias = l.postings.table+" g CROSS JOIN "+l.from, "g"
		}
	}
	if l.after != nil {
		cond, args := l.keyset(alias)
		f.add(cond, args...)
	}
	dir := " ASC"
	if l.order.desc {
		dir = " DESC"
	}
	with, args := "", f.args
	if len(l.matches.conds) > 0 {
		// The matches, read apart from the rest of the question (a CTE materialized is
		// planned on its own), are all the rows the page sorts.
		with = "WITH m AS MATERIALIZED (SELECT * FROM " + l.table + " x" + l.matches.where() + ") "
		from = strings.Replace(from, l.table+" x", "m x", 1)
		args = append(append([]any(nil), l.matches.args...), args...)
	}
	return with + "SELECT " + l.cols + " FROM " + from + f.where() + " ORDER BY " + alias + "." + l.order.key.column + dir +
		", " + alias + "." + l.id + dir + " LIMIT ?", append(args, l.limit+1)
}

// read runs the list in one read transaction: the exact total of the filter and one page,
// both of one state. scan reads a row and returns its sort key and id for the cursor.
func (l *list) read(ctx context.Context, db *projections.DB, scan func(*sql.Rows) (cursor, error)) (total int64, next string, err error) {
	err = db.ReadOnly(ctx, func(tx *sql.Tx) error {
		if l.prepare != nil {
			if err := l.prepare(ctx, tx); err != nil {
				return err
			}
		}
		var pl *plan
		if l.postings != nil {
			p, err := l.postings.plan(ctx, tx, db.Dialect, l)
			if err != nil {
				return err
			}
			pl = &p
		}
		if total, err = l.total(ctx, tx, db.Dialect, pl); err != nil {
			return fmt.Errorf("count: %w", err)
		}
		stmt, args := l.pageQuery(pl)
		rows, err := tx.QueryContext(ctx, db.Dialect.Rebind(stmt), args...)
		if err != nil {
			return fmt.Errorf("page: %w", err)
		}
		defer rows.Close()
		var last cursor
		for n := 0; rows.Next(); n++ {
			if n == l.limit {
				next = paging.Encode(last)
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

// total counts the rows of the filter: from kept counts when the list has them (a search
// alone: its postings), else row by row.
func (l *list) total(ctx context.Context, tx *sql.Tx, d projections.Dialect, pl *plan) (int64, error) {
	var total int64
	switch {
	case pl != nil && l.searchAlone:
		return pl.count, nil
	case l.kept != nil:
		err := tx.QueryRowContext(ctx, d.Rebind(l.kept.stmt), l.kept.args...).Scan(&total)
		return total, err
	}
	stmt, args := l.countQuery(pl)
	err := tx.QueryRowContext(ctx, d.Rebind(stmt), args...).Scan(&total)
	return total, err
}

// countQuery is the question that counts the rows of the filter one by one.
func (l *list) countQuery(pl *plan) (string, []any) {
	from := l.from
	if l.countFrom != "" {
		from = l.countFrom
	}
	f := l.filter.clone()
	if pl != nil {
		f.add(pl.total, pl.totalArgs...)
	}
	f.conds = append(f.conds, l.matches.conds...)
	f.args = append(f.args, l.matches.args...)
	return "SELECT COUNT(*) FROM " + from + f.where(), f.args
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
