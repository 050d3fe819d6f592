package value_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/value"
)

// TestAnswersAboutNowHoldFromTheHorizon: the RFM answer and a page of the customers read
// about now, kept for as long as the tables do not change, are for every as_of at or after
// the horizon (the latest event of the generated history) what QueryRFM and QueryCustomers
// answer then, recency counted to each as_of; before the horizon they are not given.
func TestAnswersAboutNowHoldFromTheHorizon(t *testing.T) {
	h := valueHistory(t, 300)
	ctx := context.Background()
	later := []time.Duration{0, time.Microsecond, 36 * time.Hour, 400 * 24 * time.Hour}
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		p := value.Projection(time.UTC)
		tables := projections.TablesFor(p, "")
		projectiontest.MustApply(t, db, p, tables, h.Events)
		before := h.Latest.Add(-time.Microsecond)

		rfm, err := value.QueryRFMNow(ctx, db, tables, time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := rfm.At(before); ok {
			t.Errorf("rfm: the answer about now is given as of %s, before the horizon %s", before, h.Latest)
		}
		for _, d := range later {
			asOf := h.Latest.Add(d)
			got, ok := rfm.At(asOf)
			want, err := value.QueryRFM(ctx, db, tables, time.UTC, asOf)
			if err != nil {
				t.Fatal(err)
			}
			if g, w := projectiontest.JSON(t, got), projectiontest.JSON(t, want); !ok || g != w {
				t.Fatalf("rfm as of %s (given: %t):\nkept %.2000s\nread %.2000s", asOf, ok, g, w)
			}
		}

		first, err := value.QueryCustomers(ctx, db, tables, time.UTC, value.CustomersParams{AsOf: h.Latest, Limit: 5})
		if err != nil {
			t.Fatal(err)
		}
		for _, params := range []value.CustomersParams{{}, {Limit: 5, Cursor: first.NextCursor},
			{Segment: value.SegmentLoyal, Sort: value.SortOrders, Limit: 7}, {Sort: value.SortFirstPurchase, Limit: 3}} {
			now, err := value.QueryCustomersNow(ctx, db, tables, time.UTC, params)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := now.At(before); ok {
				t.Errorf("customers %+v: the page about now is given as of %s, before the horizon %s", params, before, h.Latest)
			}
			for _, d := range later {
				params.AsOf = h.Latest.Add(d)
				got, ok := now.At(params.AsOf)
				want, err := value.QueryCustomers(ctx, db, tables, time.UTC, params)
				if err != nil {
					t.Fatal(err)
				}
				if g, w := projectiontest.JSON(t, got), projectiontest.JSON(t, want); !ok || g != w {
					t.Fatalf("customers %+v (given: %t):\nkept %.2000s\nread %.2000s", params, ok, g, w)
				}
			}
		}
	})
}

// A length in days to 2 decimals, half up, on both sides of zero: the most negative length
// (a recency counted at the end of time from a purchase before 1970 comes near it) answers
// without recursing for ever.
func TestHundredthsOfADay(t *testing.T) {
	const day = int64(86_400_000_000)
	for _, c := range []struct {
		micros, want int64
	}{
		{0, 0},
		{day, 100},
		{day / 200, 1}, // half a hundredth, up
		{day/200 - 1, 0},
		{-day, -100},
		{-day / 200, -1},
		{-1, 0},
	} {
		if got := value.Hundredths(c.micros); got != c.want {
			t.Errorf("Hundredths(%d) = %d, want %d", c.micros, got, c.want)
		}
	}
	value.Hundredths(math.MinInt64) // must return
}
