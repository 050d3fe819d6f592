package projectiontest

import (
	"testing"

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
