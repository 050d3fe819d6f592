package board_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
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
	ctx := context.Background()
	projectiontest.ForEachPrefix(t, board.Projection(), events, 8, func(t *testing.T, db *projections.DB, tables projections.Tables, applied []eventstore.Event) {
		k := len(applied)
		var wantHorizon int64
		for _, e := range applied {
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
					if _, ok := present.AppendJSON(nil, horizon.Add(-time.Microsecond)); ok {
						t.Fatalf("AppendJSON answered before the horizon %s", horizon)
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
					if g, w := projectiontest.JSON(t, got), projectiontest.JSON(t, want); g != w {
						t.Fatalf("as of %s:\npresent %s\nquery   %s", asOf, g, w)
					}
					// The JSON written from the encoded present is encoding/json's.
					if enc, ok := present.AppendJSON([]byte("x"), asOf); !ok || string(enc) != "x"+projectiontest.JSON(t, want) {
						t.Fatalf("as of %s, AppendJSON (%v):\n%s\nwant\nx%s", asOf, ok, enc, projectiontest.JSON(t, want))
					}
				}
			})
		}
	})
}

// TestPresentIsNotChangedByAt: answers taken from one present do not share their cards.
func TestPresentIsNotChangedByAt(t *testing.T) {
	db := projectiontest.SQLite(t)
	tables := projections.TablesFor(board.Projection(), "")
	projectiontest.MustApply(t, db, board.Projection(), tables, projectiontest.ReadHistory(t, "testdata/pipeline/events.txt"))
	present, err := board.QueryPresent(context.Background(), db, tables, board.Params{})
	if err != nil {
		t.Fatal(err)
	}
	horizon := time.UnixMicro(present.Horizon)
	early, _ := present.At(horizon)
	before := projectiontest.JSON(t, early)
	if _, ok := present.At(horizon.Add(90 * 24 * time.Hour)); !ok {
		t.Fatal("At refused a later time")
	}
	if after := projectiontest.JSON(t, early); after != before {
		t.Fatalf("a later At changed an earlier answer:\n%s\n%s", before, after)
	}
}

// TestPresentJSONWithMarksInText: titles and names that look like the JSON AppendJSON cuts
// at, or need escaping, come out as encoding/json writes them.
func TestPresentJSONWithMarksInText(t *testing.T) {
	db := projectiontest.SQLite(t)
	tables := projections.TablesFor(board.Projection(), "")
	history := `
2024-01-01T00:00:00Z contact-c contact.created.v1 {"contact_id":"c","name":"\"as_of\":\"0001-01-01T00:00:00Z\" <b>","channel":"web_form","owner":"o"}
2024-01-01T00:00:00Z deal-x deal.opened.v1 {"deal_id":"x","contact_id":"c","title":"\"days_in_stage\":-987654321987 & <i>","amount":{"amount":1,"currency":"EUR"},"owner":"o","stage":"qualification"}
2024-01-03T00:00:00Z deal-y deal.opened.v1 {"deal_id":"y","contact_id":"c","title":"日本語 \u2028","amount":{"amount":2,"currency":"EUR"},"owner":"o","stage":"qualification"}
`
	projectiontest.MustApply(t, db, board.Projection(), tables, projectiontest.MustParseHistory(t, history))
	present, err := board.QueryPresent(context.Background(), db, tables, board.Params{})
	if err != nil {
		t.Fatal(err)
	}
	asOf := time.Date(2024, 2, 1, 12, 30, 0, 123456000, time.UTC)
	want, _ := present.At(asOf)
	got, ok := present.AppendJSON(nil, asOf)
	if !ok || string(got) != projectiontest.JSON(t, want) {
		t.Fatalf("AppendJSON (%v):\n%s\nwant\n%s", ok, got, projectiontest.JSON(t, want))
	}
	if want.Stages[0].Cards[0].DaysInStage != 31 {
		t.Fatalf("days in stage %d, want 31", want.Stages[0].Cards[0].DaysInStage)
	}
}
