package console_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore/postgres/postgrestest"
	"github.com/jackc/pgx/v5"
)

// Tokens of the seeded servers, one per role.
const (
	adminToken   = "console-admin-token-0001"
	appToken     = "console-app-token-000001"
	analystToken = "console-analyst-token-01"
	auditorToken = "console-auditor-token-01"
)

// crmBinary builds crm once per test binary: the browser tests run the real `crm serve`.
var crmBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "crm-console-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "crm")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/eventcrm/crm/cmd/crm").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build crm: %v\n%s", err, out)
	}
	return bin, nil
})

// server is a `crm serve` child process on a loopback port over a seeded store.
type server struct {
	url string
	// env is the environment of the process: its store, data directory and zone.
	env []string
}

// startServer seeds a store with contacts and serves it; store is "" for SQLite in the data
// directory, or a CRM_STORE value. The process is stopped when the test ends.
func startServer(t testing.TB, store string, contacts int) *server {
	t.Helper()
	bin, err := crmBinary()
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "CRM_DATA_DIR="+t.TempDir(), "CRM_BUSINESS_TZ=Asia/Tokyo", "CRM_LOG_LEVEL=warn",
		"CRM_TOKENS=admin:admin:"+adminToken+",rep-console:app:"+appToken+",ana:analyst:"+analystToken+",aud:auditor:"+auditorToken)
	if store != "" {
		env = append(env, "CRM_STORE="+store)
	}
	seed := exec.Command(bin, "seed", "--contacts", fmt.Sprint(contacts), "--quiet")
	seed.Env = env
	if out, err := seed.CombinedOutput(); err != nil {
		t.Fatalf("crm seed: %v\n%s", err, out)
	}
	addr := freeAddr(t)
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(env, "CRM_ADDR="+addr)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("crm serve output:\n%s", logs.String())
		}
	})
	s := &server{url: "http://" + addr, env: env}
	s.waitReady(t, done)
	return s
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// waitReady waits for /readyz: every read model has caught up with the seeded log.
func (s *server) waitReady(t testing.TB, exited <-chan struct{}) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			t.Fatal("crm serve exited before it was ready")
		default:
		}
		resp, err := http.Get(s.url + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond) // polling a child process: no event to wait on
	}
	t.Fatal("crm serve was not ready within 3 minutes")
}

// call sends a request with the admin token and decodes the JSON answer into out (when not nil).
func (s *server) call(t testing.TB, method, path, body string, out any, headers ...string) http.Header {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
	return resp.Header
}

// postgresStore returns a CRM_STORE value with a new schema, dropped with its read models when
// the test ends. PostgreSQL must answer: the test fails, never skips, without it.
func postgresStore(t testing.TB) string {
	t.Helper()
	url := os.Getenv("CRM_TEST_POSTGRES_URL")
	if url == "" {
		url = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "crm_console_" + hex.EncodeToString(b)
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatalf("PostgreSQL at %s: %v", url, err)
	}
	_ = conn.Close(context.Background())
	postgrestest.DropWhenDone(t, url, schema, schema+"_readmodels", schema+"_keys")
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	return url + sep + "schema=" + schema
}

// fresh reads a read model's answer once it has read the whole log as it is now: the answer's
// freshness names the head, asked again with min_position at it (the browser's commands are
// in the log before the test reads, but not always in every read model).
func (s *server) fresh(t testing.TB, path string, out any) {
	t.Helper()
	var first struct {
		Freshness struct {
			Head int64 `json:"head"`
		} `json:"freshness"`
	}
	s.call(t, "GET", path, "", &first)
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	s.call(t, "GET", fmt.Sprintf("%s%smin_position=%d", path, sep, first.Freshness.Head), "", out)
}
