package httpapi_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/eventcrm/crm/cmd/crm/internal/httpapi"
)

// FuzzRequests sends arbitrary requests (a method, a path with its query, a body, a role) to
// the whole API over SQLite and over PostgreSQL, one server per backend for every input.
// Whatever the input: no 5xx; every error is an RFC 9457 problem with its fields; and a
// refused request appends nothing to the log. `make test` runs the seeds below (every input
// that once reached the database as a NUL, or answered 500); `make fuzz` searches further.
// In paths and bodies, {contact}, {deal} and {task} stand for ids that exist.
func FuzzRequests(f *testing.F) {
	type target struct {
		a   *wholeAPI
		ids ids
	}
	var targets []target
	for _, b := range backends() {
		a := newWholeAPI(f, b)
		targets = append(targets, target{a, a.setUp(f)})
	}
	for _, seed := range fuzzSeeds(f) {
		f.Add(seed.method, seed.path, seed.body, seed.token)
	}
	// What a fuzzed request's method and token bytes pick from.
	methods, tokens := []string{"GET", "POST", "PATCH"}, []string{appToken, auditorToken, analystToken, adminToken}
	f.Fuzz(func(t *testing.T, method uint8, path, body string, token uint8) {
		m, tok := methods[int(method)%len(methods)], tokens[int(token)%len(tokens)]
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		for _, tg := range targets {
			checkAnswer(t, tg.a, m, tg.ids.fill(path), tok, tg.ids.fill(body))
		}
	})
}

type fuzzSeed struct {
	method     uint8
	path, body string
	token      uint8
}

// fuzzSeeds are a valid body of every command, each with a NUL and with invalid UTF-8 in
// its first string field, and every path id and query parameter that reached PostgreSQL.
func fuzzSeeds(f *testing.F) []fuzzSeed {
	var seeds []fuzzSeed
	for _, cmd := range commandBodies() {
		m := uint8(1) // POST
		if method(cmd.path) == "PATCH" {
			m = 2
		}
		b, err := json.Marshal(cmd.body)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, fuzzSeed{m, cmd.path, string(b), 0})
		if len(cmd.fields) > 0 {
			field := cmd.fields[0]
			nul := strings.Replace(string(b), `"`+field+`":"`, `"`+field+`":"\u0000`, 1)
			invalid := strings.Replace(string(b), `"`+field+`":"`, `"`+field+`":"`+"\xff", 1)
			seeds = append(seeds, fuzzSeed{m, cmd.path, nul, 0}, fuzzSeed{m, cmd.path, invalid, 0})
		}
	}
	seeds = append(seeds,
		fuzzSeed{1, "/v1/contacts", `{"name":"a\u0000b","channel":"seminar"}`, 0},
		fuzzSeed{1, "/v1/contacts", `{"name":"a","channel":"seminar","owner":"rep\u0000mori"}`, 0},
		fuzzSeed{1, "/v1/contacts", `{"name":"a\u001bb","channel":"seminar"}`, 0},
		fuzzSeed{1, "/v1/contacts", "{\"name\":\"a\xffb\",\"channel\":\"seminar\"}", 0},
	)
	for _, p := range []struct {
		method uint8
		path   string
		token  uint8
	}{
		{0, "/v1/contacts/%00", 0}, {0, "/v1/deals/%00", 0}, {0, "/v1/contacts/%00/history", 1},
		{0, "/v1/deals/%FF/history", 1}, {0, "/v1/journeys/%00", 0}, {1, "/v1/contacts/%00/phase", 0},
		{1, "/v1/contacts/{contact}/tasks/%00/complete", 0}, {1, "/v1/deals/%00/stage", 0},
		{0, "/v1/projections/%00/rebuild", 0}, {1, "/v1/projections/parked/%00/retry", 2},
		{0, "/v1/pipeline/board?owner=%00", 0}, {0, "/v1/pipeline/board?stage=%FF&limit=5", 0},
		{0, "/v1/analytics/journey-map?owner=%00", 0}, {0, "/v1/analytics/journey-map?cohort=2026-01&segment=%00", 0},
		{0, "/v1/analytics/churn-points?channel=%00", 0}, {0, "/v1/projections/parked?projection=%00", 0},
		{0, "/v1/audit/proof?stream=%00&version=1", 1}, {0, "/v1/contacts/{contact}?as_of=%00", 0},
		{0, "/v1/pipeline/board", 0}, {0, "/v1/journeys/{contact}", 0}, {0, "/v1/analytics/journey-map?by_stage=true", 0},
		{0, "/v1/analytics/churn-points", 0}, {0, "/v1/projections/parked", 0}, {0, "/v1/contacts/{contact}/history", 1},
	} {
		seeds = append(seeds, fuzzSeed{p.method, p.path, "", p.token})
	}
	return seeds
}

// checkAnswer sends one request and checks the properties of FuzzRequests.
func checkAnswer(t *testing.T, a *wholeAPI, method, path, token, body string) {
	t.Helper()
	head := a.head(t)
	r, err := a.sendRaw(method, path, token, body)
	var ue *url.Error
	if err != nil && (errors.As(err, &ue) || strings.HasPrefix(err.Error(), "path ")) {
		return // not a request a client can send
	}
	if err != nil {
		t.Fatal(err)
	}
	if r.status >= 500 {
		t.Fatalf("%s %q: %d %s", method, path, r.status, r.body)
	}
	if r.status < 400 {
		return
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("%s %q: %d with Content-Type %q: %s", method, path, r.status, ct, r.body)
	}
	var p httpapi.Problem
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("%s %q: problem %q: %v", method, path, r.body, err)
	}
	if !strings.HasPrefix(p.Type, httpapi.ProblemBase) || p.Title == "" || p.Status != r.status || p.Instance == "" || p.RequestID == "" {
		t.Fatalf("%s %q: %d problem %+v", method, path, r.status, p)
	}
	if now := a.head(t); now != head {
		t.Fatalf("%s %q: refused (%d) but the log moved from %d to %d", method, path, r.status, head, now)
	}
	if r.status == http.StatusMethodNotAllowed && p.Type != httpapi.ProblemBase+"method-not-allowed" {
		t.Fatalf("%s %q: 405 as %s", method, path, p.Type)
	}
}
