package analytics_test

import (
	"slices"
	"testing"
	"time"

	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/analytics"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// TestMidnightSkipped: in America/Havana the clocks went from 00:00 to 01:00 on 1 April 2012,
// so that day began at 01:00 (05:00Z). A deal opened at 23:30 on 31 March (04:30Z) is of 31
// March and of March; one opened at noon on 1 April of 1 April and of April; each period is
// named by its own first date and ends where the next begins.
func TestMidnightSkipped(t *testing.T) {
	havana, err := time.LoadLocation("America/Havana")
	if err != nil {
		t.Fatal(err)
	}
	events := projectiontest.MustParseHistory(t, `
2012-03-30T15:00:00Z contact-c1 contact.created.v1 {"contact_id":"c1","name":"Aiko","channel":"web_form","owner":"rep-a"}
2012-04-01T04:30:00Z deal-d1 deal.opened.v1 {"deal_id":"d1","contact_id":"c1","title":"Licences","amount":{"amount":1000,"currency":"USD"},"owner":"rep-a","stage":"qualification"}
2012-04-01T05:00:00Z deal-d2 deal.opened.v1 {"deal_id":"d2","contact_id":"c1","title":"Support","amount":{"amount":500,"currency":"USD"},"owner":"rep-a","stage":"qualification"}
2012-04-01T16:00:00Z deal-d3 deal.opened.v1 {"deal_id":"d3","contact_id":"c1","title":"Training","amount":{"amount":200,"currency":"USD"},"owner":"rep-a","stage":"qualification"}
`)
	type opened struct {
		period, end string
		opened      int64
	}
	tests := []struct {
		name     string
		from, to string
		kind     string
		want     []opened
	}{
		// d1 at 23:30 on 31 March; d2 at 01:00 and d3 at 12:00 on 1 April.
		{"days", "2012-03-31", "2012-04-02", "day", []opened{
			{"2012-03-31", "2012-04-01", 1}, {"2012-04-01", "2012-04-02", 2}, {"2012-04-02", "2012-04-03", 0}}},
		{"months", "2012-03-01", "2012-04-30", "month", []opened{
			{"2012-03-01", "2012-04-01", 1}, {"2012-04-01", "2012-05-01", 2}}},
		{"the day that began at 01:00 alone", "2012-04-01", "2012-04-01", "day", []opened{
			{"2012-04-01", "2012-04-02", 2}}},
	}
	p := analytics.ProjectionIn(havana)
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		tables := projections.TablesFor(p, "")
		projectiontest.MustApply(t, db, p, tables, events)
		for _, tt := range tests {
			for _, asOf := range []time.Time{time.Date(2012, 4, 5, 0, 0, 0, 0, time.UTC), time.Date(2012, 4, 1, 16, 0, 0, 0, time.UTC)} {
				params := analytics.KPIParams{Period: tt.kind, From: tt.from, To: tt.to, AsOf: asOf, Zone: havana}
				projectiontest.SameAnswer(t, db, tables, params, analytics.QueryKPIs, "parts", analytics.QueryKPIsFromParts)
				answer, err := analytics.QueryKPIs(t.Context(), db, tables, params)
				if err != nil {
					t.Fatal(err)
				}
				var got []opened
				for _, k := range answer.(analytics.KPIAnswer).Periods {
					got = append(got, opened{k.Period, k.End, k.Deals.Opened})
				}
				if !slices.Equal(got, tt.want) {
					t.Errorf("%s as of %s: periods %v, want %v", tt.name, asOf.Format(time.RFC3339), got, tt.want)
				}
			}
		}
	})
}
