package board

import (
	"context"
	"strings"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/deal"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/explain"
	"github.com/eventcrm/crm/projections/readmodel"
)

// Figures of the parts (see the package comment).
const (
	figOpen = "open/"
	figStay = "stay/"
)

// partsShape is how the parts are kept: with their end, owner, amount and measure, keyed by
// position (they are never read by the fold).
func partsShape() explain.Shape {
	return explain.Shape{Until: true, Owner: true, Amounts: true, Measure: true, ByPosition: true}
}

// partsClosed records the parts of a stay that ended: the deal counted in its stage's count
// and totals from the time it entered the stage until it left it (while the stay is open,
// its interval is that part: nothing is read nor rewritten when it ends), and from then on
// the stay counts in the stage's velocity, with its length.
func (m *model) partsClosed(rows *readmodel.Rows, e *readmodel.Event, iv intervalRow) {
	m.parts.Upsert(rows, explain.Part{Entity: iv.dealID, Figure: figOpen + iv.stage, Position: iv.position, EventID: iv.eventID,
		At: iv.enteredAt, Until: iv.leftAt, Owner: iv.owner, Count: 1, Amount: iv.amount, Currency: iv.currency})
	m.parts.Upsert(rows, explain.Part{Entity: iv.dealID, Figure: figStay + iv.stage, Position: e.Position, EventID: e.ID,
		At: iv.leftAt.Int64, Owner: iv.owner, Count: 1, Measure: max(iv.leftAt.Int64-iv.enteredAt, 0)})
}

// isLength tells the figures whose parts measure a length (the velocity).
func isLength(figure string) bool { return strings.HasPrefix(figure, figStay) }

// Explain answers the parts of the figure of the board at path params.Explain, as of
// params.AsOf (required), of the owner asked for (and of the stage, when one is), a page at a
// time: Limit (explain.DefaultLimit when 0, at most explain.MaxLimit) and Cursor (a page's
// next_cursor) page the parts, not the cards. The paths:
//
//	stages.<stage>.count, stages.<stage>.totals.<currency> (optionally .amount or
//	.weighted_amount), velocity.<stage>.closed_intervals, velocity.<stage>.median_days
//
// A stage's probability is a setting, not a figure made of facts; a card is a part itself.
func Explain(ctx context.Context, db *projections.DB, t projections.Tables, params Params) (explain.Answer, error) {
	if params.AsOf.IsZero() {
		return explain.Answer{}, domain.Invalid("as_of", "is required")
	}
	bad := domain.Invalid("explain", "%q is not the path of a figure of the board (see the documentation)", params.Explain)
	path := strings.Split(params.Explain, ".")
	if len(path) < 3 {
		return explain.Answer{}, bad
	}
	stage := deal.Stage(path[1])
	if !stage.IsOpen() || (params.Stage != "" && params.Stage != path[1]) {
		return explain.Answer{}, bad
	}
	q := explain.Question{AsOf: params.AsOf, Owner: params.Owner, Limit: params.Limit, Cursor: params.Cursor}
	switch {
	case path[0] == "stages" && len(path) == 3 && path[2] == "count":
		q.Figures = []string{figOpen + path[1]}
		q.Open, q.OpenArgs = openStays(t, path[1])
	case path[0] == "stages" && path[2] == "totals" && (len(path) == 4 ||
		len(path) == 5 && (path[4] == "amount" || path[4] == "weighted_amount")):
		currency := path[3]
		q.Figures = []string{figOpen + path[1]}
		q.Open, q.OpenArgs = openStays(t, path[1])
		q.Keep = func(p explain.Part) bool { return p.Currency == currency }
	case path[0] == "velocity" && len(path) == 3 && (path[2] == "closed_intervals" || path[2] == "median_days"):
		q.Figures = []string{figStay + path[1]}
	default:
		return explain.Answer{}, bad
	}
	return explain.AnswerDB(ctx, db, partsShape().Source(t.Name(tableParts)), q, isLength,
		params.Explain, params.AsOf)
}

// openStays selects the parts of the stays in stage still open: their intervals.
func openStays(t projections.Tables, stage string) (string, []any) {
	return `SELECT deal_id, '` + figOpen + `' || stage, position, event_id, '', entered_at, left_at, owner, '', '', 1, amount,
		currency, 0 FROM ` + t.Name(tableIntervals) + ` WHERE stage = ? AND left_at IS NULL`, []any{stage}
}
