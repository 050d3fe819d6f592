package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/eventcrm/crm/cmd/crm/internal/httpapi"
	"github.com/eventcrm/crm/projections/board"
)

// A component that was closed (the process is stopping) answers 503 unavailable with a
// Retry-After, through a real listener: the client may try again, elsewhere or later; it is
// not told the server failed.
func TestClosedComponentsAnswerUnavailable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		close  func(t *testing.T, rs readServer)
		method string
		path   string
		token  string
		// after is a request that shows the refused one changed nothing, and its status.
		after       string
		afterStatus int
	}{
		{
			name: "time travel closed",
			close: func(t *testing.T, rs readServer) {
				if err := rs.travel.Close(context.Background()); err != nil {
					t.Fatal(err)
				}
			},
			method: http.MethodGet, path: "/v1/pipeline/board?at_position=1", token: appToken,
			after: "/v1/pipeline/board", afterStatus: http.StatusOK,
		},
		{
			name:   "rebuilds closed",
			close:  func(_ *testing.T, rs readServer) { rs.rebuilds.Close() },
			method: http.MethodPost, path: "/v1/projections/" + board.Name + "/rebuild", token: analystToken,
			after: "/v1/projections/" + board.Name + "/rebuild", afterStatus: http.StatusNotFound,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rs := newReadServer(t, time.Second)
			srv := describedServer(t, rs.server)
			a := &readAPI{api: &api{t: t, url: srv.URL}}
			a.createContact()
			tc.close(t, rs)

			r := a.do(tc.method, tc.path, tc.token, "")
			if r.status != http.StatusServiceUnavailable || r.header.Get("Content-Type") != "application/problem+json" ||
				r.header.Get("Retry-After") == "" {
				t.Fatalf("%s %s: %d %v %s", tc.method, tc.path, r.status, r.header, r.body)
			}
			if p := r.json(t); p["type"] != httpapi.ProblemBase+"unavailable" || p["status"] != float64(http.StatusServiceUnavailable) ||
				p["detail"] == "" {
				t.Fatalf("%s %s: problem %v", tc.method, tc.path, p)
			}
			if r := a.read(tc.after, nil); r.status != tc.afterStatus {
				t.Fatalf("GET %s after: %d %s", tc.after, r.status, r.body)
			}
		})
	}
}

// The headers that go with a problem survive the error map: a 401 says how to authenticate
// (RFC 6750), through a real listener.
func TestRefusalsCarryTheirHeaders(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	for _, tc := range []struct {
		name, token, header, want string
	}{
		{"no token", "", "WWW-Authenticate", `Bearer realm="crm"`},
		{"unknown token", "not-a-valid-token-at-all", "WWW-Authenticate", `Bearer realm="crm", error="invalid_token"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := a.do(http.MethodGet, "/v1/contacts/00000000-0000-0000-0000-000000000000", tc.token, "")
			if r.status != http.StatusUnauthorized || r.header.Get(tc.header) != tc.want {
				t.Fatalf("%d %s: %q, want %q", r.status, tc.header, r.header.Get(tc.header), tc.want)
			}
		})
	}
}

// A panic in a handler is an internal problem, logged once, at error level, with its stack.
func TestPanicIsAnInternalProblemLoggedOnce(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zapcore.DebugLevel)
	server := httpapi.New(httpapi.Config{Store: openSQLiteStore(t), Log: zap.New(core)})
	server.Router().HandleFunc("/v1/boom", func(http.ResponseWriter, *http.Request) { panic("boom") })
	srv := httptest.NewServer(server)
	t.Cleanup(srv.Close)
	a := &api{t: t, url: srv.URL}

	r := a.do(http.MethodGet, "/v1/boom", "", "")
	if p := r.json(t); r.status != http.StatusInternalServerError || p["type"] != httpapi.ProblemBase+"internal" || p["request_id"] == "" {
		t.Fatalf("%d %v", r.status, p)
	}
	errs := logs.Filter(func(le observer.LoggedEntry) bool { return le.Level >= zapcore.ErrorLevel }).All()
	if len(errs) != 1 || !strings.Contains(fmt.Sprint(errs[0].ContextMap()["error"]), "goroutine") {
		t.Fatalf("error logs: %v", errs)
	}
}
