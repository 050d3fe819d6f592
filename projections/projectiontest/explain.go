package projectiontest

import (
	"context"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/explain"
)

// ExplainAll reads every page of the parts of the figure at path: ask answers the page at a
// cursor ("" for the first). It checks what the pages say: the figure asked for, the same
// total on every page, parts that together count it, each naming its entity and its event.
func ExplainAll(t testing.TB, path string, ask func(cursor string) (explain.Answer, error)) []explain.Entry {
	t.Helper()
	var (
		parts  []explain.Entry
		count  int64
		cursor string
	)
	for page := 0; ; page++ {
		a, err := ask(cursor)
		if err != nil {
			t.Fatalf("explain %s: %v", path, err)
		}
		if a.Explain != path {
			t.Fatalf("explain %s: page %d answers for the figure %q", path, page, a.Explain)
		}
		if page > 0 && a.Count != count {
			t.Fatalf("explain %s: page %d says %d parts, the first said %d", path, page, a.Count, count)
		}
		count = a.Count
		parts = append(parts, a.Parts...)
		if a.NextCursor == "" {
			break
		}
		cursor = a.NextCursor
	}
	var sum int64
	for _, p := range parts {
		if p.EventID == "" || p.Position <= 0 || p.Entity == "" {
			t.Fatalf("explain %s: part %+v names no entity or event", path, p)
		}
		sum += p.Count
	}
	if sum != count {
		t.Fatalf("explain %s: the parts listed count %d, the total says %d", path, sum, count)
	}
	return parts
}

// CountingOne fails t unless every part counts one: a figure that counts facts.
func CountingOne(t testing.TB, path string, parts []explain.Entry) []explain.Entry {
	t.Helper()
	for _, p := range parts {
		if p.Count != 1 {
			t.Fatalf("explain %s: part %+v counts %d, not one", path, p, p.Count)
		}
	}
	return parts
}

// Figures checks figures of an answer against their parts: Parts reads the parts of a
// figure, At says of which question (as of when, which parameters) in an error.
type Figures struct {
	T       testing.TB
	At      string
	Parts   func(path string) []explain.Entry
	NonZero int // the figures checked that were not zero
}

// Count fails the test unless the figure at path, want, is the number of its parts; it
// returns the parts.
func (f *Figures) Count(path string, want int) []explain.Entry {
	f.T.Helper()
	parts := f.Parts(path)
	if got := len(parts); got != want {
		f.T.Errorf("%s: %s = %d, its parts count %d", f.At, path, want, got)
	}
	f.NonZero += min(want, 1)
	return parts
}

// ExplainsAtLeast applies events to a fresh set of p on each dialect, then calls check, which
// explains the figures of the answers it asks for and returns how many of them were not zero;
// it fails t unless at least least were, so that a history that explains too little is caught.
func ExplainsAtLeast(t *testing.T, p projections.Projection, events []eventstore.Event, least int,
	check func(t *testing.T, db *projections.DB, tables projections.Tables) int) {
	t.Helper()
	ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		tables := projections.TablesFor(p, "")
		MustApply(t, db, p, tables, events)
		if checked := check(t, db, tables); checked < least {
			t.Fatalf("only %d figures checked: the history explains too little", checked)
		}
	})
}

// Sum fails the test unless the parts of the figure at path count want together; it returns
// the parts. Unlike Count, it leaves NonZero alone: a figure read by its parts in several
// ways is counted once, by the caller.
func (f *Figures) Sum(path string, want int) []explain.Entry {
	f.T.Helper()
	parts := f.Parts(path)
	var got int64
	for _, p := range parts {
		got += p.Count
	}
	if got != int64(want) {
		f.T.Errorf("%s: %s = %d, its parts count %d", f.At, path, want, got)
	}
	return parts
}

// Amount fails the test unless the parts of the figure at path are each in currency and their
// amounts add up to want; it returns that sum.
func (f *Figures) Amount(path, currency string, want int64) int64 {
	f.T.Helper()
	var sum int64
	for _, p := range f.Parts(path) {
		if p.Currency != currency || p.Amount == nil {
			f.T.Fatalf("%s: part %+v is not in %s", path, p, currency)
		}
		sum += *p.Amount
	}
	if sum != want {
		f.T.Errorf("%s: %s = %d, its parts add up to %d", f.At, path, want, sum)
	}
	return sum
}

// Days are the lengths in days of parts, sorted; it fails the test at a part without one.
func (f *Figures) Days(path string, parts []explain.Entry) []float64 {
	f.T.Helper()
	days := make([]float64, 0, len(parts))
	for _, p := range parts {
		if p.Days == nil {
			f.T.Fatalf("%s: part %+v has no length", path, p)
		}
		days = append(days, *p.Days)
	}
	slices.Sort(days)
	return days
}

// Median is the median of sorted days, the mean of the two middle ones for an even count; nil
// when there are none.
func Median(days []float64) *float64 {
	n := len(days)
	if n == 0 {
		return nil
	}
	m := days[n/2]
	if n%2 == 0 {
		m = (days[n/2-1] + days[n/2]) / 2
	}
	return &m
}

// WithinAHundredth tells whether figure, days rounded to 2 decimals, is what its parts give
// (days rounded each, so that they may add up to a hundredth off): within a hundredth, or both
// nil.
func WithinAHundredth(figure, parts *float64) bool {
	if figure == nil || parts == nil {
		return figure == parts
	}
	return math.Abs(*figure-*parts) <= 0.0100001
}

// Explained is what the figures of a read model's answers are checked against: Query answers a
// question, Explain a page of the parts of one of its figures, asked by the question Page
// returns (the figure at path, limit parts a page, the page at cursor), Limit parts at a time;
// with CountingOne every part must count one (ExplainAll, CountingOne). AsOf returns a
// question as of a time. Page and AsOf, when nil, set the question's fields Explain, Limit
// and Cursor, and AsOf, as the read models' Params name them.
type Explained[P, A any] struct {
	Projection  projections.Projection
	Query       Question[P, A]
	Explain     Question[P, explain.Answer]
	Page        func(params P, path string, limit int, cursor string) P
	Limit       int
	CountingOne bool
	AsOf        func(params P, asOf time.Time) P
}

// parts reads every page of the parts of the figure at path of the answer to params.
func (x Explained[P, A]) parts(t testing.TB, db *projections.DB, tables projections.Tables, params P, path string) []explain.Entry {
	t.Helper()
	parts := ExplainAll(t, path, func(cursor string) (explain.Answer, error) {
		page := x.Page
		if page == nil {
			page = pageByFields[P]
		}
		return x.Explain(context.Background(), db, tables, page(params, path, x.Limit, cursor))
	})
	if x.CountingOne {
		return CountingOne(t, path, parts)
	}
	return parts
}

// AddsUp applies events to a fresh set on each dialect, asks each of questions as of each of
// asOfs and gives check the answer and the Figures that read the parts of its figures (and the
// set, for what else it asks); check returns how many more figures it checked that were not
// zero. It fails t unless at least least were (Figures.NonZero and check's together), as
// ExplainsAtLeast does.
func (x Explained[P, A]) AddsUp(t *testing.T, events []eventstore.Event, least int, asOfs []time.Time, questions []P,
	check func(f *Figures, db *projections.DB, tables projections.Tables, params P, answer A) int) {
	t.Helper()
	asOfQuestion := x.AsOf
	if asOfQuestion == nil {
		asOfQuestion = asOfByField[P]
	}
	ExplainsAtLeast(t, x.Projection, events, least, func(t *testing.T, db *projections.DB, tables projections.Tables) int {
		checked := 0
		for _, asOf := range asOfs {
			for _, params := range questions {
				params = asOfQuestion(params, asOf)
				answer, err := x.Query(context.Background(), db, tables, params)
				if err != nil {
					t.Fatalf("%+v: %v", params, err)
				}
				f := &Figures{T: t, At: fmt.Sprintf("as of %s, %+v", asOf, params),
					Parts: func(path string) []explain.Entry { return x.parts(t, db, tables, params, path) }}
				checked += check(f, db, tables, params, answer)
				checked += f.NonZero
			}
		}
		return checked
	})
}
