package value_test

import (
	"context"
	"testing"
	"time"

	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/value"
)

// TestStatementsAboutNow counts the statements (each a round trip) of the questions about
// now over a generated history of three currencies: the kept rows are read in a few
// statements, however many currencies and score thresholds the answer needs.
func TestStatementsAboutNow(t *testing.T) {
	h := valueHistory(t, 400)
	now := h.Latest.Add(24 * time.Hour)
	p := value.Projection(time.UTC)
	cases := []struct {
		name string
		q    question
		most int
	}{
		{"customers", question{Query: "customers"}, 4},
		{"customers segment=champions", question{Query: "customers", Segment: "champions"}, 4},
		{"customers sort=orders", question{Query: "customers", Sort: "orders"}, 4},
		{"contact value of a customer", question{Query: "value", ContactID: "c0000000"}, 5},
		{"contact value of a contact who bought nothing", question{Query: "value", ContactID: "c0000002"}, 3},
		{"rfm", question{Query: "rfm"}, 4},
		{"upsell-candidates", question{Query: "upsell"}, 2},
	}
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		tables := projections.TablesFor(p, "")
		projectiontest.MustApply(t, db, p, tables, h.Events)
		for _, c := range cases {
			ctx, n := value.CountingStatements(context.Background())
			c.q.AsOf = now
			if _, err := ask(ctx, db, tables, time.UTC, c.q); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			t.Logf("%s: %d statements", c.name, *n)
			if *n > c.most {
				t.Errorf("%s: %d statements, want at most %d", c.name, *n, c.most)
			}
		}
	})
}
