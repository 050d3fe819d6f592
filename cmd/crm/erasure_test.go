package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/klauspost/compress/zstd"
)

// secret is in every personal value the erasure test writes: after the erasure no file of the
// data directory, no PostgreSQL table and no answer may hold it.
const secret = "quillon"

// erasureServer is a `crm serve` of the erasure test, on a real listener.
type erasureServer struct {
	t     *testing.T
	base  string
	token string
	env   map[string]string
	stop  func()
}

func startErasureServer(t *testing.T, env map[string]string) *erasureServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--addr", addr}, func(k string) string { return env[k] }, io.Discard, io.Discard)
	}()
	for i := 0; ; i++ {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if i == 200 {
			cancel()
			t.Fatalf("server did not come up: %v (%v)", err, <-done)
		}
		time.Sleep(50 * time.Millisecond)
	}
	token := []byte(env["CRM_TOKENS"][strings.LastIndex(env["CRM_TOKENS"], ":")+1:]) // CRM_TOKENS=role:name:token
	if env["CRM_TOKENS"] == "" {
		if token, err = os.ReadFile(filepath.Join(env["CRM_DATA_DIR"], "admin.token")); err != nil {
			t.Fatal(err)
		}
	}
	var once sync.Once
	s := &erasureServer{t: t, base: "http://" + addr, token: strings.TrimSpace(string(token)), env: env}
	s.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		})
	}
	t.Cleanup(s.stop)
	return s
}

// do sends a request and decodes a 2xx answer into out (when not nil).
func (s *erasureServer) do(method, path, body string, out any) int {
	s.t.Helper()
	req, _ := http.NewRequest(method, s.base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+s.token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		s.t.Logf("%s %s: %d %s", method, path, resp.StatusCode, b)
		return resp.StatusCode
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			s.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return resp.StatusCode
}

func (s *erasureServer) must(method, path, body string, out any) {
	s.t.Helper()
	if code := s.do(method, path, body, out); code/100 != 2 {
		s.t.Fatalf("%s %s: %d", method, path, code)
	}
}

type commandAnswer struct {
	ID       string `json:"id"`
	Position int64  `json:"position"`
}

// writePerson records a contact whose every personal field holds secret, and a deal lost with a
// note that does too; it returns the contact id and the last position.
func (s *erasureServer) writePerson() (string, int64) {
	var c, last commandAnswer
	s.must("POST", "/v1/contacts", `{"name":"Quillon Erasable","email":"quillon@erase.example","phone":"+81 90 5555 0199","company":"Acme","channel":"seminar"}`, &c)
	id := c.ID
	for _, cmd := range [][2]string{
		{"/v1/contacts/" + id + "/notes", `{"text":"quillon note: prefers calls"}`},
		{"/v1/contacts/" + id + "/touchpoints", `{"kind":"meeting","note":"quillon touchpoint note"}`},
		{"/v1/contacts/" + id + "/surveys", `{"nps":9,"comment":"quillon survey comment"}`},
		{"/v1/contacts/" + id + "/tasks", `{"title":"call quillon back","due":"2030-01-01"}`},
		{"/v1/contacts/" + id + "/phase", `{"phase":"approach"}`},
	} {
		s.must("POST", cmd[0], cmd[1], &last)
	}
	var d commandAnswer
	s.must("POST", "/v1/deals", `{"contact_id":"`+id+`","title":"Renewal","amount":1000,"currency":"JPY"}`, &d)
	s.must("POST", "/v1/deals/"+d.ID+"/lose", `{"reason":"price","note":"quillon said too expensive"}`, &last)
	return id, last.Position
}

// fill appends n events about other contacts, so the log passes a snapshot position.
func (s *erasureServer) fill(n int) {
	var wg sync.WaitGroup
	for w := range 8 {
		var c commandAnswer
		s.must("POST", "/v1/contacts", `{"name":"Filler","channel":"web_form"}`, &c)
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				s.do("POST", "/v1/contacts/"+c.ID+"/usage", fmt.Sprintf(`{"percent_of_limit":%d}`, i%100), nil)
			}
		})
	}
	wg.Wait()
}

// answers returns every read-model answer that may show the person, now and in the past.
func (s *erasureServer) answers(id string, at int64) string {
	var all bytes.Buffer
	for _, path := range []string{
		"/v1/contacts/" + id, "/v1/contacts?q=" + secret + "&min_position=" + fmt.Sprint(at),
		"/v1/contacts?min_position=" + fmt.Sprint(at), "/v1/contacts/" + id + "/timeline?min_position=" + fmt.Sprint(at),
		"/v1/tasks?contact_id=" + id, "/v1/journeys/" + id, "/v1/deals?contact_id=" + id,
		"/v1/contacts?at_position=" + fmt.Sprint(at), "/v1/contacts/" + id + "/timeline?at_position=" + fmt.Sprint(at),
		"/v1/tasks?contact_id=" + id + "&at_position=" + fmt.Sprint(at),
	} {
		var v any
		s.must("GET", path, "", &v)
		b, _ := json.Marshal(v)
		all.Write(b)
	}
	return all.String()
}

// filesHolding lists the files under dir whose bytes hold secret, in any case.
func filesHolding(t *testing.T, dir string) []string {
	t.Helper()
	// A running server renames and removes files as it works (a snapshot's .part file
	// becomes the snapshot): a search during which a file vanished starts again, so that
	// the file under its new name is read too.
	for range 20 {
		hits, vanished, err := searchFiles(dir)
		if err != nil {
			t.Fatal(err)
		}
		if !vanished {
			return hits
		}
	}
	t.Fatalf("files of %s kept vanishing while searched", dir)
	return nil
}

// searchFiles lists the files under dir that hold secret, and whether a file vanished
// between the listing and its reading.
func searchFiles(dir string) (hits []string, vanished bool, err error) {
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			vanished = true
			return nil
		}
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			vanished = true
			return nil
		}
		if err != nil {
			return err
		}
		if strings.HasSuffix(path, ".zst") { // a time-travel snapshot, compressed: read inside too
			zr, err := zstd.NewReader(nil)
			if err != nil {
				return err
			}
			plain, err := zr.DecodeAll(b, nil)
			zr.Close()
			if err != nil {
				return fmt.Errorf("decompress %s: %w", path, err)
			}
			b = append(b, plain...)
		}
		if bytes.Contains(bytes.ToLower(b), []byte(secret)) {
			hits = append(hits, filepath.Base(path))
		}
		return nil
	})
	return hits, vanished, err
}

// tablesHolding lists the tables of the schemas whose rows, as text, hold secret.
func tablesHolding(t *testing.T, schemas ...string) []string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, postgresURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT table_schema, table_name FROM information_schema.tables
		WHERE table_schema = ANY($1) AND table_type IN ('BASE TABLE', 'VIEW')`, schemas)
	if err != nil {
		t.Fatal(err)
	}
	var tables [][2]string
	for rows.Next() {
		var s, n string
		if err := rows.Scan(&s, &n); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, [2]string{s, n})
	}
	rows.Close()
	if len(tables) < 10 {
		t.Fatalf("only %d tables in %v: the search would prove nothing", len(tables), schemas)
	}
	var hits []string
	for _, tb := range tables {
		name := pgx.Identifier{tb[0], tb[1]}.Sanitize()
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM `+name+` t WHERE lower(t::text) LIKE '%`+secret+`%'`).Scan(&n); err != nil {
			t.Fatalf("search %s: %v", name, err)
		}
		if n > 0 {
			hits = append(hits, name)
		}
	}
	return hits
}

// The hard test of an erasure: before it the person's data is in the answers, the files or
// tables and the time-travel sets; after it, none of them holds any of it, on SQLite and
// PostgreSQL, and the log still verifies against checkpoints signed before and after.
func TestErasureLeavesNoPlaintext(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"CRM_DATA_DIR": t.TempDir(), "CRM_LOG_LEVEL": "error", "CRM_SNAPSHOT_EVERY": "1000"}
			var schema string
			if backend == "postgres" {
				env["CRM_STORE"] = boundedSchema(t)
				u, _ := url.Parse(env["CRM_STORE"])
				schema = u.Query().Get("schema")
			}
			search := func() []string {
				if backend == "postgres" {
					return tablesHolding(t, schema, schema+"_readmodels", schema+"_keys")
				}
				return filesHolding(t, env["CRM_DATA_DIR"])
			}
			s := startErasureServer(t, env)
			id, at := s.writePerson()
			s.fill(1000)
			waitForSnapshot(t, backend, env, schema)

			if got := s.answers(id, at); !strings.Contains(strings.ToLower(got), secret) {
				t.Fatalf("the answers do not show the person before the erasure: the test would prove nothing: %s", got)
			}
			if hits := search(); len(hits) == 0 {
				t.Fatal("nothing holds the person before the erasure: the test would prove nothing")
			}
			checkExport(t, s, id)
			checkHistory(t, s, id)
			before := filepath.Join(t.TempDir(), "before.json")
			saveCheckpoint(t, env, before)

			if code := s.do("POST", "/v1/contacts/"+id+"/erase", `{"reason":"right to erasure, request 2025-17"}`, nil); code != http.StatusOK {
				t.Fatalf("erase: %d", code)
			}
			waitPurged(t, s, id)
			if got := s.answers(id, at); strings.Contains(strings.ToLower(got), secret) {
				t.Errorf("an answer still shows the person: %s", got)
			}
			var contact map[string]any
			s.must("GET", "/v1/contacts/"+id, "", &contact)
			if contact["erased"] != true || contact["name"] != "" {
				t.Errorf("contact after erasure: %v", contact)
			}
			var export map[string]any
			s.must("GET", "/v1/contacts/"+id+"/export", "", &export)
			if b, _ := json.Marshal(export); export["erased"] != true || strings.Contains(strings.ToLower(string(b)), secret) {
				t.Errorf("export after erasure: %s", b)
			}
			var history struct {
				Intact bool `json:"intact"`
			}
			s.must("GET", "/v1/contacts/"+id+"/history", "", &history)
			if !history.Intact {
				t.Error("the history no longer verifies")
			}
			if hits := search(); len(hits) > 0 {
				t.Errorf("still holding the erased person's data while serving: %v", hits)
			}
			s.stop()
			if hits := search(); len(hits) > 0 {
				t.Errorf("still holding the erased person's data after the server stopped: %v", hits)
			}
			after := filepath.Join(t.TempDir(), "after.json")
			saveCheckpoint(t, env, after)
			for _, args := range [][]string{{"--checkpoint", before}, {"--checkpoint", after}, {"--checkpoint", before, "--newer", after}} {
				if out, _, err := crm(t, env, append([]string{"audit", "verify"}, args...)...); err != nil || !strings.Contains(out, "\nOK: ") {
					t.Errorf("audit verify %v: %q, %v", args, out, err)
				}
			}
			if out, _, err := crm(t, env, "verify", "--quiet"); err != nil || !strings.HasPrefix(out, "OK") {
				t.Errorf("verify: %q, %v", out, err)
			}
		})
	}
}

// waitForSnapshot waits until time travel has taken a snapshot holding the person.
func waitForSnapshot(t *testing.T, backend string, env map[string]string, schema string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if backend == "sqlite" {
			m, _ := filepath.Glob(filepath.Join(env["CRM_DATA_DIR"], "readmodels.db.travel", "*_s1000.db.zst"))
			if len(m) > 0 {
				return
			}
		} else {
			conn, err := pgx.Connect(context.Background(), postgresURL())
			if err != nil {
				t.Fatal(err)
			}
			var n int
			err = conn.QueryRow(context.Background(), `SELECT count(*) FROM `+pgx.Identifier{schema + "_readmodels", "projection_snapshots"}.Sanitize()+
				` WHERE kind = 'snapshot' AND position = 1000`).Scan(&n)
			conn.Close(context.Background())
			if err == nil && n > 0 {
				return
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatal("no time-travel snapshot was taken")
}

func waitPurged(t *testing.T, s *erasureServer, id string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		var st struct {
			State string `json:"state"`
			Error string `json:"error"`
		}
		s.must("GET", "/v1/contacts/"+id+"/erase", "", &st)
		switch st.State {
		case "done":
			return
		case "failed":
			t.Fatalf("purge failed: %s", st.Error)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("the purge did not finish")
}

// checkExport: the export holds every event about the person, opened, and is in the access log.
func checkExport(t *testing.T, s *erasureServer, id string) {
	t.Helper()
	var export struct {
		Erased  bool `json:"erased"`
		Contact struct {
			Name string `json:"name"`
		} `json:"contact"`
		Events []struct {
			Stream   string          `json:"stream"`
			Type     string          `json:"type"`
			Personal string          `json:"personal"`
			Data     json.RawMessage `json:"data"`
		} `json:"events"`
	}
	s.must("GET", "/v1/contacts/"+id+"/export", "", &export)
	var sealed, dealEvents int
	for _, e := range export.Events {
		if e.Personal == "sealed" {
			sealed++
		}
		if strings.HasPrefix(e.Stream, "deal-") {
			dealEvents++
		}
	}
	// created, note, touchpoint, survey, task, phase; the deal opened and lost.
	if export.Erased || export.Contact.Name != "Quillon Erasable" || len(export.Events) != 8 || dealEvents != 2 || sealed != 6 {
		t.Errorf("export: erased %v, name %q, %d events (%d of deals, %d sealed)", export.Erased, export.Contact.Name, len(export.Events), dealEvents, sealed)
	}
	var log struct {
		Entries []struct {
			What string `json:"what"`
		} `json:"entries"`
	}
	s.must("GET", "/v1/audit/access-log?limit=1000", "", &log)
	for _, e := range log.Entries {
		if e.What == "export of "+id {
			return
		}
	}
	t.Errorf("the export is not in the access log: %+v", log)
}

// checkHistory: the history shows the data opened, and the bytes as stored and hashed sealed.
func checkHistory(t *testing.T, s *erasureServer, id string) {
	t.Helper()
	var history struct {
		Intact bool `json:"intact"`
		Events []struct {
			Type    string          `json:"type"`
			Data    json.RawMessage `json:"data"`
			DataB64 []byte          `json:"data_b64"`
		} `json:"events"`
	}
	s.must("GET", "/v1/contacts/"+id+"/history", "", &history)
	first := history.Events[0]
	if !history.Intact || first.Type != "contact.created.v2" || !strings.Contains(strings.ToLower(string(first.Data)), secret) ||
		strings.Contains(strings.ToLower(string(first.DataB64)), secret) || !strings.Contains(string(first.DataB64), `"sealed":"`+id+`:`) {
		t.Errorf("history before the erasure: intact %v, %s, data %s, stored %s", history.Intact, first.Type, first.Data, first.DataB64)
	}
}

// Two servers of one PostgreSQL deployment: the person is written and read on one, erased on
// the other. Afterwards neither shows the person's data: not the server that kept the key
// in memory from before (its export, history, time travel and the read models it may
// rebuild), nor the one that erased.
func TestErasureOnAnotherServer(t *testing.T) {
	t.Parallel()
	store := boundedSchema(t)
	auditKey := filepath.Join(t.TempDir(), "audit.key")
	env := func() map[string]string {
		return map[string]string{"CRM_STORE": store, "CRM_DATA_DIR": t.TempDir(), "CRM_AUDIT_KEY_FILE": auditKey,
			"CRM_TOKENS": "admin:admin:" + clusterToken, "CRM_LOG_LEVEL": "error"}
	}
	first := startErasureServer(t, env()) // started first: it holds the leases, the purges' too
	second := startErasureServer(t, env())
	id, at := first.writePerson()
	for _, s := range []*erasureServer{first, second} {
		if got := s.answers(id, at); !strings.Contains(strings.ToLower(got), secret) {
			t.Fatalf("the answers do not show the person before the erasure: the test would prove nothing: %s", got)
		}
	}
	checkExport(t, first, id)

	if code := second.do("POST", "/v1/contacts/"+id+"/erase", `{"reason":"right to erasure, request 2025-18"}`, nil); code != http.StatusOK {
		t.Fatalf("erase: %d", code)
	}
	waitPurged(t, second, id)
	for name, s := range map[string]*erasureServer{"the server that erased": second, "the other server": first} {
		var export, history any
		s.must("GET", "/v1/contacts/"+id+"/export", "", &export)
		s.must("GET", "/v1/contacts/"+id+"/history", "", &history)
		got, _ := json.Marshal([]any{export, history})
		if strings.Contains(strings.ToLower(string(got)), secret) {
			t.Errorf("%s: the export or history still shows the person: %s", name, got)
		}
		if got := s.answers(id, at); strings.Contains(strings.ToLower(got), secret) {
			t.Errorf("%s: an answer still shows the person: %s", name, got)
		}
	}
}
