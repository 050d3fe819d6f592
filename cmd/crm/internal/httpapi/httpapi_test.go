package httpapi_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/eventcrm/crm/cmd/crm/internal/auth"
	"github.com/eventcrm/crm/cmd/crm/internal/httpapi"
	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/sqlite"
)

const (
	appToken     = "app-token-000000000001"
	analystToken = "analyst-token-0000001"
	auditorToken = "auditor-token-0000001"
)

// api is a server on a real loopback listener over a real SQLite file.
type api struct {
	t   testing.TB
	url string
}

func newAPI(t testing.TB) *api {
	t.Helper()
	return newAPIWith(t, nil)
}

// newAPIWith is newAPI with its configuration changed by configure (nil: none).
func newAPIWith(t testing.TB, configure func(*httpapi.Config)) *api {
	t.Helper()
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "crm.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	tokens, err := auth.ParseTokens("web:app:" + appToken + ",ana:analyst:" + analystToken + ",aud:auditor:" + auditorToken)
	if err != nil {
		t.Fatal(err)
	}
	var log = zaptest.NewLogger(t)
	if _, isBench := t.(*testing.B); isBench {
		log = nil
	}
	cfg := httpapi.Config{Store: store, Commands: commands.NewHandler(store), Tokens: tokens, Log: log}
	if configure != nil {
		configure(&cfg)
	}
	server := httpapi.New(cfg)
	var handler http.Handler = server
	if _, isBench := t.(*testing.B); !isBench {
		handler = checkAgainstDescription(t, server, server) // benchmarks measure the server alone
	}
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	return &api{t: t, url: srv.URL}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response body %q is not a JSON object: %v", r.body, err)
	}
	return m
}

// do sends a request; headers are name, value pairs.
func (a *api) do(method, path, token, body string, headers ...string) response {
	a.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, a.url+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func (a *api) createContact() string {
	a.t.Helper()
	r := a.do("POST", "/v1/contacts", appToken, `{"name":"Yui Sato","email":"yui@example.com","channel":"seminar","owner":"rep-mori"}`)
	if r.status != http.StatusCreated {
		a.t.Fatalf("create contact: %d %s", r.status, r.body)
	}
	return r.json(a.t)["id"].(string)
}

func (a *api) contactVersion(id string) float64 {
	a.t.Helper()
	r := a.do("GET", "/v1/contacts/"+id, appToken, "")
	if r.status != http.StatusOK {
		a.t.Fatalf("get contact: %d %s", r.status, r.body)
	}
	return r.json(a.t)["version"].(float64)
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	tests := []struct {
		name, method, path, token, body string
		status                          int
		problem                         string
	}{
		{"health needs no token", "GET", "/healthz", "", "", 200, ""},
		{"no token", "POST", "/v1/contacts", "", `{}`, 401, "unauthorized"},
		{"wrong token", "GET", "/v1/contacts/x", "not-a-valid-token-at-all", "", 401, "unauthorized"},
		{"lowercase scheme works", "GET", "/v1/contacts/nope", "", "", 404, "not-found"},
		{"analyst cannot write", "POST", "/v1/contacts", analystToken, `{"name":"x","channel":"web_form"}`, 403, "forbidden"},
		{"app cannot read history", "GET", "/v1/contacts/x/history", appToken, "", 403, "forbidden"},
		{"auditor cannot write", "POST", "/v1/deals", auditorToken, `{}`, 403, "forbidden"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r response
			if tc.name == "lowercase scheme works" {
				r = a.do(tc.method, tc.path, "", tc.body, "Authorization", "bearer "+appToken)
			} else {
				r = a.do(tc.method, tc.path, tc.token, tc.body)
			}
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.problem != "" {
				if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
					t.Errorf("Content-Type %q", ct)
				}
				if typ := r.json(t)["type"]; typ != httpapi.ProblemBase+tc.problem {
					t.Errorf("type %v, want %s", typ, tc.problem)
				}
			}
		})
	}
}

func TestContactCommandsOverHTTP(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	r := a.do("POST", "/v1/contacts", appToken, `{"name":"Yui Sato","email":"yui@example.com","phone":"+81 3 1234 5678","company":"Asahi","title":"CTO","channel":"seminar","owner":"rep-mori","occurred_at":"2026-01-05T09:00:00Z"}`)
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	created := r.json(t)
	id := created["id"].(string)
	if r.header.Get("ETag") != `"1"` || r.header.Get("Location") != "/v1/contacts/"+id || created["version"] != 1.0 || created["position"].(float64) < 1 {
		t.Fatalf("create answer: %v %v", r.header, created)
	}
	steps := []struct {
		path, body string
		entityKey  string
	}{
		{"/phase", `{"phase":"approach"}`, ""},
		{"/touchpoints", `{"kind":"meeting","note":"hearing","occurred_at":"2026-01-07T10:00:00Z"}`, "touchpoint_id"},
		{"/purchases", `{"amount":250000,"currency":"JPY","product":"CRM Pro","occurred_at":"2026-02-01T00:00:00Z"}`, "purchase_id"},
		{"/surveys", `{"nps":9,"comment":"great"}`, "survey_id"},
		{"/usage", `{"percent_of_limit":85}`, ""},
		{"/tasks", `{"title":"call back","due":"2026-02-10","assignee":"rep-ota"}`, "task_id"},
		{"/opt-out", `{"channel":"email"}`, ""},
	}
	var taskID string
	for i, s := range steps {
		r := a.do("POST", "/v1/contacts/"+id+s.path, appToken, s.body)
		if r.status != http.StatusOK {
			t.Fatalf("%s: %d %s", s.path, r.status, r.body)
		}
		body := r.json(t)
		if body["version"] != float64(i+2) || r.header.Get("ETag") != `"`+strconv.Itoa(i+2)+`"` {
			t.Fatalf("%s: version %v ETag %s", s.path, body["version"], r.header.Get("ETag"))
		}
		if s.entityKey != "" && body[s.entityKey] == "" {
			t.Fatalf("%s: no %s in %v", s.path, s.entityKey, body)
		}
		if s.entityKey == "task_id" {
			taskID = body["task_id"].(string)
		}
	}
	if r := a.do("POST", "/v1/contacts/"+id+"/tasks/"+taskID+"/complete", appToken, ""); r.status != http.StatusOK {
		t.Fatalf("complete task: %d %s", r.status, r.body)
	}
	if r := a.do("PATCH", "/v1/contacts/"+id, appToken, `{"company":"Asahi Logistics","owner":"rep-ota"}`, "If-Match", `"9"`); r.status != http.StatusOK {
		t.Fatalf("patch: %d %s", r.status, r.body)
	}

	got := a.do("GET", "/v1/contacts/"+id, appToken, "")
	state := got.json(t)
	if got.header.Get("ETag") != `"11"` || state["phase"] != "approach" || state["owner"] != "rep-ota" || state["company"] != "Asahi Logistics" ||
		state["touchpoints"] != 1.0 || state["purchases"] != 1.0 || state["last_nps"] != 9.0 || state["usage_percent"] != 85.0 {
		t.Fatalf("state: %s %s", got.header.Get("ETag"), got.body)
	}
	if rev := state["revenue"].(map[string]any); rev["JPY"] != 250000.0 {
		t.Errorf("revenue %v", rev)
	}
	tasks := state["tasks"].([]any)
	if len(tasks) != 1 || tasks[0].(map[string]any)["done"] != true {
		t.Errorf("tasks %v", tasks)
	}
	past := a.do("GET", "/v1/contacts/"+id+"?as_of=2026-01-06T00:00:00Z", appToken, "").json(t)
	if past["version"] != 1.0 || past["phase"] != "lead" {
		t.Errorf("as_of before the phase change: %v", past)
	}
	v2 := a.do("GET", "/v1/contacts/"+id+"?version=2", appToken, "").json(t)
	if v2["version"] != 2.0 || v2["phase"] != "approach" || v2["touchpoints"] != 0.0 {
		t.Errorf("version=2: %v", v2)
	}

	h := a.do("GET", "/v1/contacts/"+id+"/history", auditorToken, "")
	if h.status != http.StatusOK {
		t.Fatalf("history: %d %s", h.status, h.body)
	}
	var history httpapi.History
	if err := json.Unmarshal(h.body, &history); err != nil {
		t.Fatal(err)
	}
	if !history.Intact || len(history.Events) != 11 {
		t.Fatalf("history intact=%v with %d events", history.Intact, len(history.Events))
	}
	first := history.Events[0]
	if first.Type != "contact.created.v2" || first.Actor != "web" || first.Hash == "" || first.PrevHash != "" ||
		first.OccurredAt.Format("2006-01-02") != "2026-01-05" || first.CommandID == "" {
		t.Errorf("first event %+v", first)
	}
	if history.Events[1].PrevHash != first.Hash {
		t.Errorf("second event's prev_hash does not chain to the first")
	}
	// The answer alone is enough to recompute every hash of the chain.
	var prev []byte
	for _, he := range history.Events {
		e := eventstore.Event{ID: he.ID, Stream: history.Stream, Version: he.Version, Type: he.Type, Data: he.Data,
			OccurredAt: he.OccurredAt, RecordedAt: he.RecordedAt, Metadata: eventstore.Metadata{Actor: he.Actor,
				CommandID: he.CommandID, CorrelationID: he.CorrelationID, CausationID: he.CausationID, Reason: he.Reason,
				RequestHash: he.RequestHash, Headers: he.Headers}}
		if got := hex.EncodeToString(eventstore.ChainHash(prev, e)); got != he.Hash {
			t.Fatalf("version %d: recomputed hash %s, answered %s", he.Version, got, he.Hash)
		}
		prev, _ = hex.DecodeString(he.Hash)
	}
	if last := history.Events[10]; last.Type != "contact.owner_changed.v1" {
		t.Errorf("last event %s", last.Type)
	}
}

func TestDealCommandsOverHTTP(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	cid := a.createContact()
	r := a.do("POST", "/v1/deals", appToken, `{"contact_id":"`+cid+`","title":"CRM Pro rollout","amount":1200000,"currency":"JPY","expected_close":"2026-06-30"}`)
	if r.status != http.StatusCreated {
		t.Fatalf("open deal: %d %s", r.status, r.body)
	}
	did := r.json(t)["id"].(string)
	for _, step := range []struct{ path, body string }{
		{"/stage", `{"stage":"proposal"}`},
		{"/lose", `{"reason":"price","note":"too expensive"}`},
		{"/reopen", ``},
		{"/win", `{"amount":1100000,"closed_at":"2026-05-31"}`},
	} {
		if r := a.do("POST", "/v1/deals/"+did+step.path, appToken, step.body); r.status != http.StatusOK {
			t.Fatalf("%s: %d %s", step.path, r.status, r.body)
		}
	}
	d := a.do("GET", "/v1/deals/"+did, appToken, "").json(t)
	amount := d["amount"].(map[string]any)
	if d["stage"] != "won" || amount["amount"] != 1100000.0 || d["closed_at"] != "2026-05-31" || d["owner"] != "rep-mori" || d["probability"] != 100.0 {
		t.Fatalf("deal: %v", d)
	}
	lost := a.do("GET", "/v1/deals/"+did+"?version=3", appToken, "").json(t)
	if lost["stage"] != "lost" || lost["lost_reason"] != "price" {
		t.Fatalf("deal at version 3: %v", lost)
	}
	if h := a.do("GET", "/v1/deals/"+did+"/history", auditorToken, ""); h.status != 200 || !bytes.Contains(h.body, []byte(`"deal.won.v1"`)) {
		t.Fatalf("deal history: %d %s", h.status, h.body)
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	id := a.createContact()
	big := `{"note":"` + strings.Repeat("x", httpapi.DefaultMaxBody) + `","kind":"call"}`
	tests := []struct {
		name, method, path, body string
		headers                  []string
		status                   int
		problem, field           string
	}{
		{"unknown field", "POST", "/phase", `{"phase":"approach","colour":"red"}`, nil, 400, "bad-request", "colour"},
		{"wrong type", "POST", "/purchases", `{"amount":"12","currency":"JPY","product":"x"}`, nil, 400, "bad-request", "amount"},
		{"float amount", "POST", "/purchases", `{"amount":12.5,"currency":"JPY","product":"x"}`, nil, 400, "bad-request", "amount"},
		{"not JSON", "POST", "/phase", `{"phase":`, nil, 400, "bad-request", ""},
		{"not an object", "POST", "/phase", `["approach"]`, nil, 400, "bad-request", ""},
		{"bad occurred_at", "POST", "/touchpoints", `{"kind":"call","occurred_at":"yesterday"}`, nil, 400, "bad-request", "occurred_at"},
		{"oversized body", "POST", "/touchpoints", big, nil, 413, "payload-too-large", ""},
		{"wrong content type", "POST", "/phase", `{"phase":"approach"}`, []string{"Content-Type", "text/plain"}, 415, "unsupported-media-type", ""},
		{"invalid value", "POST", "/surveys", `{"nps":11}`, nil, 422, "validation", "nps"},
		{"unknown touchpoint kind", "POST", "/touchpoints", `{"kind":"telepathy"}`, nil, 422, "validation", "kind"},
		{"refused transition", "POST", "/phase", `{"phase":"churned","reason":"gone"}`, nil, 422, "refused", ""},
		{"unknown task", "POST", "/tasks/nope/complete", ``, nil, 404, "not-found", ""},
		{"stale If-Match", "POST", "/phase", `{"phase":"approach"}`, []string{"If-Match", `"0"`}, 412, "precondition-failed", ""},
		{"malformed If-Match", "POST", "/phase", `{"phase":"approach"}`, []string{"If-Match", `abc`}, 400, "bad-request", ""},
		{"unknown route", "POST", "/teleport", `{}`, nil, 404, "not-found", ""},
		{"method not allowed", "DELETE", "", ``, nil, 405, "method-not-allowed", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := a.do(tc.method, "/v1/contacts/"+id+tc.path, appToken, tc.body, tc.headers...)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			p := r.json(t)
			if p["type"] != httpapi.ProblemBase+tc.problem || p["status"] != float64(tc.status) || p["title"] == "" {
				t.Fatalf("problem %v", p)
			}
			if tc.field != "" && p["field"] != tc.field {
				t.Fatalf("field %v, want %s", p["field"], tc.field)
			}
		})
	}
	if v := a.contactVersion(id); v != 1 {
		t.Fatalf("contact version %v after bad requests, want 1", v)
	}
	if r := a.do("GET", "/v1/contacts/unknown-id", appToken, ""); r.status != 404 {
		t.Fatalf("unknown contact: %d", r.status)
	}
	if r := a.do("POST", "/v1/deals/unknown-id/win", appToken, `{}`); r.status != 404 {
		t.Fatalf("unknown deal: %d %s", r.status, r.body)
	}
	if r := a.do("POST", "/v1/deals", appToken, `{"contact_id":"unknown","title":"x","amount":1,"currency":"JPY"}`); r.status != 422 {
		t.Fatalf("deal for unknown contact: %d %s", r.status, r.body)
	}
}

func TestIdempotencyKeyOverHTTP(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	body := `{"name":"Kenta Ito","channel":"referral"}`
	first := a.do("POST", "/v1/contacts", appToken, body, "Idempotency-Key", "lead-42")
	again := a.do("POST", "/v1/contacts", appToken, body, "Idempotency-Key", "lead-42")
	if first.status != 201 || again.status != 201 || !bytes.Equal(first.body, again.body) {
		t.Fatalf("first %d %s, retry %d %s", first.status, first.body, again.status, again.body)
	}
	if again.header.Get("Idempotent-Replayed") != "true" || first.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("Idempotent-Replayed: first %q, retry %q", first.header.Get("Idempotent-Replayed"), again.header.Get("Idempotent-Replayed"))
	}
	conflict := a.do("POST", "/v1/contacts", appToken, `{"name":"Someone Else","channel":"referral"}`, "Idempotency-Key", "lead-42")
	if conflict.status != 409 || conflict.json(t)["type"] != httpapi.ProblemBase+"idempotency-conflict" {
		t.Fatalf("reused key: %d %s", conflict.status, conflict.body)
	}
	id := first.json(t)["id"].(string)
	if v := a.contactVersion(id); v != 1 {
		t.Fatalf("version %v, want 1", v)
	}
}
