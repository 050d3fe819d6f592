package churn

import (
	"context"
	"database/sql"
	"strings"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/domain/deal"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/explain"
	"github.com/eventcrm/crm/projections/round"
)

// Explain answers the parts of the figure of the churn points at path params.Explain, as of
// params.AsOf (required), of the cohort asked for, a page at a time (Limit:
// explain.DefaultLimit when 0, at most explain.MaxLimit; Cursor: a page's next_cursor). The
// paths:
//
//	phases.<phase>.entered, .lost, .churned (the contacts and the event of their first entry,
//	first loss, first churn), .dormant (the contacts in the phase at as_of idle for
//	dormant_days, and the event of their entry into it), .ended (the contacts first lost or
//	churned from the phase, and the dormant ones not lost or churned from it before)
//	lost_deals.<stage>.<reason>.count, lost_deals.<stage>.<reason>.amounts.<currency> (the
//	deals and their losses standing at as_of)
//
//	churned_customers.<contact>.<figure> (churned_at, from_phase, won_at, days_won_to_churn,
//	last_nps, last_touchpoint_at, days_since_last_touchpoint, overdue_tasks: the events of
//	the facts of each of the contact's churns, see churnedParts)
//
// A drop-off rate is the quotient of two figures: explain those.
func Explain(ctx context.Context, db *projections.DB, t projections.Tables, params Params) (explain.Answer, error) {
	if params.AsOf.IsZero() {
		return explain.Answer{}, domain.Invalid("as_of", "is required")
	}
	dormantDays, cohort, err := params.check()
	if err != nil {
		return explain.Answer{}, err
	}
	asOf := params.AsOf.UTC().UnixMicro()
	if strings.HasPrefix(params.Explain, "churned_customers.") {
		return explainChurned(ctx, db, t, params, cohort)
	}
	bad := domain.Invalid("explain", "%q is not the path of a figure of the churn points (see the documentation)", params.Explain)
	path := strings.Split(params.Explain, ".")
	among, amongArgs := contactsAt(asOf, cohort)
	q := explain.Question{AsOf: params.AsOf, Limit: params.Limit, Cursor: params.Cursor,
		Among: `SELECT c.contact_id FROM ` + t.Name(tableContacts) + ` c WHERE` + among, AmongArgs: amongArgs}
	// idle are the contacts whose last activity as of as_of (their latest touchpoint, else
	// their creation) is dormant_days or more before it.
	idle := `SELECT c.contact_id FROM ` + t.Name(tableContacts) + ` c WHERE COALESCE((SELECT MAX(tp.occurred_at) FROM ` +
		t.Name(tableTouchpoints) + ` tp WHERE tp.contact_id = c.contact_id AND tp.occurred_at <= ?), c.created_at) <= ?`
	idleArgs := []any{asOf, asOf - int64(dormantDays)*round.MicrosPerDay}
	switch {
	case len(path) == 3 && path[0] == "phases" && contact.Phase(path[1]).Rank() > 0:
		phase := path[1]
		switch path[2] {
		case "entered":
			q.Figures = []string{figEntered + phase}
		case "lost":
			q.Figures = []string{figLost + phase}
		case "churned":
			q.Figures = []string{figChurned + phase}
		case "dormant":
			q.Figures = []string{figIn + phase}
			q.Open, q.OpenArgs = openVisits(t, phase)
			q.Where, q.WhereArgs = `entity IN (`+idle+`)`, idleArgs
		case "ended":
			q.Figures = []string{figExited + phase, figIn + phase}
			q.Open, q.OpenArgs = openVisits(t, phase)
			q.Where = `figure = ? OR (entity IN (` + idle + `) AND NOT EXISTS (SELECT 1 FROM ` + t.Name(tableParts) +
				` x WHERE x.entity = p.entity AND x.figure = ? AND x.at <= ?))`
			q.WhereArgs = append(append([]any{figExited + phase}, idleArgs...), figExited+phase, asOf)
		default:
			return explain.Answer{}, bad
		}
	case path[0] == "lost_deals" && (len(path) == 4 && path[3] == "count" || len(path) == 5 && path[3] == "amounts"):
		if !deal.Stage(path[1]).IsOpen() {
			return explain.Answer{}, bad
		}
		q.Figures = []string{figLoss + path[1] + "/" + path[2]}
		q.Among, q.AmongArgs = "", nil
		if cohort.where != "" {
			q.Among = `SELECT l.deal_id FROM ` + t.Name(tableDealLosses) + ` l JOIN ` + t.Name(tableContacts) +
				` c ON c.contact_id = l.contact_id WHERE l.deal_id = l.deal_id` + cohort.where
			q.AmongArgs = cohort.args
		}
		if len(path) == 5 {
			currency := path[4]
			q.Keep = func(p explain.Part) bool { return p.Currency == currency }
		}
	default:
		return explain.Answer{}, bad
	}
	return explain.AnswerDB(ctx, db, partsShape().Source(t.Name(tableParts)), q, nil,
		params.Explain, params.AsOf)
}

// explainChurned answers the parts of a figure of a churned customer, found when asked.
func explainChurned(ctx context.Context, db *projections.DB, t projections.Tables, params Params, cohort filter) (explain.Answer, error) {
	// The page asked for is checked before anything is read.
	if _, err := explain.PageOf(nil, params.Limit, params.Cursor, nil); err != nil {
		return explain.Answer{}, err
	}
	var parts []explain.Part
	err := db.ReadOnly(ctx, func(tx *sql.Tx) error {
		q := query{db: db, tx: tx, t: t, asOf: params.AsOf.UTC().UnixMicro(), cohort: cohort}
		var err error
		parts, err = q.churnedParts(ctx, params.Explain)
		return err
	})
	if err != nil {
		return explain.Answer{}, err
	}
	page, err := explain.PageOf(parts, params.Limit, params.Cursor, nil)
	if err != nil {
		return explain.Answer{}, err
	}
	// A survey's part carries its score.
	scores := map[[2]any]int64{}
	for _, p := range parts {
		if strings.HasPrefix(p.Figure, figLastSurvey+"/") {
			scores[[2]any{p.Position, p.Bucket}] = p.Measure
		}
	}
	for i := range page.Parts {
		if nps, ok := scores[[2]any{page.Parts[i].Position, page.Parts[i].Bucket}]; ok {
			page.Parts[i].Value = &nps
		}
	}
	return explain.Answer{Explain: params.Explain, AsOf: params.AsOf.UTC(), Page: page}, nil
}
