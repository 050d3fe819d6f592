package board_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/board"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// TestPresentAtEqualsQuery checks the board's present against Query: after every prefix of the
// pipeline history (so deals are caught in every stage, after backward moves, losses,
// reopenings and wins), for every kind of question, Present.At answers exactly as Query at the
// horizon and at later times, and refuses any time before the horizon, which it places at the
// latest business time of a deal event applied.
func TestPresentAtEqualsQuery(t *testing.T) {
	events := projectiontest.ReadHistory(t, "testdata/pipeline/events.txt")
	questions := []board.Params{
		{},
		{Owner: "rep-a"},
		{Owner: "nobody"},
		{Stage: "qualification"},
		{Stage: "proposal", Limit: 1},
		{Limit: 1},
	}
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		ctx := context.Background()
		for k := 0; k <= len(events); k += max(1, len(events)/8) {
			tables := projections.TablesFor(board.Projection{}, fmt.Sprintf("g%d", k+1))
			projectiontest.MustApply(t, db, board.Projection{}, tables, events[:k])
			var wantHorizon int64
			for _, e := range events[:k] {
				if strings.HasPrefix(e.Type, "deal.") {
					wantHorizon = max(wantHorizon, e.OccurredAt.UnixMicro())
				}
			}
			for _, params := range questions {
				t.Run(fmt.Sprintf("%d events %+v", k, params), func(t *testing.T) {
					present, err := board.QueryPresent(ctx, db, tables, params)
					if err != nil {
						t.Fatalf("present: %v", err)
					}
					if present.Horizon != wantHorizon {
						t.Fatalf("horizon = %d, want %d", present.Horizon, wantHorizon)
					}
					horizon := time.UnixMicro(present.Horizon).UTC()
					if k > 0 {
						if _, ok := present.At(horizon.Add(-time.Microsecond)); ok {
							t.Fatalf("At answered before the horizon %s", horizon)
						}
					}
					if k > 0 {
						// the next page, through the cursor of the first
						first, _ := present.At(horizon)
						for _, col := range first.Stages {
							if col.NextCursor != "" {
								params.Cursor, params.Stage = col.NextCursor, ""
								if present, err = board.QueryPresent(ctx, db, tables, params); err != nil {
									t.Fatalf("present of the next page: %v", err)
								}
								break
							}
						}
					}
					for _, later := range []time.Duration{0, time.Microsecond, 37 * time.Hour, 400 * 24 * time.Hour} {
						asOf := horizon.Add(later)
						if k == 0 {
							asOf = time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC).Add(later)
						}
						got, ok := present.At(asOf)
						if !ok {
							t.Fatalf("At(%s) refused, horizon %s", asOf, horizon)
						}
						params.AsOf = asOf
						want, err := board.Query(ctx, db, tables, params)
						if err != nil {
							t.Fatalf("query: %v", err)
						}
						if g, w := mustJSON(t, got), mustJSON(t, want); g != w {
							t.Fatalf("as of %s:\npresent %s\nquery   %s", asOf, g, w)
						}
					}
				})
			}
		}
	})
}

// TestPresentIsNotChangedByAt: answers taken from one present do not share their cards.
func TestPresentIsNotChangedByAt(t *testing.T) {
	db := projectiontest.SQLite(t)
	tables := projections.TablesFor(board.Projection{}, "")
	projectiontest.MustApply(t, db, board.Projection{}, tables, projectiontest.ReadHistory(t, "testdata/pipeline/events.txt"))
	present, err := board.QueryPresent(context.Background(), db, tables, board.Params{})
	if err != nil {
		t.Fatal(err)
	}
	horizon := time.UnixMicro(present.Horizon)
	early, _ := present.At(horizon)
	before := mustJSON(t, early)
	if _, ok := present.At(horizon.Add(90 * 24 * time.Hour)); !ok {
		t.Fatal("At refused a later time")
	}
	if after := mustJSON(t, early); after != before {
		t.Fatalf("a later At changed an earlier answer:\n%s\n%s", before, after)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
