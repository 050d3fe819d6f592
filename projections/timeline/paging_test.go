package timeline_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/timeline"
)

// Paging through a timeline neither repeats nor misses an entry, at every page size, also
// while events keep arriving between pages: a newer entry belongs to pages already read, a
// back-dated one to the pages still to come, where it shows once.
func TestPagingNeitherRepeatsNorMisses(t *testing.T) {
	now := time.Date(2024, 2, 10, 0, 0, 0, 0, time.UTC)
	history := projectiontest.ReadHistory(t, "testdata/merged/events.txt")
	tests := []struct {
		name   string
		writes bool
	}{
		{"no writes", false},
		{"writes between pages", true},
	}
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				for limit := 1; limit <= len(history)+1; limit++ {
					t.Run(fmt.Sprint("limit ", limit), func(t *testing.T) {
						ctx := context.Background()
						tables := projections.TablesFor(timeline.Projection(), fmt.Sprintf("pg%d_", limit))
						projectiontest.MustApply(t, db, timeline.Projection(), tables, history)
						want := positions(t, ctx, db, tables, timeline.Params{ContactID: "c1", Now: now, Limit: timeline.MaxLimit}, nil)
						w := &writer{db: db, tables: tables, next: int64(len(history)) + 1, on: tt.writes}
						got := positions(t, ctx, db, tables, timeline.Params{ContactID: "c1", Now: now, Limit: limit}, w.between)
						// The back-dated entries written between pages come last, newest first.
						want = append(want, w.backdated...)
						if !slices.Equal(got, want) {
							t.Fatalf("pages of %d gave positions\n%v\nwant\n%v", limit, got, want)
						}
					})
				}
			})
		}
	})
}

// positions walks every page of a timeline, calling between (when set) after each page, and
// returns the entries' positions in order.
func positions(t *testing.T, ctx context.Context, db *projections.DB, tables projections.Tables, params timeline.Params, between func(*testing.T)) []int64 {
	t.Helper()
	var got []int64
	for range 1000 {
		page, err := timeline.Query(ctx, db, tables, params)
		if err != nil {
			t.Fatalf("query: %v", err)
		}
		for _, e := range page.Entries {
			got = append(got, e.Position)
		}
		if page.NextBefore == "" {
			return got
		}
		if len(page.Entries) != params.Limit {
			t.Fatalf("a page of %d entries with a next page, limit %d", len(page.Entries), params.Limit)
		}
		params.Before = page.NextBefore
		if between != nil {
			between(t)
		}
	}
	t.Fatal("more than 1000 pages")
	return nil
}

// writer adds, between the first pages, an entry newer than any (a page already read) and one older
// than any (a page to come) to c1's timeline.
type writer struct {
	db        *projections.DB
	tables    projections.Tables
	next      int64
	on        bool
	n         int
	backdated []int64
}

func (w *writer) between(t *testing.T) {
	if !w.on || w.n == 5 { // five rounds, so that the walk ends at any page size
		return
	}
	w.n++
	newer := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(w.n) * time.Hour)
	older := time.Date(2023, 12, 1, 0, 0, 0, 0, time.UTC).Add(-time.Duration(w.n) * time.Hour)
	events := []eventstore.Event{w.note(newer), w.note(older)}
	if _, err := w.db.Apply(context.Background(), timeline.Projection(), w.tables, events); err != nil {
		t.Fatalf("apply: %v", err)
	}
	w.backdated = append(w.backdated, events[1].Position)
}

func (w *writer) note(at time.Time) eventstore.Event {
	p := w.next
	w.next++
	return eventstore.Event{ID: fmt.Sprint("evt-", p), Stream: "contact-c1", Position: p, Type: "contact.note_added.v1",
		Data:       []byte(fmt.Sprintf(`{"contact_id":"c1","note_id":"w%d","text":"later","author":"rep-a"}`, p)),
		OccurredAt: at, RecordedAt: at}
}
