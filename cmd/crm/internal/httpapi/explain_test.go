package httpapi_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eventcrm/crm/projections/board"
	"github.com/eventcrm/crm/projections/explain"
)

// The figures of the board, the journey map and the churn points are explained over HTTP
// from the live read models: the deals opened now are the parts of their stage's count and
// total, with the events that opened them, paged by next_cursor; the contact created now is
// the part of the leads entered.
func TestExplainedOverHTTP(t *testing.T) {
	t.Parallel()
	a := newReadAPI(t, 5*time.Second)
	contactID := a.createContact()
	var deals []string
	var last int64
	for _, amount := range []int{1000, 2000, 4000} {
		r := a.do("POST", "/v1/deals", appToken, `{"contact_id":"`+contactID+`","title":"Plan","amount":`+strconv.Itoa(amount)+`,"currency":"EUR"}`)
		if r.status != http.StatusCreated {
			t.Fatalf("open deal: %d %s", r.status, r.body)
		}
		deals = append(deals, r.json(t)["id"].(string))
		last = int64(r.json(t)["position"].(float64))
	}
	min := "min_position=" + strconv.FormatInt(last, 10)
	var b answer[board.Answer]
	if r := a.read("/v1/pipeline/board?"+min, &b); r.status != http.StatusOK || b.Data.Stages[0].Count != 3 {
		t.Fatalf("board: %d %s", r.status, r.body)
	}
	stage := string(b.Data.Stages[0].Stage)
	var e answer[explain.Answer]
	if r := a.read("/v1/pipeline/board?"+min+"&explain=stages."+stage+".totals.EUR&limit=2", &e); r.status != http.StatusOK ||
		e.Data.Count != 3 || e.Data.Amounts["EUR"] != 7000 || len(e.Data.Parts) != 2 || e.Data.NextCursor == "" ||
		e.Data.Parts[0].Entity != deals[0] || e.Data.Parts[0].EventID == "" || e.Freshness.Stale {
		t.Fatalf("explain the total: %d %s", r.status, r.body)
	}
	// The contact entered lead when it was created: the journey map's part of it.
	var j answer[explain.Answer]
	if r := a.read("/v1/analytics/journey-map?"+min+"&explain=by_phase.steps.lead.entered", &j); r.status != http.StatusOK ||
		j.Data.Count != 1 || len(j.Data.Parts) != 1 || j.Data.Parts[0].Entity != contactID || j.Data.Parts[0].Figure != "phase/entered/lead" {
		t.Fatalf("explain the journey map: %d %s", r.status, r.body)
	}
	var c answer[explain.Answer]
	if r := a.read("/v1/analytics/churn-points?"+min+"&explain=phases.lead.entered", &c); r.status != http.StatusOK ||
		c.Data.Count != 1 || len(c.Data.Parts) != 1 || c.Data.Parts[0].Entity != contactID || c.Data.Parts[0].Figure != "entered/lead" {
		t.Fatalf("explain the churn points: %d %s", r.status, r.body)
	}
	var e2 answer[explain.Answer]
	if r := a.read("/v1/pipeline/board?"+min+"&explain=stages."+stage+".totals.EUR&limit=2&cursor="+e.Data.NextCursor, &e2); r.status != http.StatusOK ||
		len(e2.Data.Parts) != 1 || e2.Data.Parts[0].Entity != deals[2] || e2.Data.NextCursor != "" {
		t.Fatalf("explain the total, page 2: %d %s", r.status, r.body)
	}
}

// A path that is no figure of the answer is a 400 problem naming explain.
func TestExplainRefusesBadPaths(t *testing.T) {
	t.Parallel()
	a := newReadAPI(t, 5*time.Second)
	for _, c := range []struct{ path, field string }{
		{"/v1/pipeline/board?explain=stages.qualification", "explain"},
		{"/v1/pipeline/board?explain=stages.won.count", "explain"},
		{"/v1/pipeline/board?explain=stages.qualification.probability", "explain"},
		{"/v1/pipeline/board?explain=stages.qualification.count&limit=5000", "limit"},
		{"/v1/pipeline/board?explain=stages.qualification.count&cursor=zzz", "cursor"},
		{"/v1/analytics/journey-map?explain=by_phase.steps.lead.conversion", "explain"},
		{"/v1/analytics/journey-map?explain=by_phase.steps.lead.entered&limit=0x", "limit"},
		{"/v1/analytics/churn-points?explain=phases.lead.drop_off_rate", "explain"},
		{"/v1/analytics/churn-points?explain=lost_deals.proposal.price", "explain"},
		{"/v1/analytics/churn-points?explain=churned_customers.nobody.overdue_tasks", "explain"},
		{"/v1/analytics/churn-points?explain=churned_customers.nobody.name", "explain"},
		{"/v1/analytics/dormant?explain=owners.rep-a", "explain"},
		{"/v1/analytics/customers?explain=list.nobody.orders", "explain"},
		{"/v1/analytics/seasonality?explain=months.13.orders", "explain"},
		{"/v1/analytics/seasonality?explain=months.1.orders&limit=-1", "limit"},
		{"/v1/analytics/repeat-rate?explain=cohorts.2024-01.repeat_rate", "explain"},
	} {
		r := a.read(c.path, nil)
		if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), `"field":"`+c.field+`"`) {
			t.Errorf("%s: %d %s, want a 400 naming %s", c.path, r.status, r.body, c.field)
		}
	}
}
