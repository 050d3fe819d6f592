package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eventcrm/crm/cmd/crm/internal/openapitest"
	"github.com/eventcrm/crm/cmd/crm/internal/readmodels"
	"github.com/eventcrm/crm/commands/processes"
)

// server is `crm serve` running in-process on a free port.
type server struct {
	t     testing.TB
	addr  string
	token string
	out   *syncBuffer // what serve printed on stdout
	logs  *syncBuffer // and logged on stderr
	stop  func()
	// client checks every request and answer against the server's OpenAPI description.
	client *http.Client
}

func serve(t testing.TB, env map[string]string) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	out, logs := &syncBuffer{}, &syncBuffer{}
	go func() {
		done <- run(ctx, []string{"serve", "--addr", addr}, func(k string) string { return env[k] }, out, logs)
	}()
	for i := 0; ; i++ {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if i == 200 {
			t.Fatalf("server did not come up: %v", err)
		}
		time.Sleep(25 * time.Millisecond)
	}
	token, err := os.ReadFile(filepath.Join(env["CRM_DATA_DIR"], "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, addr: addr, token: strings.TrimSpace(string(token)), out: out, logs: logs,
		client: &http.Client{Transport: openapitest.Transport(t, nil, "http://"+addr+"/openapi.json")}}
	s.stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve returned %v after shutdown", err)
		}
	}
	return s
}

func (s *server) call(method, path, body string) map[string]any {
	s.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, "http://"+s.addr+path, rd)
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		s.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		s.t.Fatalf("%s %s: %v in %s", method, path, err, b)
	}
	return m
}

// `crm serve` runs the read models and the deal-won process: winning a deal moves its contact
// to won, once, and the journey read model shows it; a restart changes nothing.
func TestServeRunsTheReadModelsAndTheDealWonProcess(t *testing.T) {
	t.Parallel()
	env := map[string]string{"CRM_DATA_DIR": t.TempDir(), "CRM_LOG_LEVEL": "warn"}
	s := serve(t, env)
	contactID := s.call("POST", "/v1/contacts", `{"name":"Aoi","channel":"web_form"}`)["id"].(string)
	s.call("POST", "/v1/contacts/"+contactID+"/phase", `{"phase":"approach"}`)
	dealID := s.call("POST", "/v1/deals", `{"contact_id":"`+contactID+`","title":"Plan","amount":5000,"currency":"JPY"}`)["id"].(string)
	s.call("POST", "/v1/deals/"+dealID+"/win", `{}`)

	var visits []any
	deadline := time.Now().Add(20 * time.Second)
	for {
		contact := s.call("GET", "/v1/contacts/"+contactID, "")
		if contact["phase"] == "won" {
			// The phase change is in the log: the journey answers once it has applied it (the
			// last phase change; the onboarding task may come before or after it).
			var pos string
			for _, e := range s.call("GET", "/v1/contacts/"+contactID+"/history", "")["events"].([]any) {
				if e.(map[string]any)["type"] == "contact.phase_changed.v1" {
					pos = strconv.Itoa(int(e.(map[string]any)["position"].(float64)))
				}
			}
			j := s.call("GET", "/v1/journeys/"+contactID+"?min_position="+pos, "")
			if j["freshness"].(map[string]any)["stale"] != false {
				t.Fatalf("journey stale: %v", j["freshness"])
			}
			visits = j["data"].(map[string]any)["visits"].([]any)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the contact is still in %v", contact["phase"])
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(visits) != 3 || visits[2].(map[string]any)["phase"] != "won" || visits[1].(map[string]any)["rule"] != "skip_forward" {
		t.Fatalf("journey visits %v", visits)
	}
	list := s.call("GET", "/v1/projections", "")["projections"].([]any)
	if len(list) != len(readmodels.All(readmodels.Options{})) {
		t.Fatalf("projections %v", list)
	}
	for _, p := range s.call("GET", "/v1/analytics/churn-points", "")["data"].(map[string]any)["phases"].([]any) {
		if p.(map[string]any)["phase"] == nil {
			t.Fatalf("churn points %v", p)
		}
	}
	s.stop()
	if _, err := os.Stat(filepath.Join(env["CRM_DATA_DIR"], "readmodels.db")); err != nil {
		t.Fatalf("read models not in the data directory: %v", err)
	}

	s = serve(t, env)
	defer s.stop()
	time.Sleep(300 * time.Millisecond) // time for a wrong second phase change to appear
	var events []any
	for _, e := range s.call("GET", "/v1/contacts/"+contactID+"/history", "")["events"].([]any) {
		// The win also schedules an onboarding task, once (TestServeRunsTheFollowUps).
		if e.(map[string]any)["actor"] != processes.OnboardingActor {
			events = append(events, e)
		}
	}
	if len(events) != 3 {
		t.Fatalf("after a restart the contact has %d events besides the onboarding task, want 3", len(events))
	}
	if got := events[2].(map[string]any)["actor"]; got != "process:deal_won" {
		t.Fatalf("phase change by %v", got)
	}
}
