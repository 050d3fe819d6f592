package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventcrm/crm/cmd/crm/internal/auth"
	"github.com/eventcrm/crm/cmd/crm/internal/httpapi"
	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/eventstore/audit"
)

// wholeServer is a server with every part mounted: commands, read models, rebuilds, audit.
func wholeServer(t *testing.T) *httpapi.Server {
	t.Helper()
	return newWholeAPI(t, backends()[0]).server
}

// Every route of the router has a description: a route added without one fails here.
func TestEveryRouteIsDescribed(t *testing.T) {
	t.Parallel()
	s := wholeServer(t)
	missing, err := s.Undescribed()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range missing {
		t.Errorf("%s %s has no description (summary and answer): describe it where it is registered", r.Method, r.Path)
	}
	routes, err := s.Routes()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	raw, err := s.OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if _, ok := doc.Paths[r.Path][strings.ToLower(r.Method)]; !ok {
			t.Errorf("%s %s is not in /openapi.json", r.Method, r.Path)
		}
	}
	if len(routes) < 50 {
		t.Errorf("only %d routes walked: the whole server was not mounted", len(routes))
	}
}

// A route registered without a description is reported by Undescribed.
func TestUndescribedRouteIsReported(t *testing.T) {
	t.Parallel()
	s := httpapi.New(httpapi.Config{Store: openSQLiteStore(t)})
	s.Router().HandleFunc("/v1/forgotten", func(http.ResponseWriter, *http.Request) {}).Methods(http.MethodGet)
	missing, err := s.Undescribed()
	if err != nil {
		t.Fatal(err)
	}
	if want := []httpapi.Route{{Method: http.MethodGet, Path: "/v1/forgotten"}}; !slices.Equal(missing, want) {
		t.Fatalf("undescribed %v, want %v", missing, want)
	}
}

// The description is served at /openapi.json, with roles, problem types and schemas, and is
// what the validator of every HTTP test reads; /docs is the page that shows it, offline.
func TestDescriptionIsServed(t *testing.T) {
	t.Parallel()
	a := newWholeAPI(t, backends()[0])
	r := a.do("GET", "/openapi.json", "", "")
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /openapi.json: %d %s", r.status, r.header.Get("Content-Type"))
	}
	var doc struct {
		OpenAPI string                               `json:"openapi"`
		Paths   map[string]map[string]map[string]any `json:"paths"`
		Comps   struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi %q", doc.OpenAPI)
	}
	for _, tc := range []struct {
		path, method string
		roles        []any
	}{
		{"/v1/contacts", "post", []any{"app", "admin"}},
		{"/v1/pipeline/board", "get", []any{"app", "analyst", "auditor", "admin"}},
		{"/v1/projections/{name}/rebuild", "post", []any{"analyst", "admin"}},
	} {
		op := doc.Paths[tc.path][tc.method]
		if op == nil {
			t.Errorf("%s %s not described", tc.method, tc.path)
			continue
		}
		if roles, _ := op["x-roles"].([]any); !slices.Equal(roles, tc.roles) {
			t.Errorf("%s %s roles %v, want %v", tc.method, tc.path, roles, tc.roles)
		}
	}
	for _, name := range []string{"Problem", "BoardAnswer", "Freshness", "History", "DirectoryContacts"} {
		if doc.Comps.Schemas[name] == nil {
			t.Errorf("no schema %s", name)
		}
	}
	if !strings.Contains(string(doc.Comps.Schemas["Problem"]), httpapi.ProblemBase+"precondition-failed") {
		t.Errorf("the Problem schema does not list the problem types")
	}

	page := a.do("GET", "/docs", "", "")
	if page.status != http.StatusOK || !strings.HasPrefix(page.header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /docs: %d %s", page.status, page.header.Get("Content-Type"))
	}
	if !strings.Contains(string(page.body), `fetch("/openapi.json")`) || regexp.MustCompile(`(src|href)="https?://`).Match(page.body) {
		t.Errorf("/docs must read /openapi.json and load nothing from elsewhere")
	}
}

// Every problem type problem.go makes is listed in the description.
func TestProblemTypesAreListed(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("problem.go")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := httpapi.New(httpapi.Config{Store: openSQLiteStore(t)}).OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`http\.Status\w+, "([a-z-]+)", "`).FindAllSubmatch(src, -1) {
		if !strings.Contains(string(raw), httpapi.ProblemBase+string(m[1])) {
			t.Errorf("problem type %s is not in the description", m[1])
		}
	}
}

// recordingTB records what a check reports instead of failing the test.
type recordingTB struct {
	testing.TB
	mu     sync.Mutex
	errors []string
}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

// The check every HTTP test runs catches an answer that differs from the description and a
// request the description refuses that is answered with success; it lets through what
// matches.
func TestDescriptionCheckCatchesDrift(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, method, path, token string
		serve                     func(w http.ResponseWriter)
		want                      string // in the reported error; "" for none
	}{
		{name: "answer as described", method: "GET", path: "/healthz", want: ""},
		{name: "answer with a field the type lacks", method: "GET", path: "/healthz", want: "does not match the description",
			serve: func(w http.ResponseWriter) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(`{"status":1}`))
			}},
		{name: "unknown path answered 200", method: "GET", path: "/v1/nowhere", want: "yet it was answered 200",
			serve: func(w http.ResponseWriter) { w.WriteHeader(http.StatusOK) }},
		{name: "missing token answered 401", method: "GET", path: "/v1/contacts/x", want: ""},
		{name: "bad parameter answered 200", method: "GET", path: "/v1/contacts/x?version=abc", token: appToken, want: "yet it was answered 200",
			serve: func(w http.ResponseWriter) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(`{}`))
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tokens, err := auth.ParseTokens("web:app:" + appToken)
			if err != nil {
				t.Fatal(err)
			}
			store := openSQLiteStore(t)
			s := httpapi.New(httpapi.Config{Store: store, Commands: commands.NewHandler(store), Tokens: tokens})
			var h http.Handler = s
			if tc.serve != nil {
				h = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { tc.serve(w) })
			}
			rec := &recordingTB{TB: t}
			srv := httptest.NewServer(checkAgainstDescription(rec, s, h))
			t.Cleanup(srv.Close)
			(&api{t: t, url: srv.URL}).do(tc.method, tc.path, tc.token, "")
			got := strings.Join(rec.errors, "\n")
			if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
				t.Fatalf("reported %q, want %q", got, tc.want)
			}
		})
	}
}

// BenchmarkOpenAPI builds the description of the whole server, as GET /openapi.json does.
func BenchmarkOpenAPI(b *testing.B) {
	s := newWholeAPI(b, backends()[0]).server
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.OpenAPI(); err != nil {
			b.Fatal(err)
		}
	}
}

// The description is kept between requests, yet routes mounted after it was first built are
// in the next one.
func TestDescriptionFollowsMountedRoutes(t *testing.T) {
	t.Parallel()
	rs := newReadServer(t, time.Second)
	before, err := rs.server.OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(before), `"/v1/audit/key"`) {
		t.Fatal("audit described before it is mounted")
	}
	src := audit.StoreSource(rs.store)
	rs.server.MountAudit(httpapi.Audit{Ledger: newLedger(t, src, src), AccessLog: newAccessLog(t)})
	after, err := rs.server.OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(after), `"/v1/audit/key"`) {
		t.Fatal("audit mounted but not described")
	}
}
