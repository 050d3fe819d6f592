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
// revenue per currency) and of the repeat rate (each cohort's customers and repeat customers),
// in UTC and Tokyo, about now and as of past times, is what its parts add up to, read page by
// page; the golden history has back-dated purchases and a merge, the generated one three
// currencies over two years.
func TestExplainAddsUp(t *testing.T) {
	golden := projectiontest.ReadHistory(t, "testdata/utc/customers/events.txt")
	generated := valueHistory(t, 150)
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		checked := 0
		for i, events := range [][]eventstore.Event{golden, generated.events} {
			for j, zone := range []*time.Location{time.UTC, tokyo(t)} {
				p := value.Projection(zone)
				tables := projections.TablesFor(p, fmt.Sprintf("h%dz%d", i, j))
				projectiontest.MustApply(t, db, p, tables, events)
				first, last := events[0].OccurredAt, events[0].OccurredAt
				for _, e := range events {
					if e.OccurredAt.Before(first) {
						first = e.OccurredAt
					}
					if e.OccurredAt.After(last) {
						last = e.OccurredAt
					}
				}
				for k := range 4 {
					asOf := first.Add(time.Duration(k+1) * last.Sub(first) / 3)
					checked += checkExplainedSeasons(t, db, tables, zone, asOf)
					checked += checkExplainedRepeats(t, db, tables, zone, asOf)
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

func explainSeason(t *testing.T, db *projections.DB, tables projections.Tables, asOf time.Time, path string) []explain.Entry {
	t.Helper()
	return explainParts(t, value.ExplainSeasonality, db, tables, asOf, path)
}

type explainFunc func(ctx context.Context, db *projections.DB, t projections.Tables, asOf time.Time, path string, limit int, cursor string) (explain.Answer, error)

func explainParts(t *testing.T, explainer explainFunc, db *projections.DB, tables projections.Tables, asOf time.Time, path string) []explain.Entry {
	t.Helper()
	var (
		parts  []explain.Entry
		cursor string
	)
	for {
		a, err := explainer(context.Background(), db, tables, asOf, path, 4, cursor)
		if err != nil {
			t.Fatalf("explain %s: %v", path, err)
		}
		parts = append(parts, a.Parts...)
		if a.NextCursor == "" {
			if int64(len(parts)) != a.Count {
				t.Fatalf("explain %s: %d parts listed, the total says %d", path, len(parts), a.Count)
			}
			break
		}
		cursor = a.NextCursor
	}
	for _, p := range parts {
		if p.EventID == "" || p.Position <= 0 || p.Entity == "" || p.Count != 1 {
			t.Fatalf("explain %s: part %+v names no contact or event", path, p)
		}
	}
	return parts
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
		for _, path := range []string{"cohorts.2024-01.repeat_rate", "cohorts.2024.customers", "cohorts.2024-01", "months.1.orders"} {
			_, err := value.ExplainRepeatRate(context.Background(), db, tables, asOf, path, 0, "")
			var de *domain.Error
			if !errors.As(err, &de) || de.Code != domain.CodeInvalid || de.Field != "explain" {
				t.Errorf("%s: error = %v, want an invalid explain", path, err)
			}
		}
	})
}
