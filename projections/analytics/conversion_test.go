package analytics_test

import (
	"testing"
	"time"

	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/analytics"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// TestConversionOfTheEntrysOwnerAndSegment: a conversion counts, of the contacts that entered
// a phase in the period, those that went on; with a filter, the contacts that entered it for
// that owner or in that segment. c1 is rep-a's smb lead on Mar 3, handed to rep-b in segment
// enterprise on Mar 4, and moves to approach on Mar 5: its lead conversion is rep-a's and
// smb's, 1 of 1, and none of rep-b's or enterprise's (whose approach entry it is).
func TestConversionOfTheEntrysOwnerAndSegment(t *testing.T) {
	events := projectiontest.MustParseHistory(t, `
2025-03-03T09:00:00Z contact-c1 contact.created.v1 {"contact_id":"c1","name":"Aiko","channel":"web_form","owner":"rep-a","segment":"smb"}
2025-03-04T09:00:00Z contact-c1 contact.owner_changed.v1 {"contact_id":"c1","from":"rep-a","to":"rep-b"}
2025-03-04T10:00:00Z contact-c1 contact.details_changed.v2 {"contact_id":"c1","segment":"enterprise"}
2025-03-05T09:00:00Z contact-c1 contact.phase_changed.v1 {"contact_id":"c1","from":"lead","to":"approach","rule":"forward"}
`)
	type conversion struct{ entered, advanced int64 }
	one, none := conversion{1, 1}, conversion{0, 0}
	tests := []struct {
		name           string
		params         analytics.KPIParams
		lead, approach conversion
	}{
		{"everyone", analytics.KPIParams{}, one, conversion{1, 0}},
		{"rep-a", analytics.KPIParams{Owner: "rep-a"}, one, none},
		{"rep-b", analytics.KPIParams{Owner: "rep-b"}, none, conversion{1, 0}},
		{"smb", analytics.KPIParams{Segment: "smb"}, one, none},
		{"enterprise", analytics.KPIParams{Segment: "enterprise"}, none, conversion{1, 0}},
		{"rep-a and web_form", analytics.KPIParams{Owner: "rep-a", Channel: "web_form"}, one, none},
		{"rep-b and enterprise", analytics.KPIParams{Owner: "rep-b", Segment: "enterprise"}, none, conversion{1, 0}},
	}
	p := analytics.Projection()
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		tables := projections.TablesFor(p, "")
		projectiontest.MustApply(t, db, p, tables, events)
		for _, tt := range tests {
			for _, asOf := range []time.Time{time.Date(2025, 3, 6, 0, 0, 0, 0, time.UTC), time.Date(2025, 3, 5, 9, 0, 0, 0, time.UTC)} {
				params := tt.params
				params.Period, params.From, params.To, params.AsOf = "month", "2025-03-01", "2025-03-31", asOf
				answer, err := analytics.QueryKPIs(t.Context(), db, tables, params)
				if err != nil {
					t.Fatal(err)
				}
				got := map[string]conversion{}
				for _, c := range answer.(analytics.KPIAnswer).Periods[0].Conversions {
					got[c.Phase] = conversion{c.Entered, c.Advanced}
				}
				if got["lead"] != tt.lead || got["approach"] != tt.approach {
					t.Errorf("%s as of %s: lead %v, approach %v; want %v, %v", tt.name, asOf.Format(time.RFC3339), got["lead"], got["approach"], tt.lead, tt.approach)
				}
				projectiontest.SameAnswer(t, db, tables, params, analytics.QueryKPIs, "parts", analytics.QueryKPIsFromParts)
			}
		}
	})
}
