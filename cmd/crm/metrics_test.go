package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape reads the metrics served on addr, as Prometheus would.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return families
}

// value is the value of the series of family name with exactly the labels given as name,
// value pairs (a counter, a gauge, or a histogram's count); ok is false when there is none.
func value(families map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := families[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		if !hasLabels(m, labels) {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func hasLabels(m *dto.Metric, labels []string) bool {
	if len(m.GetLabel()) != len(labels)/2 {
		return false
	}
	for i := 0; i+1 < len(labels); i += 2 {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// `crm serve` with CRM_METRICS_ADDR serves Prometheus metrics on that listener, without a
// token; after known commands, the counts read back are exact (hand count in the table).
func TestServeMetrics(t *testing.T) {
	t.Parallel()
	metricsAddr := freeAddr(t)
	s := serve(t, map[string]string{"CRM_DATA_DIR": t.TempDir(), "CRM_LOG_LEVEL": "warn", "CRM_METRICS_ADDR": metricsAddr})
	defer s.stop()

	// 3 contacts created (3 appends of 1 event: positions 1..3), one phase change (position 4),
	// one phase change refused by validation (no append), one refused by If-Match (no append).
	var ids []string
	for i := range 3 {
		ids = append(ids, s.call("POST", "/v1/contacts", fmt.Sprintf(`{"name":"Contact %d","channel":"web_form"}`, i))["id"].(string))
	}
	s.call("POST", "/v1/contacts/"+ids[0]+"/phase", `{"phase":"approach"}`)
	if st := s.status("POST", "/v1/contacts/"+ids[1]+"/phase", `{"phase":"nowhere"}`); st != http.StatusUnprocessableEntity {
		t.Fatalf("invalid phase: %d", st)
	}
	if st := s.status("POST", "/v1/contacts/"+ids[1]+"/phase", `{"phase":"approach"}`, "If-Match", `"7"`); st != http.StatusPreconditionFailed {
		t.Fatalf("stale If-Match: %d", st)
	}
	// A path no route has is counted under one series, not one per path.
	if st := s.status("GET", "/v1/nowhere", ""); st != http.StatusNotFound {
		t.Fatalf("unknown path: %d", st)
	}
	// One time-travel question of the board, once it has applied position 4.
	s.call("GET", "/v1/pipeline/board?min_position=4", "")
	s.call("GET", "/v1/pipeline/board?at_position=2", "")

	var m map[string]*dto.MetricFamily
	deadline := time.Now().Add(20 * time.Second)
	for {
		m = scrape(t, metricsAddr)
		if v, _ := value(m, "crm_projection_checkpoint", "projection", "journey"); v == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the journey read model did not reach position 4")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"crm_commands_total", []string{"command", "CreateContact", "outcome", "ok"}, 3},
		{"crm_commands_total", []string{"command", "ChangePhase", "outcome", "ok"}, 1},
		{"crm_commands_total", []string{"command", "ChangePhase", "outcome", "validation"}, 1},
		{"crm_commands_total", []string{"command", "ChangePhase", "outcome", "precondition-failed"}, 1},
		{"crm_command_duration_seconds", []string{"command", "CreateContact", "outcome", "ok"}, 3},
		{"crm_store_appends_total", []string{"outcome", "ok"}, 4},
		{"crm_store_append_duration_seconds", nil, 4},
		{"crm_store_append_events", nil, 4},
		{"crm_http_requests_total", []string{"method", "POST", "route", "/v1/contacts", "status", "201"}, 3},
		{"crm_http_requests_total", []string{"method", "POST", "route", "/v1/contacts/{id}/phase", "status", "200"}, 1},
		{"crm_http_requests_total", []string{"method", "POST", "route", "/v1/contacts/{id}/phase", "status", "422"}, 1},
		{"crm_http_requests_total", []string{"method", "POST", "route", "/v1/contacts/{id}/phase", "status", "412"}, 1},
		{"crm_http_requests_total", []string{"method", "GET", "route", "/v1/pipeline/board", "status", "200"}, 2},
		{"crm_http_requests_total", []string{"method", "GET", "route", "unmatched", "status", "404"}, 1},
		{"crm_time_travel_duration_seconds", []string{"projection", "pipeline_board"}, 1},
		{"crm_projection_checkpoint", []string{"projection", "journey"}, 4},
		{"crm_projection_head", []string{"projection", "journey"}, 4},
		{"crm_projection_lag_events", []string{"projection", "journey"}, 0},
		{"crm_projection_lag_seconds", []string{"projection", "journey"}, 0},
		{"crm_projection_parked_events", []string{"projection", "journey"}, 0},
		{"crm_projection_state", []string{"projection", "journey", "state", "running"}, 1},
		{"crm_projection_state", []string{"projection", "journey", "state", "failed"}, 0},
		{"crm_projection_status_up", nil, 1},
		{"crm_feed_store_head", nil, 4},
		{"crm_feed_reached", nil, 4},
		{"crm_feed_stalled", nil, 0},
	} {
		got, ok := value(m, tc.name, tc.labels...)
		if !ok || got != tc.want {
			t.Errorf("%s%v = %v (found %v), want %v", tc.name, tc.labels, got, ok, tc.want)
		}
	}
	if sum := m["crm_store_append_events"].GetMetric()[0].GetHistogram().GetSampleSum(); sum != 4 {
		t.Errorf("events appended = %v, want 4", sum)
	}
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_resident_memory_bytes"} {
		if m[name] == nil {
			t.Errorf("no %s: the Go runtime is not reported", name)
		}
	}

	// A rebuild of the board reports its progress.
	s.call("POST", "/v1/projections/pipeline_board/rebuild", "")
	deadline = time.Now().Add(20 * time.Second)
	for {
		m = scrape(t, metricsAddr)
		running, found := value(m, "crm_rebuild_running", "projection", "pipeline_board")
		if found && running == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the rebuild of board did not finish")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got, _ := value(m, "crm_rebuild_position", "projection", "pipeline_board"); got != 4 {
		t.Errorf("crm_rebuild_position = %v, want 4", got)
	}
	if _, found := value(m, "crm_rebuild_running", "projection", "journey"); found {
		t.Error("a projection never rebuilt reports rebuild progress")
	}

	// Every metric the Grafana dashboard asks for is served (all are, once a rebuild ran).
	dashboard, err := os.ReadFile("../../docs/grafana/crm.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct{ Targets []struct{ Expr string } }
	}
	if err := json.Unmarshal(dashboard, &d); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	for _, p := range d.Panels {
		for _, target := range p.Targets {
			for _, name := range regexp.MustCompile(`\b(crm|go|process)_[a-z_]+`).FindAllString(target.Expr, -1) {
				family := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_count"), "_sum")
				if m[family] == nil && m[name] == nil {
					t.Errorf("the dashboard asks for %s, which is not served", name)
				}
			}
		}
	}
}

// Without CRM_METRICS_ADDR nothing is served besides the API, and the API has no /metrics.
func TestMetricsOffByDefault(t *testing.T) {
	t.Parallel()
	s := serve(t, map[string]string{"CRM_DATA_DIR": t.TempDir(), "CRM_LOG_LEVEL": "warn"})
	defer s.stop()
	if st := s.status("GET", "/metrics", ""); st != http.StatusNotFound {
		t.Fatalf("GET /metrics on the API: %d, want 404", st)
	}
	if strings.Contains(s.logs.String(), "serving metrics") {
		t.Fatal("metrics served without CRM_METRICS_ADDR")
	}
}

// status sends a request with the admin token and headers (name, value pairs) and returns the
// answer's status.
func (s *server) status(method, path, body string, headers ...string) int {
	s.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, "http://"+s.addr+path, rd)
	req.Header.Set("Authorization", "Bearer "+s.token)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}
