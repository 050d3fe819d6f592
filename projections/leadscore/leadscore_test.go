package leadscore_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/leadscore"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// question is a query of the golden cases: a contact's score when contact is set, else the
// hot list.
type question struct {
	Contact  string    `json:"contact"`
	AsOf     time.Time `json:"as_of"`
	MinScore *float64  `json:"min_score"`
	Owner    string    `json:"owner"`
	Limit    int       `json:"limit"`
}

func answer(ctx context.Context, db *projections.DB, t projections.Tables, _ string, raw []byte) (any, error) {
	var q question
	if err := json.Unmarshal(raw, &q); err != nil {
		return nil, err
	}
	if q.Contact != "" {
		return leadscore.QueryContact(ctx, db, t, q.Contact, q.AsOf)
	}
	return leadscore.QueryLeads(ctx, db, t, leadscore.LeadParams{AsOf: q.AsOf, MinScore: q.MinScore, Owner: q.Owner, Limit: q.Limit})
}

func TestReadModel(t *testing.T) {
	asOf := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	nan := 0.0
	nan /= nan
	projectiontest.ReadModel[leadscore.LeadParams, leadscore.Leads]{Projection: leadscore.Projection(), Name: "lead_score",
		Query: leadscore.QueryLeads, Answer: answer, Refusals: []projectiontest.Refusal[leadscore.LeadParams]{
			{Name: "no as_of", Params: leadscore.LeadParams{}, Field: "as_of"},
			{Name: "negative limit", Params: leadscore.LeadParams{AsOf: asOf, Limit: -1}, Field: "limit"},
			{Name: "limit too large", Params: leadscore.LeadParams{AsOf: asOf, Limit: leadscore.MaxLimit + 1}, Field: "limit"},
			{Name: "unknown sort", Params: leadscore.LeadParams{AsOf: asOf, Sort: "name"}, Field: "sort"},
			{Name: "min_score not a number", Params: leadscore.LeadParams{AsOf: asOf, MinScore: &nan}, Field: "min_score"},
		}}.Test(t)
}

func TestQueryContactOfNobody(t *testing.T) {
	asOf := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		tables := projections.TablesFor(leadscore.Projection(), "")
		projectiontest.MustApply(t, db, leadscore.Projection(), tables, nil)
		if _, err := leadscore.QueryContact(context.Background(), db, tables, "nobody", asOf); domain.ErrorCode(err) != domain.CodeNotFound {
			t.Errorf("unknown contact: %v", err)
		}
	})
}
