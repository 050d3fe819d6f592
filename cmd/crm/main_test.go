package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/eventcrm/crm/eventstore"
)

// crm runs the program in-process with an environment of its own.
func crm(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = run(context.Background(), args, func(k string) string { return env[k] }, &out, &errOut)
	return out.String(), errOut.String(), err
}

func seeded(t *testing.T, contacts string) (map[string]string, string) {
	t.Helper()
	dir := t.TempDir()
	env := map[string]string{"CRM_DATA_DIR": dir}
	out, _, err := crm(t, env, "seed", "--contacts", contacts, "--quiet")
	if err != nil {
		t.Fatalf("seed: %v", err)
	}
	if !strings.HasPrefix(out, "seeded "+contacts+" contacts") {
		t.Fatalf("seed output %q", out)
	}
	return env, filepath.Join(dir, "crm.db")
}

func openDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// digest summarises a log by its content (ids, streams, versions, types, data, business
// times), leaving out what differs between runs: recorded_at and so the hashes, and the
// sealed personal data (a random nonce, and keys of their own).
func digest(t *testing.T, path string) string {
	t.Helper()
	var d string
	err := openDB(t, path).QueryRow(`SELECT count(*) || ':' || group_concat(x, '|') FROM (
		SELECT id || stream || version || type || hex(CASE WHEN instr(data, ',"sealed":"') > 0
			THEN substr(data, 1, instr(data, ',"sealed":"')) ELSE data END) || occurred_at AS x FROM events ORDER BY stream, version)`).Scan(&d)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestSeedIsDeterministicAndIdempotent(t *testing.T) {
	t.Parallel()
	_, first := seeded(t, "60")
	env, second := seeded(t, "60")
	a, b := digest(t, first), digest(t, second)
	if a != b {
		t.Fatal("two seeds with the same --seed wrote different histories")
	}
	if n, _ := strconv.Atoi(strings.SplitN(a, ":", 2)[0]); n < 300 {
		t.Fatalf("only %d events for 60 contacts", n)
	}
	// Running it again adds nothing: every command replays by its idempotency key.
	if _, _, err := crm(t, env, "seed", "--contacts", "60", "--quiet"); err != nil {
		t.Fatal(err)
	}
	if again := digest(t, second); again != b {
		t.Fatal("re-running the seed changed the log")
	}
	var kinds int
	if err := openDB(t, second).QueryRow(`SELECT count(DISTINCT type) FROM events`).Scan(&kinds); err != nil {
		t.Fatal(err)
	}
	if kinds < 12 {
		t.Fatalf("the seed wrote only %d event types", kinds)
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	env, path := seeded(t, "20")
	out, _, err := crm(t, env, "verify", "--quiet")
	if err != nil || !strings.HasPrefix(out, "OK: ") {
		t.Fatalf("verify of an honest log: %q, %v", out, err)
	}
	tampers := []struct {
		name string
		sql  string
	}{
		{"changed data", `UPDATE events SET data = CAST(replace(CAST(data AS TEXT), '"', ' "') AS BLOB) WHERE position = 37`},
		{"changed metadata", `UPDATE events SET metadata = CAST(replace(CAST(metadata AS TEXT), 'rep-', 'REP-') AS BLOB) WHERE position = 37`},
		{"changed business time", `UPDATE events SET occurred_at = occurred_at + 1 WHERE position = 37`},
		// Not a stream's last event: the seed's concurrent writers decide which event position
		// 37 is, and removing the last one of a stream breaks no chain (only a checkpoint shows it).
		{"deleted event", `DELETE FROM events WHERE position = (SELECT min(e.position) FROM events e WHERE e.position >= 37
			AND EXISTS (SELECT 1 FROM events n WHERE n.stream = e.stream AND n.version = e.version + 1))`},
	}
	for _, tc := range tampers {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			copyDB(t, path, filepath.Join(dir, "crm.db"))
			if _, err := openDB(t, filepath.Join(dir, "crm.db")).Exec(tc.sql); err != nil {
				t.Fatal(err)
			}
			out, _, err := crm(t, map[string]string{"CRM_DATA_DIR": dir}, "verify", "--quiet")
			if err == nil {
				t.Fatalf("verify passed a tampered log: %q", out)
			}
			if !strings.Contains(out, "BROKEN") || !strings.Contains(err.Error(), "version") {
				t.Fatalf("verify output %q, error %v: want the broken event named", out, err)
			}
		})
	}
}

// copyDB copies a SQLite database with VACUUM INTO, which is consistent under WAL.
func copyDB(t *testing.T, from, to string) {
	t.Helper()
	if _, err := openDB(t, from).Exec(`VACUUM INTO ?`, to); err != nil {
		t.Fatal(err)
	}
}

func TestHistory(t *testing.T) {
	t.Parallel()
	env, path := seeded(t, "5")
	var stream string
	if err := openDB(t, path).QueryRow(`SELECT stream FROM events WHERE type = 'contact.created.v2' LIMIT 1`).Scan(&stream); err != nil {
		t.Fatal(err)
	}
	out, _, err := crm(t, env, "history", stream)
	if err != nil || !strings.Contains(out, "contact.created.v2") || !strings.Contains(out, "actor=rep-") {
		t.Fatalf("history: %v\n%s", err, out)
	}
	js, _, err := crm(t, env, "history", "--json", stream)
	if err != nil || !strings.HasPrefix(js, `{"data":`) {
		t.Fatalf("history --json: %v\n%s", err, js)
	}
	// Each line carries the bytes as stored and hashed beside their decoded view.
	// The data is read (personal data opened); the bytes as stored hold it sealed.
	var line struct {
		Data        json.RawMessage     `json:"data"`
		DataB64     []byte              `json:"data_b64"`
		Metadata    eventstore.Metadata `json:"metadata"`
		MetadataB64 []byte              `json:"metadata_b64"`
		Personal    string              `json:"personal"`
	}
	if err := json.Unmarshal([]byte(strings.SplitN(js, "\n", 2)[0]), &line); err != nil {
		t.Fatal(err)
	}
	var stored eventstore.Metadata
	if err := json.Unmarshal(line.MetadataB64, &stored); err != nil || stored != line.Metadata || line.Personal != "sealed" ||
		!bytes.Contains(line.DataB64, []byte(`"sealed":"`)) || !bytes.Contains(line.Data, []byte(`"email":"`)) || bytes.Contains(line.DataB64, []byte(`"email":"`)) {
		t.Fatalf("history --json: stored bytes %q %q, decoded %s %+v (%v)", line.DataB64, line.MetadataB64, line.Data, line.Metadata, err)
	}
	if _, _, err := crm(t, env, "history", "contact-does-not-exist"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("history of a missing stream: %v", err)
	}
}

func TestCommandLineErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		usage   bool
		message string
	}{
		{"no command", nil, nil, true, "no command"},
		{"unknown command", nil, []string{"dance"}, true, `unknown command "dance"`},
		{"history without stream", map[string]string{"CRM_DATA_DIR": dir}, []string{"history"}, true, "one stream name"},
		{"bad flag", nil, []string{"seed", "--contacts", "many"}, true, "invalid value"},
		{"bad start date", nil, []string{"seed", "--start", "soon"}, true, "YYYY-MM-DD"},
		{"bad store URL", map[string]string{"CRM_STORE": "mysql://x"}, []string{"verify"}, false, `unknown scheme "mysql"`},
		{"store URL without scheme", map[string]string{"CRM_STORE": "crm.db"}, []string{"verify"}, false, "want sqlite://PATH"},
		{"bad tokens", map[string]string{"CRM_TOKENS": "web:app", "CRM_DATA_DIR": dir}, []string{"serve", "--addr", "127.0.0.1:0"}, false, "CRM_TOKENS"},
		{"bad log level", map[string]string{"CRM_LOG_LEVEL": "loud", "CRM_DATA_DIR": dir}, []string{"serve"}, false, "CRM_LOG_LEVEL"},
		{"bad answer cache", map[string]string{"CRM_ANSWER_CACHE": "lots", "CRM_DATA_DIR": dir}, []string{"serve", "--addr", "127.0.0.1:0"}, false, "CRM_ANSWER_CACHE"},
		{"bad answer max stale", map[string]string{"CRM_ANSWER_MAX_STALE": "a while", "CRM_DATA_DIR": dir}, []string{"serve", "--addr", "127.0.0.1:0"}, false, "CRM_ANSWER_MAX_STALE"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := crm(t, tc.env, tc.args...)
			if err == nil {
				t.Fatal("no error")
			}
			var ue usageError
			if errors.As(err, &ue) != tc.usage {
				t.Errorf("usage error = %v, want %v (%v)", !tc.usage, tc.usage, err)
			}
			if !strings.Contains(err.Error(), tc.message) {
				t.Errorf("error %q does not contain %q", err, tc.message)
			}
		})
	}
}

func TestServeCreatesAnAdminTokenAndServes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--addr", addr}, func(k string) string {
			return map[string]string{"CRM_DATA_DIR": dir, "CRM_LOG_LEVEL": "warn"}[k]
		}, &out, io.Discard)
	}()
	var resp *http.Response
	for i := 0; i < 100; i++ {
		if resp, err = http.Get("http://" + addr + "/healthz"); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("server did not come up: %v", err)
	}
	resp.Body.Close()
	token, err := os.ReadFile(filepath.Join(dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), strings.TrimSpace(string(token))) {
		t.Fatalf("serve did not print the admin token: %q", out.String())
	}
	req, _ := http.NewRequest("POST", "http://"+addr+"/v1/contacts", strings.NewReader(`{"name":"Aoi","channel":"web_form"}`))
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create with the printed token: %d", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve returned %v after shutdown", err)
	}
}

// syncBuffer is a bytes.Buffer safe for the server goroutine and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
