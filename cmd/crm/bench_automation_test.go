package main

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// BenchmarkHotLeadToTask runs `crm serve` (SQLite, or the store CRM_STORE of the environment
// names, with its read models beside it) and measures, per hot lead,
// the time from the answer to the touchpoint that makes the contact hot to its hand-off task
// being in GET /v1/tasks (the touchpoint, the lead-score process, contact.became_hot, the
// hand-off process, the task, the tasks read model). The baseline of the same run is a task
// scheduled over HTTP, from the answer to the same list showing it. It reports p50 and p99.
func BenchmarkHotLeadToTask(b *testing.B) {
	env := map[string]string{"CRM_DATA_DIR": b.TempDir(), "CRM_LOG_LEVEL": "warn"}
	if store := os.Getenv("CRM_STORE"); store != "" {
		env["CRM_STORE"] = store
	}
	s := serve(b, env)
	defer s.stop()
	const leads = 100
	visible := func(contactID, prefix string) func() bool {
		return func() bool {
			for _, task := range s.call("GET", "/v1/tasks?contact_id="+contactID, "")["data"].(map[string]any)["tasks"].([]any) {
				if strings.HasPrefix(task.(map[string]any)["title"].(string), prefix) {
					return true
				}
			}
			return false
		}
	}
	wait := func(cond func() bool) time.Duration {
		start := time.Now()
		for !cond() {
			if time.Since(start) > time.Minute {
				b.Fatal("the task never showed")
			}
			time.Sleep(2 * time.Millisecond)
		}
		return time.Since(start)
	}
	for range b.N {
		var hot, base []time.Duration
		for i := range leads {
			id := s.call("POST", "/v1/contacts", fmt.Sprintf(`{"name":"Lead %d","channel":"web_form"}`, i))["id"].(string)
			s.call("POST", "/v1/contacts/"+id+"/touchpoints", `{"kind":"meeting"}`)
			s.call("POST", "/v1/contacts/"+id+"/touchpoints", `{"kind":"inquiry"}`)
			s.call("POST", "/v1/contacts/"+id+"/touchpoints", `{"kind":"meeting"}`) // 65: hot
			hot = append(hot, wait(visible(id, "Hot lead")))
			s.call("POST", "/v1/contacts/"+id+"/tasks", `{"title":"Baseline","due":"2030-01-01"}`)
			base = append(base, wait(visible(id, "Baseline")))
		}
		slices.Sort(hot)
		slices.Sort(base)
		b.ReportMetric(float64(hot[len(hot)/2].Microseconds())/1000, "hot-p50-ms")
		b.ReportMetric(float64(hot[len(hot)*99/100].Microseconds())/1000, "hot-p99-ms")
		b.ReportMetric(float64(base[len(base)/2].Microseconds())/1000, "baseline-p50-ms")
		b.ReportMetric(float64(base[len(base)*99/100].Microseconds())/1000, "baseline-p99-ms")
	}
}
