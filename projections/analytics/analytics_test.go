package analytics_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/analytics"
	"github.com/eventcrm/crm/projections/explain"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// question is a params file: which query, and its parameters.
type question struct {
	Query string `json:"query"`
}

// answerIn asks the query a params file names, in zone.
func answerIn(zone *time.Location) projectiontest.AnswerFunc {
	return func(ctx context.Context, db *projections.DB, t projections.Tables, _ string, raw []byte) (any, error) {
		var q question
		if err := json.Unmarshal(raw, &q); err != nil {
			return nil, err
		}
		switch q.Query {
		case "kpis":
			var p analytics.KPIParams
			if err := json.Unmarshal(raw, &p); err != nil {
				return nil, err
			}
			p.Zone = zone
			return analytics.QueryKPIs(ctx, db, t, p)
		case "forecast":
			var p analytics.ForecastParams
			if err := json.Unmarshal(raw, &p); err != nil {
				return nil, err
			}
			p.Zone = zone
			return analytics.QueryForecast(ctx, db, t, p)
		case "nps":
			var p analytics.NPSParams
			if err := json.Unmarshal(raw, &p); err != nil {
				return nil, err
			}
			p.Zone = zone
			return analytics.QueryNPS(ctx, db, t, p)
		}
		return nil, fmt.Errorf("unknown query %q", q.Query)
	}
}

func TestGolden(t *testing.T) {
	t.Run("UTC", func(t *testing.T) {
		projectiontest.RunGolden(t, "testdata/utc", analytics.Projection(), answerIn(time.UTC))
	})
	t.Run("Asia/Tokyo", func(t *testing.T) {
		projectiontest.RunGolden(t, "testdata/tokyo", analytics.ProjectionIn(projectiontest.Tokyo(t)), answerIn(projectiontest.Tokyo(t)))
	})
}

func TestApplyModes(t *testing.T) {
	projectiontest.RunApplyModes(t, "testdata/utc", analytics.Projection())
}

// The name is persisted (checkpoints, table names): it must never change.
func TestName(t *testing.T) {
	if got := analytics.Projection().Name(); got != "sales_analytics" {
		t.Errorf("name = %q", got)
	}
	if analytics.Projection().Version() == analytics.ProjectionIn(projectiontest.Tokyo(t)).Version() {
		t.Error("the version does not change with the zone")
	}
}

// keptQuestions are asked of the kept counts and of the parts, which must agree.
func keptQuestions() []analytics.KPIParams {
	var qs []analytics.KPIParams
	for _, kind := range []string{"day", "week", "month", "quarter", "year"} {
		for _, f := range []analytics.KPIParams{{}, {Owner: "rep-a"}, {Owner: "rep-b"}, {Channel: "web_form"}, {Segment: "enterprise"}} {
			f.Period, f.From, f.To = kind, "2025-02-01", "2025-05-31"
			if kind == "day" {
				f.From, f.To = "2025-03-25", "2025-04-25"
			}
			qs = append(qs, f)
		}
	}
	return qs
}

// checkKeptEqualsParts asks every kept question at the latest fact and an hour later, of the
// kept counts and of the parts.
func checkKeptEqualsParts(t *testing.T, db *projections.DB, tables projections.Tables, applied []eventstore.Event, zone *time.Location) {
	t.Helper()
	latest := projectiontest.Latest(applied)
	if latest.IsZero() {
		latest = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	for _, p := range keptQuestions() {
		for _, asOf := range []time.Time{latest, latest.Add(time.Hour)} {
			p.AsOf, p.Zone = asOf, zone
			projectiontest.SameAnswer(t, db, tables, p, analytics.QueryKPIs, "parts", analytics.QueryKPIsFromParts)
			np := analytics.NPSParams{Period: p.Period, From: p.From, To: p.To, Owner: p.Owner, Segment: p.Segment, AsOf: asOf, Zone: zone}
			projectiontest.SameAnswer(t, db, tables, np, analytics.QueryNPS, "parts", analytics.QueryNPSFromParts)
		}
	}
}

// TestKeptEqualsParts: after every prefix of the golden history, the kept counts answer as
// the parts standing then do (UTC and Tokyo).
func TestKeptEqualsParts(t *testing.T) {
	events := projectiontest.ReadHistory(t, "testdata/utc/sales/events.txt")
	for _, zone := range []*time.Location{time.UTC, projectiontest.Tokyo(t)} {
		t.Run(zone.String(), func(t *testing.T) {
			projectiontest.ForEachPrefix(t, analytics.ProjectionIn(zone), events, 12, func(t *testing.T, db *projections.DB, tables projections.Tables, applied []eventstore.Event) {
				checkKeptEqualsParts(t, db, tables, applied, zone)
			})
		})
	}
}

// TestExplainAddsUp: every figure of the KPIs and NPS of the golden history, as of the end
// and as of days in between, is the sum of the parts its explanation lists, read page by page.
func TestExplainAddsUp(t *testing.T) {
	events := projectiontest.ReadHistory(t, "testdata/utc/sales/events.txt")
	p := analytics.ProjectionIn(projectiontest.Tokyo(t))
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		tables := projections.TablesFor(p, "")
		projectiontest.MustApply(t, db, p, tables, events)
		for _, asOf := range []string{"2025-03-31T23:00:00Z", "2025-04-16T00:00:00Z", "2025-06-01T00:00:00Z"} {
			for _, params := range []analytics.KPIParams{{Period: "month"}, {Period: "week"}, {Period: "month", Owner: "rep-b"},
				{Period: "quarter", Channel: "referral", Segment: "enterprise"}} {
				params.From, params.To, params.Zone = "2025-02-01", "2025-05-31", projectiontest.Tokyo(t)
				params.AsOf, _ = time.Parse(time.RFC3339, asOf)
				checkExplainedKPIs(t, db, tables, params)
			}
		}
	})
}

func checkExplainedKPIs(t *testing.T, db *projections.DB, tables projections.Tables, params analytics.KPIParams) {
	t.Helper()
	ctx := context.Background()
	raw, err := analytics.QueryKPIs(ctx, db, tables, params)
	if err != nil {
		t.Fatal(err)
	}
	answer := raw.(analytics.KPIAnswer)
	type figure struct {
		path          string
		count, amount int64
		currency      string
		median        *float64
	}
	for _, k := range answer.Periods {
		var figs []figure
		add := func(path string, count int64) { figs = append(figs, figure{path: k.Period + "." + path, count: count}) }
		money := func(path string, count int64, currency string, amount int64) {
			figs = append(figs, figure{path: k.Period + "." + path, count: count, currency: currency, amount: amount})
		}
		add("new_leads.total", k.NewLeads.Total)
		for ch, n := range k.NewLeads.ByChannel {
			add("new_leads.by_channel."+ch, n)
		}
		for _, c := range k.Conversions {
			add("conversions."+c.Phase+".entered", c.Entered)
			add("conversions."+c.Phase+".advanced", c.Advanced)
		}
		add("deals.opened", k.Deals.Opened)
		add("deals.won", k.Deals.Won)
		add("deals.lost", k.Deals.Lost)
		for cur, amount := range k.RevenueWon {
			money("revenue_won."+cur, -1, cur, amount)
		}
		figs = append(figs, figure{path: k.Period + ".sales_cycle_days", count: int64(k.SalesCycleDays.Count), median: k.SalesCycleDays.Median},
			figure{path: k.Period + ".lead_to_won_days", count: int64(k.LeadToWonDays.Count), median: k.LeadToWonDays.Median})
		add("tasks.due", k.Tasks.Due)
		add("tasks.on_time", k.Tasks.OnTime)
		add("tasks.late", k.Tasks.Late)
		add("tasks.overdue", k.Tasks.Overdue)
		add("tasks.not_yet_due", k.Tasks.NotYetDue)
		for _, o := range k.Activity {
			for kind, n := range o.Touchpoints {
				add("activity."+o.Owner+".touchpoints."+kind, n)
			}
			add("activity."+o.Owner+".deals_won", o.DealsWon)
			for cur, amount := range o.RevenueWon {
				money("activity."+o.Owner+".revenue_won."+cur, -1, cur, amount)
			}
		}
		for _, f := range figs {
			q := params
			q.Explain, q.Limit = f.path, 2
			var parts []explain.Entry
			var first analytics.ExplainAnswer
			for page := 0; ; page++ {
				raw, err := analytics.QueryKPIs(ctx, db, tables, q)
				if err != nil {
					t.Fatalf("explain %s: %v", f.path, err)
				}
				ea := raw.(analytics.ExplainAnswer)
				if page == 0 {
					first = ea
				}
				parts = append(parts, ea.Parts...)
				if ea.NextCursor == "" {
					break
				}
				q.Cursor = ea.NextCursor
			}
			var count, amount int64
			var days []float64
			for _, p := range parts {
				count += p.Count
				if p.Amount != nil && p.Currency == f.currency {
					amount += *p.Amount
				}
				if p.Days != nil {
					days = append(days, *p.Days)
				}
			}
			where := fmt.Sprintf("as of %s, %+v: %s", params.AsOf.Format(time.RFC3339), strings.TrimSpace(params.Owner+" "+params.Channel), f.path)
			if count != first.Count {
				t.Errorf("%s: the parts count %d, their total says %d", where, count, first.Count)
			}
			if f.count >= 0 && count != f.count {
				t.Errorf("%s = %d, its parts count %d", where, f.count, count)
			}
			if f.currency != "" && (amount != f.amount || first.Amounts[f.currency] != f.amount) {
				t.Errorf("%s = %d %s, its parts add up to %d (total %d)", where, f.amount, f.currency, amount, first.Amounts[f.currency])
			}
			if f.median != nil && len(days) == 0 {
				t.Errorf("%s: a median of no parts", where)
			}
		}
	}
}

func TestNPSRoundsHalfAwayFromZero(t *testing.T) {
	tests := []struct {
		promoters, detractors, responses int64
		want                             float64
	}{
		{5, 6, 16, -6.3}, // -6.25
		{6, 5, 16, 6.3},  // 6.25
		{1, 1, 3, 0},
		{2, 1, 3, 33.3},
		{2, 0, 3, 66.7},
	}
	for _, tt := range tests {
		if got := analytics.NPSScore(tt.promoters, tt.detractors, tt.responses); got == nil || *got != tt.want {
			t.Errorf("NPS(%d, %d, %d) = %v, want %v", tt.promoters, tt.detractors, tt.responses, got, tt.want)
		}
	}
	if analytics.NPSScore(0, 0, 0) != nil {
		t.Error("NPS of no responses is not null")
	}
}
