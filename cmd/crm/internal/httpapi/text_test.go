package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/eventcrm/crm/cmd/crm/internal/httpapi"
)

// commandBody is a valid body of a command, by path ({contact}, {deal} and {task} stand for
// existing ids), with its string fields.
type commandBody struct {
	path   string
	body   map[string]any
	fields []string
}

// commandBodies are a body of every command.
func commandBodies() []commandBody {
	return []commandBody{
		{"/v1/contacts", map[string]any{"name": "Aoi", "email": "aoi@example.com", "phone": "+81 3", "company": "Asahi", "title": "CTO",
			"channel": "seminar", "owner": "rep-mori", "segment": "smb", "occurred_at": "2026-01-05T09:00:00Z"},
			[]string{"name", "email", "phone", "company", "title", "channel", "owner", "segment", "occurred_at"}},
		{"/v1/contacts/{contact}", map[string]any{"name": "Aoi S", "email": "s@example.com", "phone": "+81 4", "company": "Kita",
			"title": "CEO", "segment": "ent", "owner": "rep-ota"},
			[]string{"name", "email", "phone", "company", "title", "segment", "owner"}},
		{"/v1/contacts/{contact}/phase", map[string]any{"phase": "discovery", "reason": "fast"}, []string{"phase", "reason"}},
		{"/v1/contacts/{contact}/touchpoints", map[string]any{"kind": "call", "note": "hello"}, []string{"kind", "note"}},
		{"/v1/contacts/{contact}/purchases", map[string]any{"amount": 100, "currency": "JPY", "product": "Pro", "plan": "annual"},
			[]string{"currency", "product", "plan"}},
		{"/v1/contacts/{contact}/surveys", map[string]any{"nps": 9, "comment": "good"}, []string{"comment"}},
		{"/v1/contacts/{contact}/tasks", map[string]any{"title": "call back", "due": "2026-02-10", "assignee": "rep-ota"},
			[]string{"title", "due", "assignee"}},
		{"/v1/contacts/{contact}/opt-out", map[string]any{"channel": "email"}, []string{"channel"}},
		{"/v1/deals", map[string]any{"contact_id": "{contact}", "title": "Plan", "amount": 5000, "currency": "JPY", "owner": "rep-ota",
			"expected_close": "2026-03-01"}, []string{"contact_id", "title", "currency", "owner", "expected_close"}},
		{"/v1/deals/{deal}/stage", map[string]any{"stage": "proposal"}, []string{"stage"}},
		{"/v1/deals/{deal}/lose", map[string]any{"reason": "price", "note": "too dear"}, []string{"reason", "note"}},
		{"/v1/deals/{deal}/win", map[string]any{"closed_at": "2026-03-01"}, []string{"closed_at"}},
		{"/v1/deals/{deal}/reopen", map[string]any{}, nil},
		{"/v1/contacts/{contact}/tasks/{task}/complete", map[string]any{}, nil},
	}
}

// ids are the existing aggregates a test's requests are about.
type ids struct{ contact, deal, task string }

// setUp creates a contact with a task and an open deal.
func (a *wholeAPI) setUp(t testing.TB) ids {
	t.Helper()
	var out ids
	r := a.send(t, "POST", "/v1/contacts", appToken, `{"name":"Yui Sato","channel":"seminar","owner":"rep-mori"}`)
	if r.status != http.StatusCreated {
		t.Fatalf("create contact: %d %s", r.status, r.body)
	}
	out.contact = r.json(t)["id"].(string)
	r = a.send(t, "POST", "/v1/contacts/"+out.contact+"/tasks", appToken, `{"title":"call","due":"2026-02-01"}`)
	if r.status != http.StatusOK {
		t.Fatalf("schedule task: %d %s", r.status, r.body)
	}
	out.task = r.json(t)["task_id"].(string)
	r = a.send(t, "POST", "/v1/deals", appToken, `{"contact_id":"`+out.contact+`","title":"Plan","amount":5000,"currency":"JPY"}`)
	if r.status != http.StatusCreated {
		t.Fatalf("open deal: %d %s", r.status, r.body)
	}
	out.deal = r.json(t)["id"].(string)
	return out
}

func (i ids) fill(s string) string {
	return strings.NewReplacer("{contact}", i.contact, "{deal}", i.deal, "{task}", i.task).Replace(s)
}

// method is how a command path is sent.
func method(path string) string {
	if path == "/v1/contacts/{contact}" {
		return "PATCH"
	}
	return "POST"
}

// checkProblem fails unless r is a problem of the status, type and field given ("" for
// none), and the log's head is still at head.
func checkProblem(t *testing.T, a *wholeAPI, r response, head int64, status int, typ, field string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q", ct)
	}
	var p httpapi.Problem
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("problem %q: %v", r.body, err)
	}
	if p.Type != httpapi.ProblemBase+typ || p.Status != status || p.Title == "" || p.Field != field {
		t.Fatalf("problem %+v, want type %s and field %q", p, typ, field)
	}
	if now := a.head(t); now != head {
		t.Fatalf("the log moved from %d to %d on a refused request", head, now)
	}
}

// A path id that is not a UUID is 404 naming what it would have been the id of, from the
// route's collection.
func TestPathIDsAreNamedByTheirCollection(t *testing.T) {
	t.Parallel()
	a := newWholeAPI(t, backends()[0])
	tests := []struct{ method, path, token, detail string }{
		{"GET", "/v1/contacts/x-1", appToken, `no contact "x-1"`},
		{"POST", "/v1/contacts/x-1/phase", appToken, `no contact "x-1"`},
		{"GET", "/v1/deals/x-1", appToken, `no deal "x-1"`},
		{"POST", "/v1/deals/x-1/win", appToken, `no deal "x-1"`},
		{"GET", "/v1/accounts/x-1", appToken, `no account "x-1"`},
		{"GET", "/v1/webhooks/x-1", adminToken, `no webhook subscription "x-1"`},
		{"GET", "/v1/webhooks/x-1/deliveries", adminToken, `no webhook subscription "x-1"`},
		{"DELETE", "/v1/contacts/00000000-0000-4000-8000-000000000001/account/x-1", appToken, `no account "x-1"`},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			r := a.send(t, tc.method, tc.path, tc.token, `{}`)
			var p httpapi.Problem
			if err := json.Unmarshal(r.body, &p); err != nil || r.status != http.StatusNotFound || p.Detail != tc.detail {
				t.Fatalf("%d %s, want 404 with detail %s", r.status, r.body, tc.detail)
			}
		})
	}
}

// Every string field of every command body refuses a NUL, another control character and
// invalid UTF-8 with a 400 naming the field, and appends nothing; tab and newline are text.
func TestCommandBodiesRefuseWhatIsNotText(t *testing.T) {
	t.Parallel()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			a := newWholeAPI(t, b)
			ids := a.setUp(t)
			bad := []struct{ name, value, raw string }{
				{"NUL", "a\x00b", ""},
				{"control character", "a\x1bb", ""},
				{"invalid UTF-8", "", "a\xffb"},
			}
			for _, cmd := range commandBodies() {
				for _, field := range cmd.fields {
					for _, v := range bad {
						t.Run(strings.TrimPrefix(cmd.path, "/v1/")+"/"+field+"/"+v.name, func(t *testing.T) {
							body := withField(t, cmd.body, field, v.value, v.raw)
							head := a.head(t)
							r := a.send(t, method(cmd.path), ids.fill(cmd.path), appToken, ids.fill(body))
							checkProblem(t, a, r, head, http.StatusBadRequest, "bad-request", field)
						})
					}
				}
			}
			t.Run("tab and newline are text", func(t *testing.T) {
				r := a.send(t, "POST", "/v1/contacts/"+ids.contact+"/touchpoints", appToken, `{"kind":"call","note":"one\ttwo\r\nthree"}`)
				if r.status != http.StatusOK {
					t.Fatalf("note with tab and newline: %d %s", r.status, r.body)
				}
			})
			t.Run("a NUL in a key", func(t *testing.T) {
				head := a.head(t)
				r := a.send(t, "POST", "/v1/contacts", appToken, `{"name":"x","channel":"seminar","a\u0000":1}`)
				checkProblem(t, a, r, head, http.StatusBadRequest, "bad-request", "")
			})
		})
	}
}

// withField is body with field set to value, or, when raw is set, to raw's bytes as they
// are (JSON cannot encode invalid UTF-8).
func withField(t *testing.T, body map[string]any, field, value, raw string) string {
	t.Helper()
	m := map[string]any{}
	for k, v := range body {
		m[k] = v
	}
	m[field] = value
	if raw != "" {
		m[field] = "RAW"
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Replace(string(b), `"RAW"`, `"`+raw+`"`, 1)
}

// Path ids that cannot exist are 404 and query parameters that are not text 400 (naming
// them) on every route, on both backends: on PostgreSQL a NUL used to reach the database
// and answer 500.
func TestPathIDsAndQueryParametersRefuseWhatIsNotText(t *testing.T) {
	t.Parallel()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			a := newWholeAPI(t, b)
			ids := a.setUp(t)
			notFound := []struct{ method, path, token string }{
				{"GET", "/v1/contacts/%00", appToken},
				{"GET", "/v1/contacts/%FF", appToken},
				{"GET", "/v1/contacts/not-a-uuid", appToken},
				{"GET", "/v1/deals/%00", appToken},
				{"GET", "/v1/contacts/%00/history", auditorToken},
				{"GET", "/v1/deals/%00/history", auditorToken},
				{"GET", "/v1/journeys/%00", appToken},
				{"PATCH", "/v1/contacts/%00", appToken},
				{"POST", "/v1/contacts/%00/phase", appToken},
				{"POST", "/v1/contacts/%00/touchpoints", appToken},
				{"POST", "/v1/contacts/{contact}/tasks/%00/complete", appToken},
				{"POST", "/v1/deals/%00/win", appToken},
				{"POST", "/v1/projections/%00/rebuild", analystToken},
				{"GET", "/v1/projections/%00/rebuild", appToken},
				{"POST", "/v1/projections/parked/%00/retry", analystToken},
			}
			for _, tc := range notFound {
				t.Run(tc.method+" "+tc.path, func(t *testing.T) {
					head := a.head(t)
					r := a.send(t, tc.method, ids.fill(tc.path), tc.token, `{"phase":"approach"}`)
					checkProblem(t, a, r, head, http.StatusNotFound, "not-found", "")
				})
			}
			badQuery := []struct{ path, token, field string }{
				{"/v1/pipeline/board?owner=%00", appToken, "owner"},
				{"/v1/pipeline/board?stage=%00", appToken, "stage"},
				{"/v1/pipeline/board?cursor=%00", appToken, "cursor"},
				{"/v1/pipeline/board?owner=%FF", appToken, "owner"},
				{"/v1/pipeline/board?owner=a%0Bb", appToken, "owner"},
				{"/v1/analytics/journey-map?owner=%00", appToken, "owner"},
				{"/v1/analytics/journey-map?cohort=%00", appToken, "cohort"},
				{"/v1/analytics/journey-map?channel=%00", appToken, "channel"},
				{"/v1/analytics/journey-map?segment=%00", appToken, "segment"},
				{"/v1/analytics/churn-points?cohort=%00", appToken, "cohort"},
				{"/v1/analytics/churn-points?channel=%00", appToken, "channel"},
				{"/v1/journeys/{contact}?as_of=%00", appToken, "as_of"},
				{"/v1/projections/parked?projection=%00", appToken, "projection"},
				{"/v1/contacts/{contact}?as_of=%00", appToken, "as_of"},
				{"/v1/audit/proof?stream=%00&version=1", auditorToken, "stream"},
				{"/v1/audit/proof?stream=contact-%FF&version=1", auditorToken, "stream"},
				{"/v1/pipeline/board?owner=%ZZ", appToken, ""},
				{"/v1/pipeline/board?%00=1", appToken, ""},
			}
			for _, tc := range badQuery {
				t.Run("GET "+tc.path, func(t *testing.T) {
					head := a.head(t)
					r := a.send(t, "GET", ids.fill(tc.path), tc.token, "")
					checkProblem(t, a, r, head, http.StatusBadRequest, "bad-request", tc.field)
				})
			}
			t.Run("a real id still answers", func(t *testing.T) {
				if r := a.send(t, "GET", "/v1/contacts/"+strings.ToUpper(ids.contact), appToken, ""); r.status != http.StatusNotFound {
					t.Fatalf("an id in other case: %d %s", r.status, r.body)
				}
				if r := a.send(t, "GET", "/v1/contacts/"+ids.contact, appToken, ""); r.status != http.StatusOK {
					t.Fatalf("GET contact: %d %s", r.status, r.body)
				}
			})
		})
	}
}
