package httpapi_test

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eventcrm/crm/projections/analytics"
)

// The analytics answer over HTTP from the live read model: a deal won now is in this month's
// KPIs, its parts explain the figure, an open deal is in the forecast, a survey in the NPS,
// and the log time machinery (at_position) answers them as they were.
func TestAnalyticsOverHTTP(t *testing.T) {
	t.Parallel()
	a := newReadAPI(t, 5*time.Second)
	contactID := a.createContact()
	open := func(title string, amount int) string {
		r := a.do("POST", "/v1/deals", appToken, `{"contact_id":"`+contactID+`","title":"`+title+`","amount":`+strconv.Itoa(amount)+
			`,"currency":"JPY","expected_close":"2099-01-15"}`)
		if r.status != http.StatusCreated {
			t.Fatalf("open deal: %d %s", r.status, r.body)
		}
		return r.json(t)["id"].(string)
	}
	won := open("Annual plan", 120000)
	opened := open("Add-on", 30000)
	r := a.do("POST", "/v1/deals/"+won+"/win", appToken, `{}`)
	if r.status != http.StatusOK {
		t.Fatalf("win: %d %s", r.status, r.body)
	}
	r = a.do("POST", "/v1/contacts/"+contactID+"/surveys", appToken, `{"nps":10}`)
	if r.status != http.StatusOK && r.status != http.StatusCreated {
		t.Fatalf("survey: %d %s", r.status, r.body)
	}
	last := int64(r.json(t)["position"].(float64))
	min := "min_position=" + strconv.FormatInt(last, 10)

	var k answer[analytics.KPIAnswer]
	if r := a.read("/v1/analytics/kpis?"+min, &k); r.status != http.StatusOK || k.Freshness.Stale {
		t.Fatalf("kpis: %d %s", r.status, r.body)
	}
	if len(k.Data.Periods) != 1 || k.Data.Periods[0].Deals.Won != 1 || k.Data.Periods[0].RevenueWon["JPY"] != 120000 ||
		k.Data.Periods[0].Deals.Opened != 2 || k.Data.Periods[0].NewLeads.Total != 1 {
		t.Fatalf("kpis %+v", k.Data)
	}
	var e answer[analytics.ExplainAnswer]
	path := k.Data.Periods[0].Period + ".deals.won"
	if r := a.read("/v1/analytics/kpis?"+min+"&explain="+url.QueryEscape(path), &e); r.status != http.StatusOK ||
		e.Data.Count != 1 || len(e.Data.Parts) != 1 || e.Data.Parts[0].Entity != won || e.Data.Parts[0].EventID == "" {
		t.Fatalf("explain %s: %d %s", path, r.status, r.body)
	}
	var f answer[analytics.ForecastAnswer]
	if r := a.read("/v1/analytics/forecast?"+min+"&to=2099-12", &f); r.status != http.StatusOK || len(f.Data.Months) != 1 ||
		f.Data.Months[0].Month != "2099-01" || f.Data.Months[0].Total["JPY"].Amount != 30000 || f.Data.Months[0].Total["JPY"].Weighted != 3000 {
		t.Fatalf("forecast: %d %s", r.status, r.body)
	}
	if r := a.read("/v1/analytics/forecast?"+min+"&explain=2099-01", &e); r.status != http.StatusOK || len(e.Data.Parts) != 1 ||
		e.Data.Parts[0].Entity != opened {
		t.Fatalf("forecast explain: %d %s", r.status, r.body)
	}
	var n answer[analytics.NPSAnswer]
	if r := a.read("/v1/analytics/nps?"+min, &n); r.status != http.StatusOK || len(n.Data.Periods) != 1 || n.Data.Periods[0].Promoters != 1 ||
		n.Data.Periods[0].NPS == nil || *n.Data.Periods[0].NPS != 100 {
		t.Fatalf("nps: %d %s", r.status, r.body)
	}
	// Before the win was recorded (log time): nothing won yet.
	if r := a.read("/v1/analytics/kpis?at_position="+strconv.FormatInt(last-2, 10), &k); r.status != http.StatusOK ||
		k.Data.Periods[0].Deals.Won != 0 || k.Data.Periods[0].Deals.Opened != 2 {
		t.Fatalf("kpis at a past position: %d %s", r.status, r.body)
	}
}

// Bad parameters of the analytics are 400 problems naming the parameter.
func TestAnalyticsRefuseBadParameters(t *testing.T) {
	t.Parallel()
	a := newReadAPI(t, 5*time.Second)
	for _, c := range []struct{ path, field string }{
		{"/v1/analytics/kpis?period=fortnight", "period"},
		{"/v1/analytics/kpis?from=2025-13-01", "from"},
		{"/v1/analytics/kpis?from=2025-05-01&to=2025-04-01", "to"},
		{"/v1/analytics/kpis?period=day&from=2020-01-01&to=2025-01-01", "from"},
		{"/v1/analytics/kpis?channel=fax", "channel"},
		{"/v1/analytics/kpis?as_of=yesterday", "as_of"},
		{"/v1/analytics/kpis?explain=nonsense", "explain"},
		{"/v1/analytics/kpis?from=2025-04-01&to=2025-04-30&explain=2025-04-01.deals.won_rate", "explain"},
		{"/v1/analytics/kpis?from=2025-04-01&to=2025-04-30&explain=2025-04-01.deals.won&limit=5000", "limit"},
		{"/v1/analytics/kpis?from=2025-04-01&to=2025-04-30&explain=2025-04-01.deals.won&cursor=zzz", "cursor"},
		{"/v1/analytics/forecast?from=2025-4", "from"},
		{"/v1/analytics/forecast?from=2025-05&to=2025-04", "to"},
		{"/v1/analytics/forecast?explain=someday", "explain"},
		{"/v1/analytics/nps?period=hour", "period"},
		{"/v1/analytics/nps?from=2025-04-01&to=2025-04-30&explain=2025-04-01.fans", "explain"},
	} {
		r := a.read(c.path, nil)
		if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), `"field":"`+c.field+`"`) {
			t.Errorf("%s: %d %s, want a 400 naming %s", c.path, r.status, r.body, c.field)
		}
	}
}
