package leadscore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/domain/settings"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/leadscore"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// The hot list counts the contacts in the index and reads only its page, about now from the
// scores and about an earlier time from the steps in force then; it answers exactly what
// reading every contact found (and, about an earlier time, scoring each from its
// touchpoints) answers, for every threshold, owner, page size and time, on both databases:
// with one band of attribute points, and with a rule that gives a third of the contacts 30
// points (a band that min_score 20 reads whole, and one that min_score 35.5 ranges over).
func TestCountedHotListEqualsFound(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	plain := leadEvents(3000, now)
	for name, events := range map[string][]eventstore.Event{"one band": plain, "two bands": withReferrals(t, plain)} {
		t.Run(name, func(t *testing.T) { countedEqualsFound(t, now, events) })
	}
}

// withReferrals is events with every third contact from a referral, and before them a rule
// that gives a referral 30 points.
func withReferrals(t *testing.T, events []eventstore.Event) []eventstore.Event {
	ls := settings.Defaults().LeadScoring
	ls.Rules = []settings.AttributeRule{{Field: settings.FieldChannel, Match: settings.MatchEquals, Value: "referral", Points: 30}}
	data, err := json.Marshal(settings.LeadScoringChanged{LeadScoring: ls})
	if err != nil {
		t.Fatal(err)
	}
	out := []eventstore.Event{{ID: "settings-1", Stream: settings.StreamName, Type: settings.TypeLeadScoringChanged,
		OccurredAt: events[0].OccurredAt, RecordedAt: events[0].OccurredAt, Data: data}}
	created := 0
	for _, e := range events {
		if e.Type == contact.TypeCreated {
			if created%3 == 0 {
				e.Data = []byte(strings.Replace(string(e.Data), `"web_form"`, `"referral"`, 1))
			}
			created++
		}
		out = append(out, e)
	}
	for i := range out {
		out[i].Position = int64(i + 1)
	}
	return out
}

func countedEqualsFound(t *testing.T, now time.Time, events []eventstore.Event) {
	p := leadscore.Projection()
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		ctx := context.Background()
		tables := projections.TablesFor(p, "")
		projectiontest.MustApply(t, db, p, tables, events)
		asOfs := []time.Time{now, now.Add(-36 * time.Hour), now.AddDate(0, 0, -10), now.AddDate(0, 0, -45),
			now.AddDate(0, 0, -179), now.AddDate(0, 0, -400)}
		for _, asOf := range asOfs {
			for _, min := range []*float64{nil, ptr(0), ptr(1), ptr(5), ptr(20), ptr(35.5), ptr(80), ptr(1e6)} {
				for _, owner := range []string{"", "rep-3"} {
					for _, limit := range []int{1, 7, 100} {
						params := leadscore.LeadParams{AsOf: asOf, MinScore: min, Owner: owner, Limit: limit}
						name := fmt.Sprintf("as_of %s min %v owner %q limit %d", asOf.Format(time.DateOnly), deref(min), owner, limit)
						got, err := leadscore.QueryLeads(ctx, db, tables, params)
						if err != nil {
							t.Fatalf("%s: %v", name, err)
						}
						want, err := leadscore.QueryLeadsFound(ctx, db, tables, params)
						if err != nil {
							t.Fatalf("%s: %v", name, err)
						}
						if !reflect.DeepEqual(got, want) {
							t.Errorf("%s: counted total %d, %d leads; found total %d, %d leads", name, got.Total, len(got.Leads), want.Total, len(want.Leads))
						}
						if min != nil && *min == 20 && owner == "" && !asOf.Before(now.AddDate(0, 0, -45)) && want.Total < 100 {
							t.Fatalf("%s: only %d contacts score 20: the test would not page", name, want.Total)
						}
					}
				}
			}
		}
	})
}

func ptr(f float64) *float64 { return &f }

func deref(f *float64) any {
	if f == nil {
		return "threshold"
	}
	return *f
}
