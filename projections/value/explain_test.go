package value_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/explain"
	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/value"
)

// TestExplainAddsUp: every figure of the seasonality (each month's orders, and its orders and
// revenue per currency), of the repeat rate (each cohort's customers and repeat customers), of
// RFM, of the customers list and a contact's value, of the upsell candidates and of the dormant
// contacts (their count and each owner's, over several questions), in UTC and Tokyo, about now and as of past times, is what its parts add up to, read page by
// page; the golden history has back-dated purchases and a merge, the generated one three
// currencies over two years.
func TestExplainAddsUp(t *testing.T) {
	golden := projectiontest.ReadHistory(t, "testdata/utc/customers/events.txt")
	generated := valueHistory(t, 150)
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		checked := 0
		for i, events := range [][]eventstore.Event{golden, generated.Events} {
			log := logOf(events)
			for j, zone := range []*time.Location{time.UTC, projectiontest.Tokyo(t)} {
				p := value.Projection(zone)
				tables := projections.TablesFor(p, fmt.Sprintf("h%dz%d", i, j))
				projectiontest.MustApply(t, db, p, tables, events)
				first, last := projectiontest.Span(events)
				for k := range 4 {
					asOf := first.Add(time.Duration(k+1) * last.Sub(first) / 3)
					checked += checkExplainedSeasons(t, db, tables, zone, asOf)
					checked += checkExplainedRepeats(t, db, tables, zone, asOf)
					checked += checkExplainedRFM(t, db, tables, zone, asOf)
					checked += checkExplainedCustomers(t, db, tables, zone, asOf, log)
					checked += checkExplainedUpsell(t, db, tables, zone, asOf, log)
					checked += checkExplainedDormant(t, db, tables, zone, asOf, log)
				}
			}
		}
		if checked < 100 {
			t.Fatalf("only %d figures checked: the histories explain too little", checked)
		}
	})
}

func checkExplainedSeasons(t *testing.T, db *projections.DB, tables projections.Tables, zone *time.Location, asOf time.Time) int {
	t.Helper()
	ctx := context.Background()
	answer, err := value.QuerySeasonality(ctx, db, tables, zone, asOf)
	if err != nil {
		t.Fatal(err)
	}
	nonZero := 0
	for _, m := range answer.Months {
		parts := explainSeason(t, db, tables, asOf, fmt.Sprintf("months.%d.orders", m.Month))
		if int64(len(parts)) != m.Orders {
			t.Errorf("%s as of %s: month %d orders %d, its parts %d", zone, asOf, m.Month, m.Orders, len(parts))
		}
		nonZero += min(len(parts), 1)
		for _, c := range m.Currencies {
			for _, figure := range []string{"orders", "revenue"} {
				path := fmt.Sprintf("months.%d.currencies.%s.%s", m.Month, c.Currency, figure)
				var revenue int64
				parts := explainSeason(t, db, tables, asOf, path)
				for _, p := range parts {
					if p.Currency != c.Currency || p.Amount == nil {
						t.Fatalf("%s: part %+v is not in %s", path, p, c.Currency)
					}
					revenue += *p.Amount
				}
				if int64(len(parts)) != c.Orders || revenue != c.Revenue {
					t.Errorf("%s as of %s: %s: %d orders, %d revenue; its parts %d, %d", zone, asOf, path, c.Orders, c.Revenue, len(parts), revenue)
				}
				nonZero++
			}
		}
	}
	return nonZero
}

func checkExplainedRepeats(t *testing.T, db *projections.DB, tables projections.Tables, zone *time.Location, asOf time.Time) int {
	t.Helper()
	answer, err := value.QueryRepeatRate(context.Background(), db, tables, zone, asOf)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range answer.Cohorts {
		for _, f := range []struct {
			figure string
			want   int64
		}{{"customers", c.Customers}, {"repeat_customers", c.RepeatCustomers}} {
			path := fmt.Sprintf("cohorts.%s.%s", c.Cohort, f.figure)
			if parts := explainParts(t, value.ExplainRepeatRate, db, tables, asOf, path); int64(len(parts)) != f.want {
				t.Errorf("%s as of %s: %s = %d, its parts %d", zone, asOf, path, f.want, len(parts))
			}
		}
	}
	return 2 * len(answer.Cohorts)
}

// checkExplainedRFM: every figure of the RFM answer (the customers, each segment's customers
// and revenue per currency, each cell of the grid) is what its parts add up to: the count the
// customers, one part counting 1 per customer (its last purchase) and the others 0, the
// amounts the segment's revenue; every segment and cell's customers together are all of them.
func checkExplainedRFM(t *testing.T, db *projections.DB, tables projections.Tables, zone *time.Location, asOf time.Time) int {
	t.Helper()
	answer, err := value.QueryRFM(context.Background(), db, tables, zone, asOf)
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	customers := func(path string, want int64) map[string]bool {
		t.Helper()
		parts := explainRFM(t, db, tables, asOf, path)
		seen := map[string]bool{}
		var count int64
		for _, p := range parts {
			if p.Count == 1 {
				if seen[p.Entity] {
					t.Fatalf("%s: customer %s counted twice", path, p.Entity)
				}
				seen[p.Entity] = true
			}
			count += p.Count
		}
		if count != want || int64(len(seen)) != want {
			t.Errorf("%s as of %s: %s = %d, its parts count %d customers", zone, asOf, path, want, count)
		}
		checked++
		return seen
	}
	all := customers("customers", answer.Customers)
	inSegments := map[string]bool{}
	for _, s := range answer.Segments {
		path := "segments." + s.Segment + ".customers"
		for id := range customers(path, s.Customers) {
			if inSegments[id] || !all[id] {
				t.Fatalf("%s: customer %s is in two segments or not a customer", path, id)
			}
			inSegments[id] = true
		}
		for _, m := range s.Revenue {
			path := "segments." + s.Segment + ".revenue." + m.Currency
			var revenue int64
			for _, p := range explainRFM(t, db, tables, asOf, path) {
				if p.Currency != m.Currency || p.Amount == nil || p.Count != 1 {
					t.Fatalf("%s: part %+v is not an order in %s", path, p, m.Currency)
				}
				revenue += *p.Amount
			}
			if revenue != m.Amount {
				t.Errorf("%s as of %s: %s = %d, its parts %d", zone, asOf, path, m.Amount, revenue)
			}
			checked++
		}
	}
	inCells := map[string]bool{}
	for _, c := range answer.Grid {
		path := fmt.Sprintf("grid.%d.%d.customers", c.R, c.F)
		for id := range customers(path, c.Customers) {
			if inCells[id] || !all[id] {
				t.Fatalf("%s: customer %s is in two cells or not a customer", path, id)
			}
			inCells[id] = true
		}
	}
	if len(inSegments) != len(all) || len(inCells) != len(all) {
		t.Errorf("%s as of %s: %d customers, %d in the segments, %d in the grid", zone, asOf, len(all), len(inSegments), len(inCells))
	}
	return checked
}

func explainRFM(t *testing.T, db *projections.DB, tables projections.Tables, asOf time.Time, path string) []explain.Entry {
	t.Helper()
	parts := projectiontest.ExplainAll(t, path, func(cursor string) (explain.Answer, error) {
		return value.ExplainRFM(context.Background(), db, tables, asOf, path, 4, cursor)
	})
	for _, p := range parts {
		if p.Amount == nil || p.OccurredAt.After(asOf) {
			t.Fatalf("explain %s: part %+v names no purchase up to %s", path, p, asOf)
		}
	}
	return parts
}

func explainSeason(t *testing.T, db *projections.DB, tables projections.Tables, asOf time.Time, path string) []explain.Entry {
	t.Helper()
	return explainParts(t, value.ExplainSeasonality, db, tables, asOf, path)
}

type explainFunc func(ctx context.Context, db *projections.DB, t projections.Tables, asOf time.Time, path string, limit int, cursor string) (explain.Answer, error)

func explainParts(t *testing.T, explainer explainFunc, db *projections.DB, tables projections.Tables, asOf time.Time, path string) []explain.Entry {
	t.Helper()
	return projectiontest.CountingOne(t, path, projectiontest.ExplainAll(t, path, func(cursor string) (explain.Answer, error) {
		return explainer(context.Background(), db, tables, asOf, path, 4, cursor)
	}))
}

func TestExplainRejectsBadPaths(t *testing.T) {
	asOf := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		p := value.Projection(time.UTC)
		tables := projections.TablesFor(p, "")
		projectiontest.MustApply(t, db, p, tables, nil)
		for _, tt := range []struct{ path, field string }{
			{"months.13.orders", "explain"}, {"months.01.orders", "explain"}, {"months.1", "explain"},
			{"months.1.currencies.EUR", "explain"}, {"months.1.revenue", "explain"}, {"orders.1", "explain"},
		} {
			_, err := value.ExplainSeasonality(context.Background(), db, tables, asOf, tt.path, 0, "")
			var de *domain.Error
			if !errors.As(err, &de) || de.Code != domain.CodeInvalid || de.Field != tt.field {
				t.Errorf("%s: error = %v, want an invalid %s", tt.path, err, tt.field)
			}
		}
		if _, err := value.ExplainSeasonality(context.Background(), db, tables, asOf, "months.1.orders", explain.MaxLimit+1, ""); err == nil {
			t.Error("a limit too large is accepted")
		}
		for _, path := range []string{"", "segments", "segments.vip.customers", "segments.champions", "segments.champions.revenue",
			"segments.champions.revenue.", "segments.champions.revenue.JPY.amount", "grid.0.1.customers", "grid.6.1.customers",
			"grid.01.1.customers", "grid.1.1", "grid.1.customers", "customers.count", "months.1.orders"} {
			_, err := value.ExplainRFM(context.Background(), db, tables, asOf, path, 0, "")
			var de *domain.Error
			if !errors.As(err, &de) || de.Code != domain.CodeInvalid || de.Field != "explain" {
				t.Errorf("rfm %q: error = %v, want an invalid explain", path, err)
			}
		}
		if _, err := value.ExplainRFM(context.Background(), db, tables, asOf, "customers", explain.MaxLimit+1, ""); err == nil {
			t.Error("rfm: a limit too large is accepted")
		}
		if _, err := value.ExplainRFM(context.Background(), db, tables, asOf, "customers", 0, "not-a-cursor"); err == nil {
			t.Error("rfm: a cursor not given by a page is accepted")
		}
		for _, path := range []string{"cohorts.2024-01.repeat_rate", "cohorts.2024.customers", "cohorts.2024-01", "months.1.orders"} {
			_, err := value.ExplainRepeatRate(context.Background(), db, tables, asOf, path, 0, "")
			var de *domain.Error
			if !errors.As(err, &de) || de.Code != domain.CodeInvalid || de.Field != "explain" {
				t.Errorf("%s: error = %v, want an invalid explain", path, err)
			}
		}
	})
}
