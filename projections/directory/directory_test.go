package directory_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/directory"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// answer asks the query its name starts with: contacts_, deals_, accounts_ or summary_.
func answer(ctx context.Context, db *projections.DB, t projections.Tables, query string, raw []byte) (any, error) {
	kind, _, _ := strings.Cut(query, "_")
	switch kind {
	case "contacts":
		return ask(raw, func(p directory.ContactParams) (any, error) { return directory.QueryContacts(ctx, db, t, p) })
	case "deals":
		return ask(raw, func(p directory.DealParams) (any, error) { return directory.QueryDeals(ctx, db, t, p) })
	case "accounts":
		return ask(raw, func(p directory.AccountParams) (any, error) { return directory.QueryAccounts(ctx, db, t, p) })
	}
	return ask(raw, func(p struct {
		AccountID string    `json:"account_id"`
		At        time.Time `json:"at"`
	}) (any, error) {
		return directory.QuerySummary(ctx, db, t, p.AccountID, p.At)
	})
}

func ask[P any](raw []byte, f func(P) (any, error)) (any, error) {
	var p P
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, err
	}
	return f(p)
}

func TestReadModel(t *testing.T) {
	projectiontest.ReadModel[any, any]{Projection: directory.Projection(), Name: "directory", Answer: answer}.Test(t)
}
