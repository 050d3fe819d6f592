package httpapi_test

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/eventcrm/crm/cmd/crm/internal/auth"
	"github.com/eventcrm/crm/cmd/crm/internal/config"
	"github.com/eventcrm/crm/cmd/crm/internal/httpapi"
	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections/board"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// storeBackend opens a fresh, empty event store, closed (and dropped) when the test ends.
type storeBackend struct {
	name string
	open func(t *testing.T) eventstore.Store
}

func storeBackends() []storeBackend {
	return []storeBackend{{"sqlite", func(t *testing.T) eventstore.Store { return openSQLiteStore(t) }}, {"postgres", openPostgresStore}}
}

// openPostgresStore is openPostgres as a storeBackend opens it.
func openPostgresStore(t *testing.T) eventstore.Store { return openPostgres(t) }

// execPostgres runs statements on a connection of their own.
func execPostgres(t *testing.T, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, projectiontest.PostgresURL())
	if err != nil {
		t.Errorf("connect to postgres: %v", err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Errorf("%s: %v", sql, err)
	}
}

// edge is the API over a store, served by a real listener, with its log observed.
type edge struct {
	*api
	addr  string
	store eventstore.Store
	logs  *observer.ObservedLogs
}

// newEdge serves the API over store as `crm serve` does (HTTPServer on ProblemListener), with
// the server's read timeout set to readTimeout (none when 0).
func newEdge(t *testing.T, store eventstore.Store, readTimeout time.Duration) *edge {
	t.Helper()
	tokens, err := auth.ParseTokens("web:app:" + appToken + ",aud:auditor:" + auditorToken)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	appends := httpapi.WatchAppends(store)
	server := httpapi.New(httpapi.Config{Store: store, Commands: commands.NewHandler(appends), Appends: appends,
		Tokens: tokens, Log: zap.New(core)})
	ts := httptest.NewUnstartedServer(server)
	ts.Config = server.HTTPServer(httpapi.Timeouts{Read: readTimeout})
	ts.Listener = httpapi.ProblemListener(ts.Listener)
	ts.Start()
	t.Cleanup(ts.Close)
	return &edge{api: &api{t: t, url: ts.URL}, addr: ts.Listener.Addr().String(), store: store, logs: logs}
}

// events counts the events of the log.
func (e *edge) events() int {
	e.t.Helper()
	all, err := e.store.ReadAll(context.Background(), 0, 1000)
	if err != nil {
		e.t.Fatalf("read the log: %v", err)
	}
	return len(all)
}

// errorLogs are the entries logged at error level or above.
func (e *edge) errorLogs() []observer.LoggedEntry {
	return e.logs.Filter(func(le observer.LoggedEntry) bool { return le.Level >= zapcore.ErrorLevel }).All()
}

// rawExchange sends head and body on a connection of its own, then, when halfClose, closes its
// writing side (a client that stops sending), and reads the answer.
func rawExchange(t *testing.T, addr, head, body string, halfClose bool) *http.Response {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	// A safety net for a server that never answers, not an assertion on time.
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(conn, head+body); err != nil {
		t.Fatalf("send: %v", err)
	}
	if halfClose {
		if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read the answer: %v", err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

// problemOf reads a problem+json answer.
func problemOf(t *testing.T, resp *http.Response) map[string]any {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("Content-Type %q, want application/problem+json: %d %s", ct, resp.StatusCode, b)
	}
	var p map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		t.Fatalf("problem body: %v", err)
	}
	return p
}

func commandHead(path, extra string) string {
	return "POST " + path + " HTTP/1.1\r\nHost: crm\r\nAuthorization: Bearer " + appToken +
		"\r\nContent-Type: application/json\r\n" + extra + "\r\n"
}

// A body the server cannot read is the client's doing: 400, or 408 when it came slower than
// the read timeout, as a problem, not logged as an error, and nothing is appended.
func TestUnreadableBodyIsTheClientsProblem(t *testing.T) {
	t.Parallel()
	const readTimeout = 300 * time.Millisecond
	body := `{"name":"Yui Sato","channel":"seminar"}`
	tests := []struct {
		name, head, body string
		halfClose        bool
		status           int
		problem          string
	}{
		{"truncated body", commandHead("/v1/contacts", "Content-Length: 500\r\n"), body, true, 400, "bad-request"},
		{"malformed chunked encoding", commandHead("/v1/contacts", "Transfer-Encoding: chunked\r\n"),
			"zz\r\n" + body + "\r\n0\r\n\r\n", false, 400, "bad-request"},
		{"chunk longer than sent", commandHead("/v1/contacts", "Transfer-Encoding: chunked\r\n"), "400\r\n" + body, true, 400, "bad-request"},
		// The client stays connected but sends no more: the read deadline passes.
		{"body slower than the read timeout", commandHead("/v1/contacts", "Content-Length: 500\r\n"), body, false, 408, "request-timeout"},
	}
	for _, b := range storeBackends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			e := newEdge(t, b.open(t), readTimeout)
			before := e.events()
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					resp := rawExchange(t, e.addr, tc.head, tc.body, tc.halfClose)
					if resp.StatusCode != tc.status {
						t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
					}
					if p := problemOf(t, resp); p["type"] != httpapi.ProblemBase+tc.problem || p["status"] != float64(tc.status) {
						t.Fatalf("problem %v, want %s", p, tc.problem)
					}
				})
			}
			if n := e.events(); n != before {
				t.Errorf("%d events after unreadable bodies, want %d", n, before)
			}
			for _, le := range e.errorLogs() {
				t.Errorf("logged at %s: %s %v", le.Level, le.Message, le.ContextMap())
			}
			if n := e.logs.FilterMessage("request refused").FilterField(zap.String("path", "/v1/contacts")).Len(); n != len(tests) {
				t.Errorf("%d client errors logged, want %d", n, len(tests))
			}
		})
	}
}

// A path with dot segments, encoded slashes or empty segments is refused before routing and
// authentication: no redirect that echoes the query, whatever its size.
func TestNonCanonicalPathsAreRefusedWithoutRedirect(t *testing.T) {
	t.Parallel()
	query := "?q=" + strings.Repeat("echo", 2500) // 10 KB
	paths := []struct{ name, path string }{
		{"encoded slashes climbing out", "/v1/contacts/..%2F..%2Fhealthz"},
		{"empty segment", "/v1//contacts"},
		{"encoded dot segment", "/v1/%2e%2e/healthz"},
		{"dot segment", "/v1/contacts/./x"},
		{"encoded slash in an id", "/v1/contacts/a%2Fb"},
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, b := range storeBackends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			e := newEdge(t, b.open(t), 0)
			for _, tc := range paths {
				t.Run(tc.name, func(t *testing.T) {
					for _, token := range []string{"", appToken} {
						req, err := http.NewRequest(http.MethodGet, e.url+tc.path+query, nil)
						if err != nil {
							t.Fatal(err)
						}
						if token != "" {
							req.Header.Set("Authorization", "Bearer "+token)
						}
						resp, err := noRedirect.Do(req)
						if err != nil {
							t.Fatal(err)
						}
						body, _ := io.ReadAll(resp.Body)
						resp.Body.Close()
						if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
							t.Fatalf("token %q: status %d, Location %.80q, want 400 and none", token, resp.StatusCode, resp.Header.Get("Location"))
						}
						if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
							t.Fatalf("Content-Type %q", ct)
						}
						if strings.Contains(string(body), "echoecho") {
							t.Fatalf("the answer echoes the query: %.200s", body)
						}
						var p struct {
							RequestID string `json:"request_id"`
						}
						if err := json.Unmarshal(body, &p); err != nil || p.RequestID == "" || p.RequestID != resp.Header.Get("X-Request-ID") {
							t.Fatalf("request_id %q, header %q: every problem names its request (%v)", p.RequestID, resp.Header.Get("X-Request-ID"), err)
						}
					}
				})
			}
		})
	}
}

// The headers recorded in every event's metadata have a size limit each: a longer one is a 431
// problem naming it, and nothing is appended.
func TestMetadataHeadersAreLimited(t *testing.T) {
	t.Parallel()
	const huge = 900 << 10
	tests := []struct {
		name, header, value string
		status              int
	}{
		{"reason at its limit", "X-Reason", strings.Repeat("r", httpapi.MaxReasonHeader), 201},
		{"reason at its limit in characters, not bytes", "X-Reason", strings.Repeat("理", httpapi.MaxReasonHeader), 201},
		{"reason one character over", "X-Reason", strings.Repeat("r", httpapi.MaxReasonHeader+1), 431},
		{"reason of 900 KB", "X-Reason", strings.Repeat("r", huge), 431},
		{"correlation id at its limit", "X-Correlation-ID", strings.Repeat("c", httpapi.MaxIDHeader), 201},
		{"correlation id one character over", "X-Correlation-ID", strings.Repeat("c", httpapi.MaxIDHeader+1), 431},
		{"correlation id of 900 KB", "X-Correlation-ID", strings.Repeat("c", huge), 431},
		{"causation id one character over", "X-Causation-ID", strings.Repeat("c", httpapi.MaxIDHeader+1), 431},
		{"causation id of 900 KB", "X-Causation-ID", strings.Repeat("c", huge), 431},
	}
	for _, b := range storeBackends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			e := newEdge(t, b.open(t), 0)
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					before := e.events()
					r := e.do("POST", "/v1/contacts", appToken, `{"name":"Yui Sato","channel":"seminar"}`, tc.header, tc.value)
					if r.status != tc.status {
						t.Fatalf("status %d, want %d: %.300s", r.status, tc.status, r.body)
					}
					want := before + 1
					if tc.status != http.StatusCreated {
						want = before
						p := r.json(t)
						if p["type"] != httpapi.ProblemBase+"header-too-large" || p["field"] != tc.header ||
							!strings.Contains(p["detail"].(string), tc.header) || r.header.Get("Content-Type") != "application/problem+json" {
							t.Fatalf("problem %v", p)
						}
					}
					if n := e.events(); n != want {
						t.Fatalf("%d events, want %d", n, want)
					}
				})
			}
		})
	}
}

// Requests net/http refuses itself, before any handler runs (a header block over the limit, a
// byte HTTP forbids in a header, such as NUL), are answered with problems, not net/http's plain
// text, and append nothing.
func TestNetHTTPRefusalsAreProblems(t *testing.T) {
	t.Parallel()
	// net/http reads MaxHeaderBytes plus 4 KiB of slack before it refuses.
	filler := "X-Filler: " + strings.Repeat("f", httpapi.MaxHeaderBytes+8<<10) + "\r\n"
	command := func(header string) string {
		return "POST /v1/contacts HTTP/1.1\r\nHost: crm\r\nAuthorization: Bearer " + appToken +
			"\r\nContent-Type: application/json\r\nContent-Length: 35\r\n" + header + "\r\n"
	}
	const body = `{"name":"Aoi","channel":"web_form"}`
	for _, tc := range []struct {
		name, head string
		status     int
		problem    string
	}{
		{"header block over the limit", "GET /healthz HTTP/1.1\r\nHost: crm\r\n" + filler + "\r\n", 431, "header-too-large"},
		{"NUL in X-Reason", command("X-Reason: a\x00b\r\n"), 400, "bad-request"},
		{"NUL in X-Correlation-ID", command("X-Correlation-ID: a\x00b\r\n"), 400, "bad-request"},
		{"DEL in Idempotency-Key", command("Idempotency-Key: a\x7fb\r\n"), 400, "bad-request"},
		{"space in a header name", command("X-Re son: x\r\n"), 400, "bad-request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEdge(t, openSQLiteStore(t), 0)
			b := body
			if strings.HasPrefix(tc.head, "GET") {
				b = ""
			}
			resp := rawExchange(t, e.addr, tc.head, b, false)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if p := problemOf(t, resp); p["type"] != httpapi.ProblemBase+tc.problem || p["status"] != float64(tc.status) || p["title"] == "" || p["detail"] == "" {
				t.Fatalf("problem %v", p)
			}
			if n := e.events(); n != 0 {
				t.Fatalf("%d events appended by a refused request", n)
			}
			// The connection answers nothing more, and a new one is served as usual.
			if r := e.do("GET", "/healthz", "", ""); r.status != http.StatusOK {
				t.Fatalf("health after the refusal: %d %s", r.status, r.body)
			}
		})
	}
}

// A read-model answer that waits the longest wait for a position the log has not reached still
// gets its stale: true answer: the write timeout is derived from the wait. `crm serve` runs a
// 60 s base write timeout with waits up to 1m; here both are scaled down to 1 s.
func TestLongestReadWaitStillAnswers(t *testing.T) {
	t.Parallel()
	t.Run("the product's longest wait fits its write timeout", func(t *testing.T) {
		w := httpapi.DefaultTimeouts().ForReadWait(config.MaxReadWait).Write
		if w <= config.MaxReadWait {
			t.Fatalf("write timeout %s leaves no room after a wait of %s", w, config.MaxReadWait)
		}
	})
	t.Run("an answer after the longest wait arrives", func(t *testing.T) {
		const wait = time.Second
		server := newReadServer(t, wait).server
		ts := httptest.NewUnstartedServer(server)
		ts.Config = server.HTTPServer(httpapi.Timeouts{Write: wait}.ForReadWait(wait))
		ts.Start()
		t.Cleanup(ts.Close)
		a := &readAPI{api: &api{t: t, url: ts.URL}}
		var b answer[board.Answer]
		r := a.read("/v1/pipeline/board?min_position=999999999", &b)
		if r.status != http.StatusOK || !b.Freshness.Stale || r.header.Get(httpapi.HeaderStale) != "true" {
			t.Fatalf("board: %d stale=%v %s", r.status, b.Freshness.Stale, r.body)
		}
	})
}

// fullSQLite is a SQLite store whose appends fail, while full is set, with the error SQLite
// gives when the disk is full. A full disk cannot be made here (no tmpfs or loop device to
// fill without privileges), so the appends are the one mocked part; the error is SQLite's
// own, produced by a real database that reached its size limit, and reads are the store's.
type fullSQLite struct {
	eventstore.Store
	full atomic.Bool
	err  error
}

func (f *fullSQLite) Append(ctx context.Context, stream string, expected int64, events []eventstore.EventData) (eventstore.AppendResult, error) {
	if f.full.Load() {
		return eventstore.AppendResult{}, fmt.Errorf("append %s: %w", stream, f.err)
	}
	return f.Store.Append(ctx, stream, expected, events)
}

// sqliteFullError fills a SQLite database limited to a few pages and returns the error of
// the insert that did not fit: SQLITE_FULL, "database or disk is full".
func sqliteFullError(t *testing.T) error {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "full.db")+"?_pragma=max_page_count(8)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE filler (b BLOB)`); err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if _, err = db.Exec(`INSERT INTO filler VALUES (zeroblob(4096))`); err != nil {
			break
		}
	}
	if err == nil || !strings.Contains(err.Error(), "database or disk is full") {
		t.Fatalf("filling a database of 8 pages: %v, want database or disk is full", err)
	}
	return err
}

// Health answers 503 while appends fail although the store still answers reads, and 200 again
// once an append succeeds.
func TestHealthReportsFailingAppends(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// open returns a store and a switch that makes its appends fail as on a full disk.
		open func(t *testing.T) (eventstore.Store, func(full bool))
	}{
		{"sqlite", func(t *testing.T) (eventstore.Store, func(bool)) {
			s := &fullSQLite{Store: openSQLiteStore(t), err: sqliteFullError(t)}
			return s, s.full.Store
		}},
		// PostgreSQL's own disk_full error (SQLSTATE 53100), raised by the server on every insert.
		{"postgres", func(t *testing.T) (eventstore.Store, func(bool)) {
			s, schema := openPostgresSchema(t)
			return s, func(full bool) {
				if !full {
					execPostgres(t, "DROP TRIGGER IF EXISTS disk_full ON "+schema+".events")
					return
				}
				execPostgres(t, "CREATE OR REPLACE FUNCTION "+schema+".disk_full() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "+
					"RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full'; END $$; "+
					"DROP TRIGGER IF EXISTS disk_full ON "+schema+".events; CREATE TRIGGER disk_full BEFORE INSERT ON "+schema+".events FOR EACH ROW EXECUTE FUNCTION "+schema+".disk_full()")
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			store, setFull := tc.open(t)
			e := newEdge(t, store, 0)
			contact := `{"name":"Yui Sato","channel":"seminar"}`
			steps := []struct {
				name   string
				full   bool
				write  int // status of a command, 0 for none
				health int
			}{
				{"healthy", false, http.StatusCreated, http.StatusOK},
				{"disk full: the append fails", true, http.StatusInternalServerError, http.StatusServiceUnavailable},
				{"disk full: reads still work, health stays down", true, 0, http.StatusServiceUnavailable},
				{"space again: an append succeeds", false, http.StatusCreated, http.StatusOK},
			}
			for _, st := range steps {
				setFull(st.full)
				if st.write != 0 {
					if r := e.do("POST", "/v1/contacts", appToken, contact); r.status != st.write {
						t.Fatalf("%s: command %d, want %d: %s", st.name, r.status, st.write, r.body)
					}
				}
				r := e.do("GET", "/healthz", "", "")
				if r.status != st.health {
					t.Fatalf("%s: health %d, want %d: %s", st.name, r.status, st.health, r.body)
				}
				if st.health != http.StatusOK {
					if p := r.json(t); p["type"] != httpapi.ProblemBase+"unavailable" || !strings.Contains(p["detail"].(string), "append") {
						t.Fatalf("%s: problem %v", st.name, p)
					}
				}
			}
		})
	}
}
