package httpapi_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/eventcrm/crm/cmd/crm/internal/httpapi"
	"github.com/eventcrm/crm/projections/explain"
	"github.com/eventcrm/crm/projections/value"
)

// The customer value questions are served like every read model: for the app role, with
// freshness and min_position, as of a business time, and bad parameters refused with a 400
// naming them (an unknown contact's value: 404).
func TestCustomerValueOverHTTP(t *testing.T) {
	t.Parallel()
	a := newReadAPI(t, 5*time.Second)
	var position int64
	post := func(path, body string) {
		t.Helper()
		r := a.do("POST", path, appToken, body)
		if r.status/100 != 2 {
			t.Fatalf("POST %s: %d %s", path, r.status, r.body)
		}
		position = int64(r.json(t)["position"].(float64))
	}
	create := func(name string) string { return createValueContact(t, a, name) }
	buyer, quiet := create("Aiko Sato"), create("Ren Ito")
	post("/v1/contacts/"+buyer+"/purchases", `{"amount":1000,"currency":"JPY","product":"CRM Basic","occurred_at":"2024-01-10T09:00:00Z"}`)
	post("/v1/contacts/"+buyer+"/purchases", `{"amount":3000,"currency":"JPY","product":"CRM Pro","occurred_at":"2024-02-10T09:00:00Z"}`)
	post("/v1/contacts/"+buyer+"/touchpoints", `{"kind":"call","occurred_at":"2024-02-11T09:00:00Z"}`)
	post("/v1/contacts/"+buyer+"/usage", `{"percent_of_limit":90,"occurred_at":"2024-02-12T09:00:00Z"}`)
	post("/v1/contacts/"+buyer+"/surveys", `{"nps":10,"occurred_at":"2024-02-13T09:00:00Z"}`)
	min := "min_position=" + strconv.FormatInt(position, 10)
	asOf := "as_of=2024-03-01T00:00:00Z&" + min

	var list answer[value.CustomersAnswer]
	if r := a.read("/v1/analytics/customers?"+asOf, &list); r.status != http.StatusOK || list.Freshness.Stale ||
		list.Freshness.Projection != value.Name {
		t.Fatalf("customers: %d %s", r.status, r.body)
	}
	if len(list.Data.List) != 1 || list.Data.List[0].ContactID != buyer || list.Data.List[0].Orders != 2 ||
		*list.Data.List[0].DaysToSecond != 31 {
		t.Fatalf("customers %+v", list.Data)
	}
	v := readData[value.ValueAnswer](a, "/v1/contacts/"+buyer+"/value?"+asOf)
	if v.Customer == nil || v.Customer.Currencies[0].LTV != 4000 || v.Customer.Currencies[0].AverageOrderValue != 2000 {
		t.Fatalf("value %+v", v)
	}
	if v := readData[value.ValueAnswer](a, "/v1/contacts/"+buyer+"/value?as_of=2024-01-20T00:00:00Z&"+min); v.Customer.Orders != 1 {
		t.Fatalf("value on Jan 20: %+v", v.Customer)
	}
	if rfm := readData[value.RFMAnswer](a, "/v1/analytics/rfm?"+asOf); rfm.Customers != 1 || len(rfm.Grid) != 25 {
		t.Fatalf("rfm %+v", rfm)
	}
	// One customer scores 1 on every measure: hibernating, in the cell r 1 f 1; its two
	// purchases are the parts, the last counting it, paged by next_cursor.
	var e answer[explain.Answer]
	if r := a.read("/v1/analytics/rfm?"+asOf+"&explain=segments.hibernating.customers&limit=1", &e); r.status != http.StatusOK ||
		e.Data.Count != 1 || e.Data.Amounts["JPY"] != 4000 || len(e.Data.Parts) != 1 || e.Data.NextCursor == "" ||
		e.Data.Parts[0].Entity != buyer || e.Data.Parts[0].Figure != "purchase" || e.Data.Parts[0].EventID == "" ||
		e.Data.Parts[0].Bucket != "hibernating/r1f1" {
		t.Fatalf("explain rfm: %d %s", r.status, r.body)
	}
	var e2 answer[explain.Answer]
	if r := a.read("/v1/analytics/rfm?"+asOf+"&explain=segments.hibernating.customers&limit=1&cursor="+e.Data.NextCursor, &e2); r.status != http.StatusOK ||
		len(e2.Data.Parts) != 1 || e2.Data.Parts[0].Figure != "last_purchase" || e2.Data.Parts[0].Count != 1 ||
		*e2.Data.Parts[0].Amount != 3000 || e2.Data.NextCursor != "" {
		t.Fatalf("explain rfm, page 2: %d %s", r.status, r.body)
	}
	if g := readData[explain.Answer](a, "/v1/analytics/rfm?"+asOf+"&explain=grid.1.1.customers"); g.Count != 1 || len(g.Parts) != 2 {
		t.Fatalf("explain the cell r 1 f 1: %+v", g)
	}
	if g := readData[explain.Answer](a, "/v1/analytics/rfm?"+asOf+"&explain=grid.5.5.customers"); g.Count != 0 || len(g.Parts) != 0 {
		t.Fatalf("explain the cell r 5 f 5: %+v", g)
	}
	if rr := readData[value.RepeatAnswer](a, "/v1/analytics/repeat-rate?"+asOf); len(rr.Cohorts) != 1 || *rr.Cohorts[0].RepeatRate != 1 {
		t.Fatalf("repeat rate %+v", rr)
	}
	if s := readData[value.SeasonAnswer](a, "/v1/analytics/seasonality?"+asOf); s.Months[0].Orders != 1 || s.Months[1].Orders != 1 {
		t.Fatalf("seasonality %+v", s)
	}
	if u := readData[value.UpsellAnswer](a, "/v1/analytics/upsell-candidates?"+asOf); u.Count != 1 || len(u.Candidates) != 1 || len(u.Candidates[0].Reasons) != 2 {
		t.Fatalf("upsell %+v", u)
	}
	d := readData[value.DormantAnswer](a, "/v1/analytics/dormant?days=30&owner=rep-a&"+asOf)
	if len(d.Contacts) != 1 || d.Contacts[0].ContactID != quiet || d.Contacts[0].LastActivity != value.KindCreated ||
		d.Count != 1 || len(d.Owners) != 1 || d.Owners[0] != (value.OwnerCount{Owner: "rep-a", Count: 1}) {
		t.Fatalf("dormant %+v", d)
	}
	// The dormant contact is the part of the count, with the event of its creation; the
	// candidate's usage is its report's; the customer's days to its second purchase are its
	// first and second purchases; its value's orders, both.
	if x := readData[explain.Answer](a, "/v1/analytics/dormant?days=30&owner=rep-a&"+asOf+"&explain=owners.rep-a.count"); x.Count != 1 ||
		len(x.Parts) != 1 || x.Parts[0].Entity != quiet || x.Parts[0].Bucket != value.KindCreated || x.Parts[0].EventID == "" {
		t.Fatalf("explain dormant: %+v", x)
	}
	if x := readData[explain.Answer](a, "/v1/analytics/upsell-candidates?"+asOf+"&explain=candidates."+buyer+".usage_percent"); x.Count != 1 ||
		len(x.Parts) != 1 || x.Parts[0].Value == nil || *x.Parts[0].Value != 90 || x.Parts[0].Figure != "usage" {
		t.Fatalf("explain upsell: %+v", x)
	}
	if x := readData[explain.Answer](a, "/v1/analytics/upsell-candidates?"+asOf+"&explain=candidates."+buyer+".reasons"); x.Count != 2 ||
		len(x.Parts) != 2 || x.Parts[0].Bucket == x.Parts[1].Bucket || x.Parts[0].EventID == "" {
		t.Fatalf("explain the reasons of the candidate: %+v", x)
	}
	if x := readData[explain.Answer](a, "/v1/analytics/upsell-candidates?"+asOf+"&explain=count"); x.Count != 1 || len(x.Parts) != 1 ||
		x.Parts[0].Entity != buyer || x.Parts[0].Figure != "usage" {
		t.Fatalf("explain the count of candidates: %+v", x)
	}
	if x := readData[explain.Answer](a, "/v1/analytics/customers?"+asOf+"&explain=list."+buyer+".days_to_second&limit=1"); x.Count != 2 ||
		len(x.Parts) != 1 || x.Parts[0].Figure != "first_purchase" || x.NextCursor == "" {
		t.Fatalf("explain customers: %+v", x)
	}
	if x := readData[explain.Answer](a, "/v1/contacts/"+buyer+"/value?"+asOf+"&explain=customer.currencies.JPY.average_order_value"); x.Count != 2 ||
		x.Amounts["JPY"] != 4000 || len(x.Parts) != 2 {
		t.Fatalf("explain value: %+v", x)
	}

	for _, tt := range []struct {
		name, path string
		status     int
		problem    string
		field      string
	}{
		{"as_of not a time", "/v1/analytics/customers?as_of=yesterday", http.StatusBadRequest, "bad-request", "as_of"},
		{"unknown segment", "/v1/analytics/customers?segment=whales", http.StatusBadRequest, "bad-request", "segment"},
		{"unknown sort", "/v1/analytics/customers?sort=revenue", http.StatusBadRequest, "bad-request", "sort"},
		{"limit not a number", "/v1/analytics/upsell-candidates?limit=ten", http.StatusBadRequest, "bad-request", "limit"},
		{"days not a number", "/v1/analytics/dormant?days=many", http.StatusBadRequest, "bad-request", "days"},
		{"days out of range", "/v1/analytics/dormant?days=-3", http.StatusBadRequest, "bad-request", "days"},
		{"unknown phase", "/v1/analytics/dormant?phase=asleep", http.StatusBadRequest, "bad-request", "phase"},
		{"cursor not a cursor", "/v1/analytics/dormant?cursor=bm90LWEtY3Vyc29y", http.StatusBadRequest, "bad-request", "cursor"},
		{"rfm figure unknown", "/v1/analytics/rfm?explain=segments.whales.customers", http.StatusBadRequest, "bad-request", "explain"},
		{"rfm cell out of the grid", "/v1/analytics/rfm?explain=grid.6.1.customers", http.StatusBadRequest, "bad-request", "explain"},
		{"rfm explain limit", "/v1/analytics/rfm?explain=customers&limit=5000", http.StatusBadRequest, "bad-request", "limit"},
		{"unknown contact", "/v1/contacts/nobody/value", http.StatusNotFound, "not-found", ""},
		{"customers figure unknown", "/v1/analytics/customers?explain=list.x.name", http.StatusBadRequest, "bad-request", "explain"},
		{"value figure unknown", "/v1/contacts/" + buyer + "/value?explain=customer.name", http.StatusBadRequest, "bad-request", "explain"},
		{"value explain limit", "/v1/contacts/" + buyer + "/value?explain=customer.orders&limit=5000", http.StatusBadRequest, "bad-request", "limit"},
		{"explain the value of an unknown contact", "/v1/contacts/nobody/value?explain=customer.orders", http.StatusNotFound, "not-found", ""},
		{"upsell figure unknown", "/v1/analytics/upsell-candidates?explain=candidates." + buyer + ".reasons.2", http.StatusBadRequest, "bad-request", "explain"},
		{"not a candidate", "/v1/analytics/upsell-candidates?explain=candidates." + quiet + ".usage_percent", http.StatusBadRequest, "bad-request", "explain"},
		{"dormant figure unknown", "/v1/analytics/dormant?explain=contacts", http.StatusBadRequest, "bad-request", "explain"},
		{"dormant explain days", "/v1/analytics/dormant?explain=count&days=-1", http.StatusBadRequest, "bad-request", "days"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := a.do("GET", tt.path, appToken, "")
			p := r.json(t)
			if r.status != tt.status || p["type"] != httpapi.ProblemBase+tt.problem || (tt.field != "" && p["field"] != tt.field) {
				t.Fatalf("%d %s, want %d %s naming %s", r.status, r.body, tt.status, tt.problem, tt.field)
			}
		})
	}
}

// createValueContact creates a contact of rep-a on 2024-01-05 and returns its id.
func createValueContact(t *testing.T, a *readAPI, name string) string {
	t.Helper()
	r := a.do("POST", "/v1/contacts", appToken, `{"name":"`+name+`","channel":"seminar","owner":"rep-a","occurred_at":"2024-01-05T09:00:00Z"}`)
	if r.status != http.StatusCreated {
		t.Fatalf("create contact: %d %s", r.status, r.body)
	}
	return r.json(t)["id"].(string)
}

// TestValueAnswersAboutNowFollowTheTables: the RFM answer and the customer pages about now,
// kept while the tables do not change, count recency to each request's as_of, are kept per
// question (sort, page), give way to the past before the latest event, and to the tables'
// new state after a write.
func TestValueAnswersAboutNowFollowTheTables(t *testing.T) {
	t.Parallel()
	a := newReadAPI(t, 5*time.Second)
	create := func(name string) string { return createValueContact(t, a, name) }
	buy := func(id, at string) string {
		t.Helper()
		r := a.do("POST", "/v1/contacts/"+id+"/purchases", appToken, `{"amount":1000,"currency":"JPY","product":"CRM Basic","occurred_at":"`+at+`"}`)
		if r.status/100 != 2 {
			t.Fatalf("purchase: %d %s", r.status, r.body)
		}
		return "&min_position=" + strconv.FormatInt(int64(r.json(t)["position"].(float64)), 10)
	}
	first, second := create("Aiko Sato"), create("Ren Ito")
	buy(first, "2024-01-10T09:00:00Z")
	buy(second, "2024-01-08T09:00:00Z")
	wait := buy(first, "2024-02-10T09:00:00Z")
	customers := func(query string) value.CustomersAnswer {
		t.Helper()
		return readData[value.CustomersAnswer](a, "/v1/analytics/customers?"+query+wait)
	}
	rfm := func(query string) value.RFMAnswer {
		t.Helper()
		return readData[value.RFMAnswer](a, "/v1/analytics/rfm?"+query+wait)
	}

	for _, tt := range []struct {
		asOf    string
		recency float64
	}{{"2024-03-01T09:00:00Z", 20}, {"2024-03-11T09:00:00Z", 30}, {"2024-03-01T09:00:00Z", 20}} {
		c := customers("limit=1&as_of=" + tt.asOf)
		if len(c.List) != 1 || c.List[0].ContactID != first || c.List[0].RecencyDays != tt.recency || c.AsOf.Format(time.RFC3339) != tt.asOf {
			t.Fatalf("customers as of %s: %+v", tt.asOf, c)
		}
		if r := rfm("as_of=" + tt.asOf); r.Customers != 2 || r.AsOf.Format(time.RFC3339) != tt.asOf {
			t.Fatalf("rfm as of %s: %+v", tt.asOf, r)
		}
	}
	if c := customers("limit=1&sort=first_purchase&as_of=2024-03-01T09:00:00Z"); len(c.List) != 1 || c.List[0].ContactID != second {
		t.Fatalf("customers by first purchase: %+v", c)
	}
	if c := customers("limit=2&as_of=2024-03-01T09:00:00Z"); len(c.List) != 2 || c.List[1].ContactID != second {
		t.Fatalf("customers, a page of 2: %+v", c)
	}
	// Before the latest purchase: the past, read.
	if c := customers("as_of=2024-01-09T09:00:00Z"); len(c.List) != 1 || c.List[0].ContactID != second || c.Customers != 1 {
		t.Fatalf("customers on Jan 9: %+v", c)
	}
	if r := rfm("as_of=2024-01-09T09:00:00Z"); r.Customers != 1 {
		t.Fatalf("rfm on Jan 9: %+v", r)
	}

	third := create("Mei Kato")
	wait = buy(third, "2024-02-20T09:00:00Z")
	if c := customers("limit=1&as_of=2024-03-01T09:00:00Z"); c.Customers != 3 || c.List[0].ContactID != third || c.List[0].RecencyDays != 10 {
		t.Fatalf("customers after a third buyer: %+v", c)
	}
	if r := rfm("as_of=2024-03-01T09:00:00Z"); r.Customers != 3 {
		t.Fatalf("rfm after a third buyer: %+v", r)
	}
}
