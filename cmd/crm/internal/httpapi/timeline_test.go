package httpapi_test

import (
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/eventcrm/crm/projections/tasks"
	"github.com/eventcrm/crm/projections/timeline"
)

// The timeline and the tasks are served like every read model: for the app role, with
// freshness and min_position, merges counted for the survivor, and bad parameters refused
// with a 400 naming them.
func TestTimelineAndTasksOverHTTP(t *testing.T) {
	t.Parallel()
	a := newReadAPI(t, 5*time.Second)
	var lastTask string
	post := func(path, body string) int64 {
		t.Helper()
		r := a.do("POST", path, appToken, body)
		if r.status/100 != 2 {
			t.Fatalf("POST %s: %d %s", path, r.status, r.body)
		}
		m := r.json(t)
		if id, ok := m["task_id"].(string); ok {
			lastTask = id
		}
		return int64(m["position"].(float64))
	}
	create := func(name string) string {
		t.Helper()
		r := a.do("POST", "/v1/contacts", appToken, `{"name":"`+name+`","channel":"seminar","occurred_at":"2024-01-05T09:00:00Z"}`)
		if r.status != http.StatusCreated {
			t.Fatalf("create contact: %d %s", r.status, r.body)
		}
		return r.json(t)["id"].(string)
	}
	survivor, duplicate := create("佐藤 花子"), create("サトウ ハナコ")
	post("/v1/contacts/"+survivor+"/notes", `{"text":"予算は来期","occurred_at":"2024-01-09T09:00:00Z"}`)
	post("/v1/contacts/"+survivor+"/tasks", `{"title":"見積書を送る","due":"2024-01-20","assignee":"rep-a","occurred_at":"2024-01-10T09:00:00Z"}`)
	t1 := lastTask
	post("/v1/contacts/"+survivor+"/tasks/"+t1+"/reschedule", `{"due":"2024-02-05","occurred_at":"2024-01-11T09:00:00Z"}`)
	post("/v1/contacts/"+duplicate+"/tasks", `{"title":"契約書の確認","due":"2024-01-25","assignee":"rep-b","occurred_at":"2024-01-19T09:00:00Z"}`)
	position := post("/v1/contacts/"+duplicate+"/merge", `{"into":"`+survivor+`","occurred_at":"2024-01-25T09:00:00Z"}`)
	min := "min_position=" + strconv.FormatInt(position, 10)

	var tl answer[timeline.Answer]
	if r := a.read("/v1/contacts/"+survivor+"/timeline?"+min, &tl); r.status != http.StatusOK || tl.Freshness.Stale ||
		tl.Freshness.Projection != timeline.Name {
		t.Fatalf("timeline: %d %s", r.status, r.body)
	}
	// created, note, task scheduled, rescheduled, absorbed; the duplicate's created, task, merged
	if got := len(tl.Data.Entries); got != 8 {
		t.Fatalf("timeline has %d entries, want 8: %+v", got, tl.Data.Entries)
	}
	if e := tl.Data.Entries[0]; e.Type != timeline.KindMerge || e.Actor != "web" {
		t.Errorf("newest entry %+v, want the merge by web", e)
	}
	first := readData[timeline.Answer](a, "/v1/contacts/"+survivor+"/timeline?types=task,note&limit=2&"+min)
	if len(first.Entries) != 2 || first.NextBefore == "" {
		t.Fatalf("first page %+v", first)
	}
	rest := readData[timeline.Answer](a, "/v1/contacts/"+survivor+"/timeline?types=task,note&limit=2&before="+url.QueryEscape(first.NextBefore)+"&"+min)
	if len(rest.Entries) != 2 || rest.NextBefore != "" || rest.Entries[1].Type != timeline.KindNote {
		t.Fatalf("second page %+v", rest)
	}

	ts := readData[tasks.Answer](a, "/v1/tasks?contact_id="+survivor+"&as_of=2024-02-10T00:00:00Z&"+min)
	if len(ts.Tasks) != 2 || ts.Tasks[0].ContactID != duplicate || !ts.Tasks[0].Overdue || !ts.Tasks[1].Overdue {
		t.Fatalf("tasks of the survivor %+v", ts.Tasks)
	}
	ts = readData[tasks.Answer](a, "/v1/tasks?assignee=rep-a&status=open&as_of=2024-02-01T00:00:00Z&"+min)
	want := []tasks.Count{{Assignee: "rep-a", Open: 1}}
	if len(ts.Tasks) != 1 || ts.Tasks[0].Overdue || len(ts.Counts) != 1 || ts.Counts[0] != want[0] {
		t.Fatalf("rep-a's open tasks on Feb 1: %+v, counts %+v", ts.Tasks, ts.Counts)
	}

	head := logLength(t, a.store)
	tests := []struct {
		name, path string
		status     int
		field      string
	}{
		{"timeline limit not a number", "/v1/contacts/" + survivor + "/timeline?limit=ten", 400, "limit"},
		{"timeline limit too large", "/v1/contacts/" + survivor + "/timeline?limit=1000", 400, "limit"},
		{"timeline unknown type", "/v1/contacts/" + survivor + "/timeline?types=task,usage", 400, "types"},
		{"timeline bad before", "/v1/contacts/" + survivor + "/timeline?before=yesterday", 400, "before"},
		{"timeline of nobody", "/v1/contacts/00000000-0000-4000-8000-000000000000/timeline", 404, ""},
		{"timeline of a non-UUID", "/v1/contacts/nobody/timeline", 404, ""},
		{"tasks unknown status", "/v1/tasks?status=late", 400, "status"},
		{"tasks bad due_from", "/v1/tasks?due_from=2024-02-30", 400, "due_from"},
		{"tasks due_to before due_from", "/v1/tasks?due_from=2024-02-02&due_to=2024-02-01", 400, "due_to"},
		{"tasks bad as_of", "/v1/tasks?as_of=today", 400, "as_of"},
		{"tasks bad cursor", "/v1/tasks?cursor=!!", 400, "cursor"},
		{"tasks limit zero or less", "/v1/tasks?limit=-1", 400, "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := a.read(tt.path, nil)
			if r.status != tt.status || r.header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("GET %s: %d %s %s", tt.path, r.status, r.header.Get("Content-Type"), r.body)
			}
			if got, _ := r.json(t)["field"].(string); got != tt.field {
				t.Errorf("problem field %q, want %q: %s", got, tt.field, r.body)
			}
		})
	}
	if n := logLength(t, a.store); n != head {
		t.Errorf("the refused reads changed the log: %d events, then %d", head, n)
	}
}
