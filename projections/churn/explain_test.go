package churn_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/churn"
	"github.com/eventcrm/crm/projections/explain"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// TestExplainAddsUp: every figure of the churn points (per phase: entered, ended, lost,
// churned, dormant; per stage and reason of the lost deals: the count and the amount per
// currency), of every contact and of a cohort and channel, across dormancy thresholds, as of
// times throughout the history and after it, is what its parts add up to, read page by page.
// The history is the golden one followed by generated contacts moving on, back, out and back
// in, with touchpoints, and deals lost and reopened.
func TestExplainAddsUp(t *testing.T) {
	events := projectiontest.FollowedBy(t, projectiontest.ReadHistory(t, "testdata/churn_points/events.txt"),
		generatedChurns(rand.New(rand.NewPCG(5, 8)), 50))
	asOfs := projectiontest.Throughout(events, 6)
	asOfs = append(asOfs, asOfs[5].Add(40*24*time.Hour))
	explained := projectiontest.Explained[churn.Params, churn.Answer]{Projection: churn.Projection(), Query: churn.Query,
		Explain: churn.Explain, Limit: 3, CountingOne: true}
	explained.AddsUp(t, events, 150, asOfs, []churn.Params{{}, {DormantDays: 10}, {Cohort: "2024-01", Channel: "web_form", DormantDays: 30}},
		checkExplainedChurn)
}

func checkExplainedChurn(f *projectiontest.Figures, db *projections.DB, tables projections.Tables, params churn.Params, answer churn.Answer) int {
	f.T.Helper()
	check := f.Count
	for _, p := range answer.Phases {
		check(fmt.Sprintf("phases.%s.entered", p.Phase), p.Entered)
		check(fmt.Sprintf("phases.%s.ended", p.Phase), p.Ended)
		check(fmt.Sprintf("phases.%s.lost", p.Phase), p.Lost)
		check(fmt.Sprintf("phases.%s.churned", p.Phase), p.Churned)
		check(fmt.Sprintf("phases.%s.dormant", p.Phase), p.Dormant)
	}
	for _, l := range answer.LostDeals {
		check(fmt.Sprintf("lost_deals.%s.%s.count", l.Stage, l.Reason), l.Count)
		for _, m := range l.Amounts {
			f.Amount(fmt.Sprintf("lost_deals.%s.%s.amounts.%s", l.Stage, l.Reason, m.Currency), m.Currency, m.Amount)
		}
	}
	return checkExplainedChurns(f, db, tables, params)
}

// checkExplainedChurns: every fact of every churned customer listed (read page by page) is
// explained by its events, each churn's in its bucket (the churn's time): the churn, the win
// before it, the last survey (its score the NPS) and touchpoint, and the tasks overdue then.
func checkExplainedChurns(f *projectiontest.Figures, db *projections.DB, tables projections.Tables, params churn.Params) int {
	t := f.T
	t.Helper()
	var churns []churn.ChurnedCustomer
	for cursor := ""; ; {
		p := params
		p.Limit, p.Cursor = 4, cursor
		answer, err := churn.Query(context.Background(), db, tables, p)
		if err != nil {
			t.Fatal(err)
		}
		churns = append(churns, answer.ChurnedCustomers...)
		if cursor = answer.NextCursor; cursor == "" {
			break
		}
	}
	checked := 0
	for _, c := range churns {
		bucket := c.ChurnedAt.UTC().Format(time.RFC3339Nano)
		parts := func(figure string) []explain.Entry {
			t.Helper()
			var mine []explain.Entry
			path := "churned_customers." + c.ContactID + "." + figure
			for _, p := range f.Parts(path) {
				if p.Bucket != bucket {
					continue // another churn of the contact's
				}
				if p.OccurredAt.After(c.ChurnedAt) {
					t.Fatalf("%s: part %+v is after the churn", path, p)
				}
				mine = append(mine, p)
			}
			checked++
			return mine
		}
		at := func(figure string, want *time.Time) []explain.Entry {
			t.Helper()
			ps := parts(figure)
			if want == nil && len(ps) != 0 || want != nil && (len(ps) != 1 || !ps[0].OccurredAt.Equal(*want)) {
				t.Errorf("as of %s, %+v: %s's %s = %v, its parts %+v", params.AsOf, params, c.ContactID, figure, want, ps)
			}
			return ps
		}
		at("churned_at", &c.ChurnedAt)
		at("from_phase", &c.ChurnedAt)
		at("won_at", c.WonAt)
		if ps := at("days_won_to_churn", c.WonAt); len(ps) == 1 && explain.Days(c.ChurnedAt.Sub(ps[0].OccurredAt).Microseconds()) != *c.DaysWonToChurn {
			t.Errorf("%s: days won to churn %v, its part %+v", c.ContactID, *c.DaysWonToChurn, ps[0])
		}
		at("last_touchpoint_at", c.LastTouchpointAt)
		if ps := at("days_since_last_touchpoint", c.LastTouchpointAt); len(ps) == 1 &&
			explain.Days(c.ChurnedAt.Sub(ps[0].OccurredAt).Microseconds()) != *c.DaysSinceLastTouchpoint {
			t.Errorf("%s: days since the last touchpoint %v, its part %+v", c.ContactID, *c.DaysSinceLastTouchpoint, ps[0])
		}
		ps := parts("last_nps")
		if c.LastNPS == nil && len(ps) != 0 || c.LastNPS != nil && (len(ps) != 1 || ps[0].Value == nil || *ps[0].Value != int64(*c.LastNPS)) {
			t.Errorf("as of %s: %s's last NPS %v, its parts %+v", params.AsOf, c.ContactID, c.LastNPS, ps)
		}
		if ps := parts("overdue_tasks"); len(ps) != c.OverdueTasks {
			t.Errorf("as of %s, %+v: %s's overdue tasks %d, its parts %+v", params.AsOf, params, c.ContactID, c.OverdueTasks, ps)
		}
	}
	return checked
}

// generatedChurns writes the history of n contacts, one after the other: phase changes on,
// back, out (lost, churned) and back in, touchpoints now and then, some merged into an
// earlier contact (see projectiontest.Written.MergeSome), and a deal lost, some reopened and
// lost again.
func generatedChurns(rng *rand.Rand, n int) string {
	w := projectiontest.NewWritten(rng, time.Date(2024, 1, 3, 9, 0, 0, 0, time.UTC))
	forward := []string{"lead", "approach", "discovery", "proposal", "won", "follow_up", "loyal"}
	for i := range n {
		id := fmt.Sprintf("g%d", i)
		w.At = w.At.Add(time.Duration(rng.IntN(72)) * time.Hour)
		w.Line("contact-"+id, "contact.created.v1", fmt.Sprintf(`{"contact_id":%q,"name":"G","channel":%q,"owner":"rep-a"}`,
			id, w.Pick("web_form", "seminar")))
		created := w.At
		phase, step := "lead", 0
		for range 1 + rng.IntN(6) {
			w.At = w.At.Add(time.Duration(1+rng.IntN(20*24)) * time.Hour)
			if rng.IntN(3) == 0 {
				w.Line("contact-"+id, "contact.touchpoint_recorded.v1", fmt.Sprintf(`{"contact_id":%q,"touchpoint_id":"t%s-%d","kind":"call","phase":%q}`,
					id, id, rng.IntN(1_000_000), phase))
				w.At = w.At.Add(time.Duration(1+rng.IntN(10*24)) * time.Hour)
			}
			var to string
			switch {
			case step < 0:
				step = rng.IntN(2) // a win-back
				to = forward[step]
			case rng.IntN(5) == 0:
				step, to = -1, w.Pick("lost", "churned")
			case rng.IntN(5) == 0 && step > 0:
				step = rng.IntN(step)
				to = forward[step]
			case step+1 < len(forward):
				step++
				to = forward[step]
			default:
				step, to = -1, "churned"
			}
			w.Line("contact-"+id, "contact.phase_changed.v1", fmt.Sprintf(`{"contact_id":%q,"from":%q,"to":%q,"rule":"forward"}`, id, phase, to))
			phase = to
		}
		w.MergeSome("g", i, created)
		if rng.IntN(2) == 0 {
			deal := "d" + id
			stage := w.Pick("qualification", "proposal", "negotiation")
			lose := func() {
				w.At = w.At.Add(time.Duration(1+rng.IntN(96)) * time.Hour)
				w.Line("deal-"+deal, "deal.lost.v1", fmt.Sprintf(`{"deal_id":%q,"contact_id":%q,"from_stage":%q,"reason":%q,"amount":{"amount":%d,"currency":%q}}`,
					deal, id, stage, w.Pick("price", "timing"), 1+rng.IntN(100000), w.Pick("EUR", "JPY")))
			}
			lose()
			if rng.IntN(2) == 0 {
				w.At = w.At.Add(time.Duration(1+rng.IntN(96)) * time.Hour)
				w.Line("deal-"+deal, "deal.reopened.v1", fmt.Sprintf(`{"deal_id":%q,"from":"lost","to":%q}`, deal, stage))
				if rng.IntN(2) == 0 {
					lose()
				}
			}
		}
	}
	return w.String()
}

func TestExplainRejectsBadPaths(t *testing.T) {
	asOf := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	projectiontest.Refuses(t, churn.Projection(), churn.Explain, []projectiontest.Refusal[churn.Params]{
		{Name: "no as_of", Params: churn.Params{Explain: "phases.lead.entered"}, Field: "as_of"},
		{Name: "no figure", Params: churn.Params{AsOf: asOf, Explain: "phases.lead"}, Field: "explain"},
		{Name: "an exit", Params: churn.Params{AsOf: asOf, Explain: "phases.lost.entered"}, Field: "explain"},
		{Name: "a rate", Params: churn.Params{AsOf: asOf, Explain: "phases.lead.drop_off_rate"}, Field: "explain"},
		{Name: "a closed stage", Params: churn.Params{AsOf: asOf, Explain: "lost_deals.won.price.count"}, Field: "explain"},
		{Name: "amounts of nothing", Params: churn.Params{AsOf: asOf, Explain: "lost_deals.proposal.price.amounts"}, Field: "explain"},
		{Name: "bad dormancy", Params: churn.Params{AsOf: asOf, DormantDays: -1, Explain: "phases.lead.dormant"}, Field: "dormant_days"},
		{Name: "limit too large", Params: churn.Params{AsOf: asOf, Explain: "phases.lead.entered", Limit: explain.MaxLimit + 1}, Field: "limit"},
		{Name: "cursor not one", Params: churn.Params{AsOf: asOf, Explain: "phases.lead.entered", Cursor: "!!"}, Field: "cursor"},
		{Name: "a churned customer's name", Params: churn.Params{AsOf: asOf, Explain: "churned_customers.k1.name"}, Field: "explain"},
		{Name: "a churned customer's figure of nobody", Params: churn.Params{AsOf: asOf, Explain: "churned_customers.overdue_tasks"}, Field: "explain"},
		{Name: "not a churned customer", Params: churn.Params{AsOf: asOf, Explain: "churned_customers.k1.overdue_tasks"}, Field: "explain"},
		{Name: "churned customers' limit", Params: churn.Params{AsOf: asOf, Explain: "churned_customers.k1.overdue_tasks", Limit: -1}, Field: "limit"},
	})
}
