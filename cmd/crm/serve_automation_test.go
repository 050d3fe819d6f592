package main

import (
	"strings"
	"testing"
	"time"
)

// `crm serve` runs the follow-up processes and the lead score: three touchpoints make a lead
// hot, the hot list shows it, and its hand-off task, due today, is in the task list, once,
// also after a restart.
func TestServeRunsTheFollowUps(t *testing.T) {
	t.Parallel()
	env := map[string]string{"CRM_DATA_DIR": t.TempDir(), "CRM_LOG_LEVEL": "warn", "CRM_BUSINESS_TZ": "Asia/Tokyo"}
	s := serve(t, env)
	id := s.call("POST", "/v1/contacts", `{"name":"Aoi","channel":"web_form","owner":"rep-mori"}`)["id"].(string)
	for _, kind := range []string{"meeting", "inquiry", "meeting"} {
		s.call("POST", "/v1/contacts/"+id+"/touchpoints", `{"kind":"`+kind+`"}`)
	}
	handoffs := func() []any {
		var found []any
		for _, task := range s.call("GET", "/v1/tasks?contact_id="+id, "")["data"].(map[string]any)["tasks"].([]any) {
			if strings.HasPrefix(task.(map[string]any)["title"].(string), "Hot lead") {
				found = append(found, task)
			}
		}
		return found
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(handoffs()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no hand-off task")
		}
		time.Sleep(20 * time.Millisecond)
	}
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	task := handoffs()[0].(map[string]any)
	if task["due"] != time.Now().In(tokyo).Format(time.DateOnly) || task["assignee"] != "rep-mori" {
		t.Fatalf("hand-off task %v", task)
	}
	// The hand-off comes from a process manager: the lead score's read model may not have
	// applied the last touchpoint yet when the task is there.
	var leads []any
	for {
		leads = s.call("GET", "/v1/leads?min_position=0", "")["data"].(map[string]any)["leads"].([]any)
		if len(leads) != 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(leads) != 1 || leads[0].(map[string]any)["contact_id"] != id {
		t.Fatalf("hot list %v", leads)
	}
	score := s.call("GET", "/v1/contacts/"+id+"/score", "")["data"].(map[string]any)
	if score["hot"] != true || len(score["touchpoints"].([]any)) != 3 {
		t.Fatalf("score %v", score)
	}
	s.stop()
	s = serve(t, env)
	defer s.stop()
	time.Sleep(300 * time.Millisecond) // time for a wrong second task to appear
	if n := len(handoffs()); n != 1 {
		t.Fatalf("%d hand-off tasks after a restart", n)
	}
}
