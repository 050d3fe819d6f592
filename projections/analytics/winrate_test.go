package analytics_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/analytics"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// TestWinRateByAmountOfZeroAmounts: the win rate by amount of a currency is its won amounts
// over its won and lost amounts, null when both are zero (deals closed for nothing, a free
// plan), as every rate with nothing to rate. In March: USD won 300 (d3) and lost 100 (d4):
// 300 / 400 = 0.75; JPY won 0 (d1) and lost 0 (d2): 0 / 0, null; EUR opened only (d5): no
// closed deal, not listed. By count: 2 won of 4 closed = 0.5.
func TestWinRateByAmountOfZeroAmounts(t *testing.T) {
	events := projectiontest.MustParseHistory(t, `
2025-03-01T09:00:00Z contact-c1 contact.created.v1 {"contact_id":"c1","name":"Aiko","channel":"web_form","owner":"rep-a"}
2025-03-02T09:00:00Z deal-d1 deal.opened.v1 {"deal_id":"d1","contact_id":"c1","title":"Free plan","amount":{"amount":0,"currency":"JPY"},"owner":"rep-a","stage":"qualification"}
2025-03-02T09:00:00Z deal-d2 deal.opened.v1 {"deal_id":"d2","contact_id":"c1","title":"Free trial","amount":{"amount":0,"currency":"JPY"},"owner":"rep-a","stage":"qualification"}
2025-03-02T09:00:00Z deal-d3 deal.opened.v1 {"deal_id":"d3","contact_id":"c1","title":"Seats","amount":{"amount":300,"currency":"USD"},"owner":"rep-a","stage":"qualification"}
2025-03-02T09:00:00Z deal-d4 deal.opened.v1 {"deal_id":"d4","contact_id":"c1","title":"Support","amount":{"amount":100,"currency":"USD"},"owner":"rep-a","stage":"qualification"}
2025-03-02T09:00:00Z deal-d5 deal.opened.v1 {"deal_id":"d5","contact_id":"c1","title":"Pilot","amount":{"amount":900,"currency":"EUR"},"owner":"rep-a","stage":"qualification"}
2025-03-10T09:00:00Z deal-d1 deal.won.v1 {"deal_id":"d1","contact_id":"c1","from_stage":"qualification","amount":{"amount":0,"currency":"JPY"},"closed_at":"2025-03-10"}
2025-03-11T09:00:00Z deal-d2 deal.lost.v1 {"deal_id":"d2","contact_id":"c1","from_stage":"qualification","reason":"price","amount":{"amount":0,"currency":"JPY"}}
2025-03-12T09:00:00Z deal-d3 deal.won.v1 {"deal_id":"d3","contact_id":"c1","from_stage":"qualification","amount":{"amount":300,"currency":"USD"},"closed_at":"2025-03-12"}
2025-03-13T09:00:00Z deal-d4 deal.lost.v1 {"deal_id":"d4","contact_id":"c1","from_stage":"qualification","reason":"price","amount":{"amount":100,"currency":"USD"}}
`)
	const want = `{"opened":5,"won":2,"lost":2,"win_rate":0.5,"win_rate_by_amount":{"JPY":null,"USD":0.75}}`
	p := analytics.Projection()
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		tables := projections.TablesFor(p, "")
		projectiontest.MustApply(t, db, p, tables, events)
		for _, asOf := range []time.Time{time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC), time.Date(2025, 3, 13, 9, 0, 0, 0, time.UTC)} {
			params := analytics.KPIParams{Period: "month", From: "2025-03-01", To: "2025-03-31", AsOf: asOf}
			answer, err := analytics.QueryKPIs(t.Context(), db, tables, params)
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.Marshal(answer.(analytics.KPIAnswer).Periods[0].Deals)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != want {
				t.Errorf("as of %s: deals %s, want %s", asOf.Format(time.RFC3339), got, want)
			}
			projectiontest.SameAnswer(t, db, tables, params, analytics.QueryKPIs, "parts", analytics.QueryKPIsFromParts)
		}
	})
}
