package board_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/board"
	"github.com/eventcrm/crm/projections/projectiontest"
)

func TestReadModel(t *testing.T) {
	asOf := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	otherStage := mustCursor(t, "needs_analysis")
	projectiontest.ReadModel[board.Params, board.Answer]{Projection: board.Projection(), Name: "pipeline_board", Query: board.Query,
		Refusals: slices.Concat(projectiontest.PageRefusals(board.MaxLimit, board.Params{}), []projectiontest.Refusal[board.Params]{
			{Name: "unknown stage", Params: board.Params{AsOf: asOf, Stage: "closing"}, Field: "stage"},
			{Name: "closed stage", Params: board.Params{AsOf: asOf, Stage: "won"}, Field: "stage"},
			{Name: "cursor not json", Params: board.Params{AsOf: asOf, Cursor: "bm9wZQ"}, Field: "cursor"},
			{Name: "cursor of another stage", Params: board.Params{AsOf: asOf, Stage: "qualification", Cursor: otherStage}, Field: "cursor"},
		})}.Test(t)
}

// mustCursor takes a real cursor of stage from a board with two open deals in it.
func mustCursor(t *testing.T, stage string) string {
	t.Helper()
	db := projectiontest.SQLite(t)
	tables := projections.TablesFor(board.Projection(), "")
	history := `
2024-01-01T00:00:00Z deal-x deal.opened.v1 {"deal_id":"x","contact_id":"c","title":"X","amount":{"amount":1,"currency":"EUR"},"owner":"o","stage":"qualification"}
2024-01-01T00:00:00Z deal-y deal.opened.v1 {"deal_id":"y","contact_id":"c","title":"Y","amount":{"amount":1,"currency":"EUR"},"owner":"o","stage":"qualification"}
2024-01-02T00:00:00Z deal-x deal.stage_changed.v1 {"deal_id":"x","from":"qualification","to":"` + stage + `"}
2024-01-02T00:00:00Z deal-y deal.stage_changed.v1 {"deal_id":"y","from":"qualification","to":"` + stage + `"}
`
	projectiontest.MustApply(t, db, board.Projection(), tables, projectiontest.MustParseHistory(t, history))
	a, err := board.Query(context.Background(), db, tables, board.Params{AsOf: time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC), Stage: stage, Limit: 1})
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	if len(a.Stages) != 1 || a.Stages[0].NextCursor == "" {
		t.Fatalf("no cursor in %+v", a)
	}
	return a.Stages[0].NextCursor
}

// A card carries the version of the deal's latest event, also of a type the board does not
// show (a new title): a move sent with If-Match set to it names the deal as it is.
func TestCardVersionFollowsEveryDealEvent(t *testing.T) {
	history := `
2024-01-01T00:00:00Z deal-x deal.opened.v1 {"deal_id":"x","contact_id":"c","title":"X","amount":{"amount":1,"currency":"EUR"},"owner":"o","stage":"qualification"}
2024-01-01T00:00:00Z deal-y deal.opened.v1 {"deal_id":"y","contact_id":"c","title":"Y","amount":{"amount":1,"currency":"EUR"},"owner":"o","stage":"qualification"}
2024-01-02T00:00:00Z deal-x deal.stage_changed.v1 {"deal_id":"x","from":"qualification","to":"proposal"}
2024-01-03T00:00:00Z deal-x deal.title_changed.v1 {"deal_id":"x","from":"X","to":"X2"}
`
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		tables := projections.TablesFor(board.Projection(), "")
		projectiontest.MustApply(t, db, board.Projection(), tables, projectiontest.MustParseHistory(t, history))
		a, err := board.Query(context.Background(), db, tables, board.Params{AsOf: time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC)})
		if err != nil {
			t.Fatalf("query: %v", err)
		}
		versions := map[string]int64{}
		for _, col := range a.Stages {
			for _, c := range col.Cards {
				versions[c.DealID] = c.Version
			}
		}
		if versions["x"] != 3 || versions["y"] != 1 {
			t.Errorf("card versions %v, want x 3 and y 1", versions)
		}
	})
}
