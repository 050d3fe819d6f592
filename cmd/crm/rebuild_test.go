package main

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/board"
	"github.com/eventcrm/crm/projections/churn"
	"github.com/eventcrm/crm/projections/diff"
	"github.com/eventcrm/crm/projections/journey"
	"github.com/eventcrm/crm/projections/rebuild"
)

const (
	testAdminToken   = "admin-token-0123456789"
	testAnalystToken = "analyst-token-0123456789"
	testAppToken     = "app-token-0123456789"
)

// request sends an authenticated request to a running `crm serve` and returns the status and
// the decoded JSON body.
func (s *server) request(method, path, token string) (int, map[string]any) {
	s.t.Helper()
	req, _ := http.NewRequest(method, "http://"+s.addr+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

// tableSets maps each projection to the table set `crm serve` serves.
func (s *server) tableSets() map[string]string {
	s.t.Helper()
	sets := map[string]string{}
	for _, p := range s.call("GET", "/v1/projections", "")["projections"].([]any) {
		m := p.(map[string]any)
		sets[m["name"].(string)] = m["table_set"].(string)
	}
	return sets
}

func (s *server) waitCaughtUp() {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		caughtUp := true
		for _, p := range s.call("GET", "/v1/projections", "")["projections"].([]any) {
			m := p.(map[string]any)
			if m["state"] != "running" || m["lag"].(map[string]any)["events"].(float64) != 0 {
				caughtUp = false
			}
		}
		if caughtUp {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("projections not caught up: %v", s.call("GET", "/v1/projections", ""))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const boardAsOf = "/v1/pipeline/board?as_of=2026-01-01T00:00:00Z&limit=500"

// A rebuild over HTTP: analysts and admins start it, others may not; a rebuild held by
// another process is a conflict; progress is followed until the switch; the board answers
// the same from the new tables.
// boardSets names the board's default table set and its first rebuilt one.
func boardSets() (def, g1 string) {
	return setName(board.Projection(), ""), setName(board.Projection(), "g1")
}

// setName is the prefix of a table set of p, of its version in this binary.
func setName(p projections.Projection, generation string) string {
	return projections.TablesFor(p, generation).Prefix()
}

func TestRebuildOverHTTP(t *testing.T) {
	boardDefault, boardG1 := boardSets()
	t.Parallel()
	env, _ := seeded(t, "150")
	env["CRM_TOKENS"] = "adm:admin:" + testAdminToken + ",ana:analyst:" + testAnalystToken + ",web:app:" + testAppToken
	env["CRM_LOG_LEVEL"] = "warn"
	// serve reads the admin token from the data directory.
	if err := os.WriteFile(filepath.Join(env["CRM_DATA_DIR"], "admin.token"), []byte(testAdminToken), 0o600); err != nil {
		t.Fatal(err)
	}
	s := serve(t, env)
	defer s.stop()
	s.waitCaughtUp()
	before := s.call("GET", boardAsOf, "")["data"]

	const path = "/v1/projections/pipeline_board/rebuild"
	if status, body := s.request("GET", path, testAppToken); status != http.StatusNotFound {
		t.Fatalf("progress before any rebuild: %d %v", status, body)
	}
	if status, _ := s.request("POST", path, testAppToken); status != http.StatusForbidden {
		t.Fatalf("rebuild by an app: %d, want 403", status)
	}
	if status, _ := s.request("POST", "/v1/projections/nope/rebuild", testAnalystToken); status != http.StatusNotFound {
		t.Fatalf("rebuild of an unknown projection: %d, want 404", status)
	}
	// Another process holds the rebuild lock of the board.
	rm := openDB(t, filepath.Join(env["CRM_DATA_DIR"], "readmodels.db"))
	if _, err := rm.Exec(`INSERT INTO projection_rebuilds (projection, version, generation, table_set, phase, old_set, owner,
		lease_until, started_at, updated_at, position, head, events, resumed_from, server_start)
		VALUES ('pipeline_board', ?, 'g1', ?, 'building', '', 'another-process', ?, 0, 0, 0, 0, 0, 0, '')`,
		board.Projection().Version(), boardG1, time.Now().Add(time.Hour).UnixMilli()); err != nil {
		t.Fatal(err)
	}
	if status, body := s.request("POST", path, testAnalystToken); status != http.StatusConflict || !strings.Contains(body["detail"].(string), "another-process") {
		t.Fatalf("rebuild while another process holds it: %d %v", status, body)
	}
	if _, err := rm.Exec(`UPDATE projection_rebuilds SET owner = '', lease_until = 0`); err != nil {
		t.Fatal(err)
	}

	status, body := s.request("POST", path, testAnalystToken)
	if status != http.StatusAccepted || body["projection"] != "pipeline_board" {
		t.Fatalf("rebuild by an analyst: %d %v", status, body)
	}
	deadline := time.Now().Add(60 * time.Second)
	for body["state"] != string(rebuild.RebuildDone) {
		if body["state"] == string(rebuild.RebuildFailed) || time.Now().After(deadline) {
			t.Fatalf("rebuild: %v", body)
		}
		time.Sleep(50 * time.Millisecond)
		if status, body = s.request("GET", path, testAppToken); status != http.StatusOK {
			t.Fatalf("progress: %d %v", status, body)
		}
	}
	if body["table_set"] != boardG1 || body["replaces"] != boardDefault || body["position"] != body["total"] ||
		body["events"].(float64) == 0 || body["rate"].(float64) <= 0 {
		t.Fatalf("finished rebuild: %v", body)
	}
	if got := s.tableSets()["pipeline_board"]; got != boardG1 {
		t.Fatalf("the board is served from %s", got)
	}
	after := s.call("GET", boardAsOf, "")["data"]
	if !jsonEqual(t, before, after) {
		t.Fatalf("the board changed with the rebuild:\nbefore %v\nafter  %v", before, after)
	}
}

func jsonEqual(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(ja) == string(jb)
}

// crm rebuild and crm projections diff, alone and beside a running server, which follows
// the switch made by the other process.
func TestRebuildCommandLine(t *testing.T) {
	boardDefault, boardG1 := boardSets()
	t.Parallel()
	env, _ := seeded(t, "150")
	for _, args := range [][]string{{"rebuild"}, {"rebuild", "--all", "--projection", "journey"}, {"rebuild", "--projection", "nope"},
		{"projections"}, {"projections", "diff"}, {"projections", "diff", "nope"}, {"projections", "undo"}} {
		var ue usageError
		if _, _, err := crm(t, env, args...); !errors.As(err, &ue) {
			t.Errorf("crm %v: %v, want a usage error", args, err)
		}
	}
	out, _, err := crm(t, env, "rebuild", "--all", "--quiet", "--drop-delay", "0s")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"pipeline_board: " + boardG1 + " now serves (replaces " + boardDefault + ")",
		"journey: " + setName(journey.Projection(), "g1") + " now serves", "churn_points: " + setName(churn.Projection(), "g1") + " now serves", "events/s; peak memory"} {
		if !strings.Contains(out, want) {
			t.Fatalf("rebuild output lacks %q:\n%s", want, out)
		}
	}
	out, _, err = crm(t, env, "projections", "diff", "pipeline_board", "--quiet")
	if err != nil || !strings.Contains(out, "identical: a rebuild with this code changes nothing") ||
		!strings.Contains(out, "against "+boardG1+" (in service)") {
		t.Fatalf("diff: %v\n%s", err, out)
	}

	env["CRM_LOG_LEVEL"] = "warn"
	s := serve(t, env)
	defer s.stop()
	s.waitCaughtUp()
	if got := s.tableSets()["journey"]; got != setName(journey.Projection(), "g1") {
		t.Fatalf("the server serves the journey from %s", got)
	}
	var stderr string
	out, stderr, err = crm(t, env, "rebuild", "--projection", "journey", "--drop-delay", "3s")
	if err != nil || !strings.Contains(out, "journey: "+setName(journey.Projection(), "g2")+" now serves (replaces "+setName(journey.Projection(), "g1")+")") || !strings.Contains(stderr, "events/s") {
		t.Fatalf("rebuild beside the server: %v\n%s\n%s", err, out, stderr)
	}
	if got := s.tableSets()["journey"]; got != setName(journey.Projection(), "g2") {
		t.Fatalf("the server still serves the journey from %s", got)
	}
	progress := s.call("GET", "/v1/projections/journey/rebuild", "")
	if progress["state"] != "done" || progress["table_set"] != setName(journey.Projection(), "g2") {
		t.Fatalf("progress of the other process's rebuild: %v", progress)
	}
	s.call("GET", "/v1/analytics/journey-map", "")

	out, _, err = crm(t, env, "projections", "diff", "journey", "--json", "--quiet")
	if err != nil {
		t.Fatal(err)
	}
	var d diff.SetDiff
	if err := json.Unmarshal([]byte(out), &d); err != nil || !d.Identical() || d.Served != setName(journey.Projection(), "g2") || len(d.Tables) != tableCount(journey.Projection()) {
		t.Fatalf("diff --json: %v\n%s", err, out)
	}
}

// The same on PostgreSQL: the read models in the store's database.
func TestRebuildCommandLineOnPostgres(t *testing.T) {
	t.Parallel()
	env := map[string]string{"CRM_STORE": boundedSchema(t), "CRM_DATA_DIR": t.TempDir()}
	if _, _, err := crm(t, env, "seed", "--contacts", "40", "--quiet"); err != nil {
		t.Fatal(err)
	}
	out, _, err := crm(t, env, "rebuild", "--all", "--quiet", "--drop-delay", "0s", "--batch", "100")
	if err != nil || !strings.Contains(out, "churn_points: "+setName(churn.Projection(), "g1")+" now serves") {
		t.Fatalf("rebuild on PostgreSQL: %v\n%s", err, out)
	}
	out, _, err = crm(t, env, "projections", "diff", "churn_points", "--quiet")
	if err != nil || !strings.Contains(out, "identical") {
		t.Fatalf("diff on PostgreSQL: %v\n%s", err, out)
	}
}

// tableCount is the number of tables of a read model: those its schema creates.
func tableCount(p projections.Projection) int {
	n := 0
	for _, stmt := range p.Schema(projections.SQLite, projections.TablesFor(p, "")) {
		if strings.HasPrefix(stmt, "CREATE TABLE") {
			n++
		}
	}
	return n
}
