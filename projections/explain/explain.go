// Package explain keeps what each figure of a read model is made of, so that any figure can be
// asked for its parts: the contacts, deals or tasks and the events that make it up, which add
// up to it.
//
// A read model declares one parts table (NewTable) and, wherever its fold adds a fact to a
// figure, records the fact as a Part (the entity, the figure, the event, the bucket it counts
// in, and what it counts); where a later event takes it away (a deal reopened, a newer survey),
// the fold revokes the part at that event's business time rather than deleting it. The parts
// standing at a business time T are then exactly the facts that make up every figure as of T:
//
//	at <= T AND (until_at IS NULL OR until_at > T)
//
// so the same table answers "explain this number" and, summed, any figure as of a past time or
// under a combination of filters no aggregate is kept for. Read reads one figure's parts, a
// page at a time, with their totals.
package explain

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/readmodel"
)

// Part is one fact counted toward one figure.
type Part struct {
	// Entity is the contact, deal or task the fact is about; its parts are found together.
	Entity string
	// Figure names what the fact counts toward, as the read model spells it ("won/JPY").
	Figure string
	// Position and EventID are those of the event that made the fact.
	Position int64
	EventID  string
	// Bucket is where the figure is kept: a business date, or a period's label.
	Bucket string
	// At is the business time (microseconds) from which the fact counts; Until, when set, the
	// business time from which it does not any more.
	At    int64
	Until sql.NullInt64
	// Owner, Channel and Segment are the values of the filters the fact answers to ('' none).
	Owner, Channel, Segment string
	// Count, Amount (minor units, in Currency) and Measure (a length in microseconds, a
	// weighted amount...) are what the fact adds to the figure.
	Count, Amount int64
	Currency      string
	Measure       int64
}

// Standing reports whether the part counts as of business time t (microseconds).
func (p Part) Standing(t int64) bool {
	return p.At <= t && (!p.Until.Valid || p.Until.Int64 > t)
}

// NewTable declares a parts table named name: keyed by entity, figure and position (so that
// the fold finds an entity's parts with Group), with an index on figure and bucket for Read.
func NewTable(name string) *readmodel.Table[Part] {
	type p = Part
	return readmodel.NewTable(name, 3,
		readmodel.Text("entity", func(r *p) *string { return &r.Entity }),
		readmodel.Text("figure", func(r *p) *string { return &r.Figure }),
		readmodel.BigInt("position", func(r *p) *int64 { return &r.Position }),
		readmodel.Text("event_id", func(r *p) *string { return &r.EventID }),
		readmodel.Text("bucket", func(r *p) *string { return &r.Bucket }),
		readmodel.BigInt("at", func(r *p) *int64 { return &r.At }),
		readmodel.NullBigInt("until_at", func(r *p) *sql.NullInt64 { return &r.Until }),
		readmodel.Text("owner", func(r *p) *string { return &r.Owner }),
		readmodel.Text("channel", func(r *p) *string { return &r.Channel }),
		readmodel.Text("segment", func(r *p) *string { return &r.Segment }),
		readmodel.BigInt("count", func(r *p) *int64 { return &r.Count }),
		readmodel.BigInt("amount", func(r *p) *int64 { return &r.Amount }),
		readmodel.Text("currency", func(r *p) *string { return &r.Currency }),
		readmodel.BigInt("measure", func(r *p) *int64 { return &r.Measure })).
		Clustered().
		WithIndexes(readmodel.Index{Name: "figure", Columns: "figure, bucket"})
}

// Shape is how a read model keeps its parts when it writes fewer than every column: the
// columns it fills, and the key. A rebuild writes a part row for most events, and each column
// costs: the columns a read model never fills are not stored, and read as their zero value
// (Source). NewTable's table keeps every column.
type Shape struct {
	// Bucket, Until, Owner, Channel, Segment, Measure: the columns of the same names are
	// kept; Amounts keeps amount and currency. The count is not kept: every part counts 1
	// (the fold must write no other).
	Bucket, Until, Owner, Channel, Segment, Amounts, Measure bool
	// ByPosition keys the table by position, entity and figure, in that order: a rebuild
	// appends its rows in log order (most parts are made by the event being applied) instead
	// of inserting them at random places of a key led by the entity. For a read model that
	// never reads an entity's parts by group (Get and Delete of a whole key are fine; their
	// key values are then given in that order).
	ByPosition bool
}

// NewTable declares a parts table of shape s named name (see NewTable for the full shape):
// keyed by entity, figure and position (by position, entity and figure when s.ByPosition),
// with an index on figure (and bucket, when kept) for Read.
func (s Shape) NewTable(name string) *readmodel.Table[Part] {
	type p = Part
	entity := readmodel.Text("entity", func(r *p) *string { return &r.Entity })
	figure := readmodel.Text("figure", func(r *p) *string { return &r.Figure })
	position := readmodel.BigInt("position", func(r *p) *int64 { return &r.Position })
	cols := []readmodel.Column[p]{entity, figure, position}
	if s.ByPosition {
		cols = []readmodel.Column[p]{position, entity, figure}
	}
	cols = append(cols,
		readmodel.Text("event_id", func(r *p) *string { return &r.EventID }),
		readmodel.BigInt("at", func(r *p) *int64 { return &r.At }))
	index := readmodel.Index{Name: "figure", Columns: "figure"}
	if s.Bucket {
		cols = append(cols, readmodel.Text("bucket", func(r *p) *string { return &r.Bucket }))
		index.Columns = "figure, bucket"
	}
	if s.Until {
		cols = append(cols, readmodel.NullBigInt("until_at", func(r *p) *sql.NullInt64 { return &r.Until }))
	}
	if s.Owner {
		cols = append(cols, readmodel.Text("owner", func(r *p) *string { return &r.Owner }))
	}
	if s.Channel {
		cols = append(cols, readmodel.Text("channel", func(r *p) *string { return &r.Channel }))
	}
	if s.Segment {
		cols = append(cols, readmodel.Text("segment", func(r *p) *string { return &r.Segment }))
	}
	if s.Amounts {
		cols = append(cols,
			readmodel.BigInt("amount", func(r *p) *int64 { return &r.Amount }),
			readmodel.Text("currency", func(r *p) *string { return &r.Currency }))
	}
	if s.Measure {
		cols = append(cols, readmodel.BigInt("measure", func(r *p) *int64 { return &r.Measure }))
	}
	return readmodel.NewTable(name, 3, cols...).Clustered().WithIndexes(index)
}

// Source is what Read and Select read the parts of the table named table of shape s from: a
// SELECT of Columns that gives the columns not kept their values (NULL, empty text, 0; count
// 1).
func (s Shape) Source(table string) string {
	kept := func(keep bool, column, value string) string {
		if keep {
			return column
		}
		return value + ` AS ` + column
	}
	return `(SELECT entity, figure, position, event_id, ` + kept(s.Bucket, "bucket", "''") + `, at, ` +
		kept(s.Until, "until_at", "CAST(NULL AS BIGINT)") + `, ` + kept(s.Owner, "owner", "''") + `, ` +
		kept(s.Channel, "channel", "''") + `, ` + kept(s.Segment, "segment", "''") + `, 1 AS count, ` +
		kept(s.Amounts, "amount", "0") + `, ` + kept(s.Amounts, "currency", "''") + `, ` +
		kept(s.Measure, "measure", "0") + ` FROM ` + table + `)`
}

// Columns are the columns of a parts table, in order, for a SELECT.
const Columns = `entity, figure, position, event_id, bucket, at, until_at, owner, channel, segment, count, amount, currency, measure`

// Scan reads a row of Columns.
func Scan(rows *sql.Rows) (Part, error) {
	var p Part
	err := rows.Scan(&p.Entity, &p.Figure, &p.Position, &p.EventID, &p.Bucket, &p.At, &p.Until, &p.Owner, &p.Channel,
		&p.Segment, &p.Count, &p.Amount, &p.Currency, &p.Measure)
	return p, err
}

// Question asks for the parts of one figure.
type Question struct {
	// Figures are the figure names counted (one, or several summed: every currency of won);
	// a name ending in "/" stands for every figure it begins.
	Figures []string
	// From and To bound the buckets (From inclusive, To exclusive; "" unbounded).
	From, To string
	// AsOf: the parts standing at this business time.
	AsOf time.Time
	// Owner, Channel, Segment keep the parts of these values ("" any).
	Owner, Channel, Segment string
	// Keep, when set, keeps only the parts it accepts (a figure of one side of a cutoff).
	Keep func(Part) bool
	// Among, when set, is a SELECT of the one column of entities whose parts count (the
	// contacts of a cohort as they are now), with its arguments AmongArgs.
	Among     string
	AmongArgs []any
	// Where, when set, is one more condition on the parts, the parts table named p, with
	// its arguments WhereArgs (a part of one figure counting only for some entities).
	Where     string
	WhereArgs []any
	// Open, when set, is a SELECT of Columns, with its arguments OpenArgs, of the parts the
	// read model keeps elsewhere: the facts still open that it writes into the parts table
	// only once they end (a stay on the board while the deal is in the stage), so that
	// nothing is read nor rewritten when they do.
	Open     string
	OpenArgs []any
	// Limit is the page size (DefaultLimit when 0, at most MaxLimit); Cursor a NextCursor.
	Limit  int
	Cursor string
}

// Page sizes.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Page is one page of the parts of a figure, and the totals of all its parts.
type Page struct {
	// Count is the number of facts (the sum of their counts); Amounts are summed per
	// currency; Measure sums the measures.
	Count      int64            `json:"count"`
	Amounts    map[string]int64 `json:"amounts,omitempty"`
	Parts      []Entry          `json:"parts"`
	NextCursor string           `json:"next_cursor,omitempty"`
}

// Entry is one part as answered.
type Entry struct {
	Entity     string    `json:"entity"`
	Figure     string    `json:"figure"`
	EventID    string    `json:"event_id"`
	Position   int64     `json:"position"`
	Bucket     string    `json:"bucket"`
	OccurredAt time.Time `json:"occurred_at"`
	Owner      string    `json:"owner,omitempty"`
	Count      int64     `json:"count"`
	Amount     *int64    `json:"amount,omitempty"`
	Currency   string    `json:"currency,omitempty"`
	// Days is the length a part of a median counts (its measure, in days to 2 decimals).
	Days *float64 `json:"days,omitempty"`
	// Value is what the fact set, where the figure is the value of the latest fact rather than
	// a sum (a usage report's percent, a survey's score): read models that answer such
	// figures fill it in.
	Value *int64 `json:"value,omitempty"`
}

// cursor is where a page ends: the position and entity of its last part.
type cursor struct {
	Position int64  `json:"p"`
	Entity   string `json:"e"`
	Figure   string `json:"f"`
}

// Read reads the parts of q's figure standing at q.AsOf from the parts table named table (or
// the Source of a table of a Shape), in order of position. lengths tells the figures whose measures are lengths (shown as days).
// The totals are over every part, the page's and the others.
func Read(ctx context.Context, tx *sql.Tx, d projections.Dialect, table string, q Question, lengths func(figure string) bool) (Page, error) {
	if _, _, err := pageBounds(q.Limit, q.Cursor); err != nil {
		return Page{}, err
	}
	parts, err := Select(ctx, tx, d, table, q)
	if err != nil {
		return Page{}, err
	}
	return PageOf(parts, q.Limit, q.Cursor, lengths)
}

// pageBounds checks a page's limit (DefaultLimit when 0) and decodes its cursor.
func pageBounds(limit int, c string) (int, *cursor, error) {
	switch {
	case limit == 0:
		limit = DefaultLimit
	case limit < 0 || limit > MaxLimit:
		return 0, nil, domain.Invalid("limit", "limit %d is not within 1..%d", limit, MaxLimit)
	}
	if c == "" {
		return limit, nil, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(c)
	after := &cursor{}
	if err != nil || json.Unmarshal(raw, after) != nil {
		return 0, nil, domain.Invalid("cursor", "cursor %q was not given by an earlier page", c)
	}
	return limit, after, nil
}

// PageOf pages parts, given in order of position, entity and figure, as Read does: the page
// of limit (DefaultLimit when 0, at most MaxLimit) after cursor, and the totals of all of
// them. It is for the parts a read model finds at question time rather than keeps.
func PageOf(parts []Part, limit int, c string, lengths func(figure string) bool) (Page, error) {
	limit, after, err := pageBounds(limit, c)
	if err != nil {
		return Page{}, err
	}
	page := Page{Parts: []Entry{}}
	for _, p := range parts {
		page.Count += p.Count
		if p.Currency != "" {
			if page.Amounts == nil {
				page.Amounts = map[string]int64{}
			}
			page.Amounts[p.Currency] += p.Amount
		}
		if after != nil && !laterThan(p, *after) {
			continue
		}
		if len(page.Parts) == limit {
			last := page.Parts[limit-1]
			c, _ := json.Marshal(cursor{Position: last.Position, Entity: last.Entity, Figure: last.Figure})
			page.NextCursor = base64.RawURLEncoding.EncodeToString(c)
			continue
		}
		page.Parts = append(page.Parts, entryOf(p, lengths != nil && lengths(p.Figure)))
	}
	return page, nil
}

func laterThan(p Part, c cursor) bool {
	if p.Position != c.Position {
		return p.Position > c.Position
	}
	if p.Entity != c.Entity {
		return p.Entity > c.Entity
	}
	return p.Figure > c.Figure
}

func entryOf(p Part, length bool) Entry {
	e := Entry{Entity: p.Entity, Figure: p.Figure, EventID: p.EventID, Position: p.Position, Bucket: p.Bucket,
		OccurredAt: time.UnixMicro(p.At).UTC(), Owner: p.Owner, Count: p.Count, Currency: p.Currency}
	if p.Currency != "" {
		e.Amount = &p.Amount
	}
	if length {
		days := Days(p.Measure)
		e.Days = &days
	}
	return e
}

// Days is a length in microseconds in days, to 2 decimals half up.
func Days(micros int64) float64 {
	const perDay = int64(24 * time.Hour / time.Microsecond)
	return float64((max(micros, 0)*100+perDay/2)/perDay) / 100
}

// AnswerDB answers the figure at path as of asOf (zero about now) with its parts: the page of
// q that ReadDB reads from table.
func AnswerDB(ctx context.Context, db *projections.DB, table string, q Question, lengths func(figure string) bool,
	path string, asOf time.Time) (Answer, error) {
	page, err := ReadDB(ctx, db, table, q, lengths)
	if err != nil {
		return Answer{}, err
	}
	return Answer{Explain: path, AsOf: asOf.UTC(), Page: page}, nil
}

// ReadDB is Read in a read-only transaction of db.
func ReadDB(ctx context.Context, db *projections.DB, table string, q Question, lengths func(figure string) bool) (Page, error) {
	var page Page
	err := db.ReadOnly(ctx, func(tx *sql.Tx) error {
		var err error
		page, err = Read(ctx, tx, db.Dialect, table, q, lengths)
		return err
	})
	return page, err
}

// Select reads every part of q standing at q.AsOf (Limit and Cursor aside) from table (a
// table's name or a Shape's Source), in order of position, entity and figure.
func Select(ctx context.Context, tx *sql.Tx, d projections.Dialect, table string, q Question) ([]Part, error) {
	stmt, args, err := selectStatement(ctx, tx, d, table, q)
	if err != nil || stmt == "" {
		return nil, err
	}
	rows, err := tx.QueryContext(ctx, stmt, args...)
	if err != nil {
		return nil, fmt.Errorf("parts: %w", err)
	}
	defer rows.Close()
	var parts []Part
	for rows.Next() {
		p, err := Scan(rows)
		if err != nil {
			return nil, fmt.Errorf("parts: %w", err)
		}
		if q.Keep == nil || q.Keep(p) {
			parts = append(parts, p)
		}
	}
	return parts, rows.Err()
}

// selectStatement is the statement of Select (in d's placeholders) and its arguments; none
// when no figure is asked for. A figure prefix asked for over a range of business dates (and
// no open parts) is read figure by figure: a range of figure names cannot use the figure
// index's business dates (a month of won deals read every won deal's part, in every
// currency), the figures that begin it one by one can. They are found first, one probe of the
// index each (figuresOf).
func selectStatement(ctx context.Context, tx *sql.Tx, d projections.Dialect, table string, q Question) (string, []any, error) {
	var (
		where  []string
		args   []any
		equals []string
	)
	var figures []string
	for _, f := range q.Figures {
		if prefix, ok := strings.CutSuffix(f, "/"); ok {
			if q.From != "" && q.Open == "" {
				found, err := figuresOf(ctx, tx, d, table, prefix)
				if err != nil {
					return "", nil, err
				}
				equals = append(equals, found...)
				continue
			}
			// Every figure beginning prefix + "/": "0" is the byte after "/".
			figures = append(figures, `(figure >= ? AND figure < ?)`)
			args = append(args, prefix+"/", prefix+"0")
			continue
		}
		equals = append(equals, f)
	}
	if len(equals) > 0 {
		figures = append(figures, `figure IN (`+strings.TrimSuffix(strings.Repeat("?, ", len(equals)), ", ")+`)`)
		for _, f := range equals {
			args = append(args, f)
		}
	}
	if len(figures) == 0 {
		return "", nil, nil
	}
	where = append(where, `(`+strings.Join(figures, ` OR `)+`)`)
	if q.From != "" {
		where, args = append(where, `bucket >= ?`), append(args, q.From)
	}
	if q.To != "" {
		where, args = append(where, `bucket < ?`), append(args, q.To)
	}
	t := q.AsOf.UnixMicro()
	where, args = append(where, `at <= ? AND (until_at IS NULL OR until_at > ?)`), append(args, t, t)
	for _, f := range []struct{ column, value string }{{"owner", q.Owner}, {"channel", q.Channel}, {"segment", q.Segment}} {
		if f.value != "" {
			where, args = append(where, f.column+` = ?`), append(args, f.value)
		}
	}
	if q.Among != "" {
		where, args = append(where, `entity IN (`+q.Among+`)`), append(args, q.AmongArgs...)
	}
	if q.Where != "" {
		where, args = append(where, `(`+q.Where+`)`), append(args, q.WhereArgs...)
	}
	from := table
	if q.Open != "" {
		from = `(SELECT ` + Columns + ` FROM ` + table + ` s UNION ALL ` + q.Open + `)`
		args = append(slices.Clone(q.OpenArgs), args...)
	}
	stmt := `SELECT ` + Columns + ` FROM ` + from + ` p WHERE ` + strings.Join(where, ` AND `) + ` ORDER BY position, entity, figure`
	return d.Rebind(stmt), args, nil
}

// figuresOf returns the figures of table that begin prefix + "/", in order, each found by one
// probe of the figure index from the one before (a loose index scan, on both databases).
func figuresOf(ctx context.Context, tx *sql.Tx, d projections.Dialect, table, prefix string) ([]string, error) {
	stmt := `WITH RECURSIVE f(figure) AS (
    SELECT (SELECT min(figure) FROM ` + table + ` x WHERE figure >= ? AND figure < ?)
    UNION ALL
    SELECT (SELECT min(x.figure) FROM ` + table + ` x WHERE x.figure > f.figure AND x.figure < ?) FROM f WHERE f.figure IS NOT NULL)
SELECT figure FROM f WHERE figure IS NOT NULL`
	rows, err := tx.QueryContext(ctx, d.Rebind(stmt), prefix+"/", prefix+"0", prefix+"0")
	if err != nil {
		return nil, fmt.Errorf("figures of %s: %w", prefix, err)
	}
	defer rows.Close()
	var figures []string
	for rows.Next() {
		var f string
		if err := rows.Scan(&f); err != nil {
			return nil, fmt.Errorf("figures of %s: %w", prefix, err)
		}
		figures = append(figures, f)
	}
	return figures, rows.Err()
}

// Answer is the parts of one figure of an answer: the facts that make it up, a page at a
// time, and what all of them add up to.
type Answer struct {
	// Explain is the path of the figure in the answer.
	Explain string `json:"explain"`
	// AsOf is the business time the parts stand at; absent for an answer about now.
	AsOf time.Time `json:"as_of,omitzero"`
	Page
}
