package projections_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/churn"
	"github.com/eventcrm/crm/projections/directory"
	"github.com/eventcrm/crm/projections/journey"
	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/value"
)

// A lead captured, a deal lost and a purchase at 2025-03-31T20:00Z are in March in UTC and in April in
// Asia/Tokyo (05:00 on 1 April): the read models whose folds take business dates put them in
// the month (and on the date) of the business zone, and a zone of their own is a version of
// their own, so that a server whose zone changed rebuilds them.
func TestBusinessZoneDecidesCohortsAndDates(t *testing.T) {
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	history := `
2025-03-31T20:00:00Z contact-z1 contact.created.v1 {"contact_id":"z1","name":"Z","channel":"web_form","owner":"rep-a"}
2025-03-31T20:00:00Z deal-d1 deal.opened.v1 {"deal_id":"d1","contact_id":"z1","title":"T","amount":{"amount":100,"currency":"JPY"},"owner":"rep-a","stage":"qualification"}
2025-03-31T20:00:00Z deal-d1 deal.lost.v1 {"deal_id":"d1","contact_id":"z1","from_stage":"qualification","reason":"price","amount":{"amount":100,"currency":"JPY"}}
2025-03-31T20:00:00Z contact-z1 contact.purchase_recorded.v1 {"contact_id":"z1","purchase_id":"p1","amount":{"amount":100,"currency":"JPY"},"product":"P"}
`
	tests := []struct {
		name     string
		zoned    func(*time.Location) projections.Projection
		question string // of the one row written
		utc, tyo string
	}{
		{"journey cohort", func(l *time.Location) projections.Projection { return journey.ProjectionIn(l) }, "SELECT cohort FROM %s", "2025-03", "2025-04"},
		{"churn cohort", func(l *time.Location) projections.Projection { return churn.ProjectionIn(l) }, "SELECT cohort FROM %s", "2025-03", "2025-04"},
		{"directory lost on", func(l *time.Location) projections.Projection { return directory.ProjectionIn(l) },
			"SELECT closed_on FROM %s", "2025-03-31", "2025-04-01"},
		{"customer value season", func(l *time.Location) projections.Projection { return value.Projection(l) },
			"SELECT month FROM %s", "3", "4"},
	}
	table := map[string]string{"journey cohort": "contacts", "churn cohort": "contacts", "directory lost on": "deals",
		"customer value season": "seasons"}
	events := projectiontest.MustParseHistory(t, history)
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				utc, tyo := tt.zoned(time.UTC), tt.zoned(tokyo)
				if utc.Version() == tyo.Version() || tt.zoned(nil).Version() != utc.Version() {
					t.Fatalf("versions: UTC %d, Tokyo %d, nil %d", utc.Version(), tyo.Version(), tt.zoned(nil).Version())
				}
				for _, c := range []struct {
					p    projections.Projection
					want string
				}{{utc, tt.utc}, {tyo, tt.tyo}} {
					tables := projections.TablesFor(c.p, "")
					projectiontest.MustApply(t, db, c.p, tables, events)
					var got string
					q := fmtQuery(tt.question, tables.Name(table[tt.name]))
					if err := db.SQL.QueryRowContext(context.Background(), q).Scan(&got); err != nil {
						t.Fatal(err)
					}
					if got != c.want {
						t.Errorf("version %d: %s = %q, want %q", c.p.Version(), q, got, c.want)
					}
				}
			})
		}
	})
}

func fmtQuery(q, table string) string { return fmt.Sprintf(q, table) }
