package value_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/value"
)

// TestKeptEqualsDetail checks the rows the fold keeps against the detail tables: after every
// prefix of the history (purchases back-dated, a merge, ties), every question about now
// (as_of at or after the latest event) answers what the purchases and facts give, in the
// business zone of the projection.
func TestKeptEqualsDetail(t *testing.T) {
	events := projectiontest.ReadHistory(t, "testdata/utc/customers/events.txt")
	questions := []question{
		{Query: "customers"}, {Query: "customers", Sort: "orders", Limit: 2}, {Query: "customers", Segment: "loyal"},
		{Query: "customers", Sort: "first_purchase"}, {Query: "customers", Sort: "customer"},
		{Query: "value", ContactID: "c2"}, {Query: "value", ContactID: "d"}, {Query: "value", ContactID: "c4"},
		{Query: "rfm"}, {Query: "repeat"}, {Query: "season"}, {Query: "upsell"}, {Query: "upsell", Limit: 1},
		{Query: "dormant", Days: 30}, {Query: "dormant", Days: 1, Owner: "rep-b"}, {Query: "dormant", Phase: "lost", Days: 2},
		{Query: "dormant", Days: 30, Limit: 1},
	}
	later := []time.Duration{0, time.Microsecond, 30 * 24 * time.Hour, 400 * 24 * time.Hour}
	for _, zone := range []*time.Location{time.UTC, projectiontest.Tokyo(t)} {
		t.Run(zone.String(), func(t *testing.T) {
			ctx := context.Background()
			projectiontest.ForEachPrefix(t, value.Projection(zone), events, 10, func(t *testing.T, db *projections.DB, tables projections.Tables, applied []eventstore.Event) {
				latest := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
				for _, e := range applied {
					if e.OccurredAt.After(latest) {
						latest = e.OccurredAt
					}
				}
				for _, q := range questions {
					for _, d := range later {
						q.AsOf = latest.Add(d)
						got, gotErr := ask(ctx, db, tables, zone, q)
						want, wantErr := ask(value.DetailOnly(ctx), db, tables, zone, q)
						if g, w := fmt.Sprint(gotErr), fmt.Sprint(wantErr); g != w {
							t.Fatalf("%d events, %+v: error %s, from the detail %s", len(applied), q, g, w)
						}
						if g, w := projectiontest.JSON(t, got), projectiontest.JSON(t, want); g != w {
							t.Fatalf("%d events, %+v:\nkept   %s\ndetail %s", len(applied), q, g, w)
						}
					}
				}
			})
		})
	}
}

// TestKeptEqualsDetailOnAGeneratedHistory compares both paths over a larger generated history
// (hundreds of customers over two years, three currencies), where most days of last purchase
// hold no score threshold: the RFM counts are then mostly read from the kept counts.
func TestKeptEqualsDetailOnAGeneratedHistory(t *testing.T) {
	h := valueHistory(t, 600)
	questions := []question{{Query: "rfm"}, {Query: "customers", Limit: 1000}, {Query: "repeat"}, {Query: "season"},
		{Query: "upsell", Limit: 1000}, {Query: "dormant", Limit: 1000}, {Query: "dormant", Owner: "rep-3", Days: 200}}
	for _, s := range value.Segments() {
		questions = append(questions, question{Query: "customers", Segment: s, Sort: "orders", Limit: 7})
	}
	ctx := context.Background()
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		p := value.Projection(time.UTC)
		tables := projections.TablesFor(p, "")
		projectiontest.MustApply(t, db, p, tables, h.Events)
		for _, q := range questions {
			q.AsOf = h.Latest.Add(time.Hour)
			got, err := ask(ctx, db, tables, time.UTC, q)
			if err != nil {
				t.Fatal(err)
			}
			want, err := ask(value.DetailOnly(ctx), db, tables, time.UTC, q)
			if err != nil {
				t.Fatal(err)
			}
			if g, w := projectiontest.JSON(t, got), projectiontest.JSON(t, want); g != w {
				t.Fatalf("%+v:\nkept   %.2000s\ndetail %.2000s", q, g, w)
			}
		}
	})
}
