package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/eventcrm/crm/cmd/crm/internal/httpapi"
)

// The commands an app uses every day beyond the first ones (accounts, notes, task changes,
// deal edits, merges, consent), over a real listener on both backends: each answers as
// documented, a stale If-Match is 412, bad input is refused and appends nothing, a merged
// contact points to where it went.
func TestEverydayCommands(t *testing.T) {
	t.Parallel()
	for _, b := range storeBackends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			e := newEdge(t, b.open(t), 0)
			// refused sends a request that must be refused with status and problem type, and
			// appends nothing.
			refused := func(method, path, body string, status int, problem string, headers ...string) response {
				t.Helper()
				before := e.events()
				r := e.do(method, path, appToken, body, headers...)
				if r.status != status || r.json(t)["type"] != httpapi.ProblemBase+problem {
					t.Fatalf("%s %s %s: %d %s, want %d %s", method, path, body, r.status, r.body, status, problem)
				}
				if after := e.events(); after != before {
					t.Fatalf("%s %s: %d events appended by a refused command", method, path, after-before)
				}
				return r
			}
			ok := func(method, path, body string, status int, headers ...string) map[string]any {
				t.Helper()
				r := e.do(method, path, appToken, body, headers...)
				if r.status != status {
					t.Fatalf("%s %s %s: %d %s, want %d", method, path, body, r.status, r.body, status)
				}
				return r.json(t)
			}

			// Accounts.
			acc := ok("POST", "/v1/accounts", `{"name":"田中商事","size":"10-49","domain":"tanaka.example"}`, http.StatusCreated)["id"].(string)
			if got := ok("GET", "/v1/accounts/"+acc, "", http.StatusOK); got["name"] != "田中商事" || got["version"] != 1.0 {
				t.Fatalf("account: %v", got)
			}
			ok("PATCH", "/v1/accounts/"+acc, `{"industry":"wholesale"}`, http.StatusOK, "If-Match", `"1"`)
			refused("PATCH", "/v1/accounts/"+acc, `{"industry":"retail"}`, http.StatusPreconditionFailed, "precondition-failed", "If-Match", `"1"`)
			refused("PATCH", "/v1/accounts/"+acc, `{"size":"huge"}`, http.StatusUnprocessableEntity, "validation")
			refused("POST", "/v1/accounts", `{"name":""}`, http.StatusUnprocessableEntity, "validation")
			refused("GET", "/v1/accounts/not-a-uuid", "", http.StatusNotFound, "not-found")

			// A contact joins the account and leaves it.
			id := e.createContact()
			ok("PUT", "/v1/contacts/"+id+"/account", `{"account_id":"`+acc+`"}`, http.StatusOK)
			if got := ok("GET", "/v1/contacts/"+id, "", http.StatusOK); got["account_id"] != acc {
				t.Fatalf("linked contact: %v", got["account_id"])
			}
			refused("PUT", "/v1/contacts/"+id+"/account", `{"account_id":"00000000-0000-4000-8000-000000000000"}`, http.StatusUnprocessableEntity, "validation")
			refused("DELETE", "/v1/contacts/"+id+"/account/not-a-uuid", "", http.StatusNotFound, "not-found")
			ok("DELETE", "/v1/contacts/"+id+"/account/"+acc, "", http.StatusOK)
			if got := ok("GET", "/v1/contacts/"+id, "", http.StatusOK); got["account_id"] != nil {
				t.Fatalf("unlinked contact: %v", got["account_id"])
			}

			// Notes and the life of a task.
			if note := ok("POST", "/v1/contacts/"+id+"/notes", `{"text":"予算は来期に確定"}`, http.StatusOK); note["note_id"] == "" {
				t.Fatalf("note: %v", note)
			}
			refused("POST", "/v1/contacts/"+id+"/notes", `{"text":""}`, http.StatusUnprocessableEntity, "validation")
			task := ok("POST", "/v1/contacts/"+id+"/tasks", `{"title":"Call back","due":"2026-12-10"}`, http.StatusOK)["task_id"].(string)
			tasks := "/v1/contacts/" + id + "/tasks/" + task
			ok("POST", tasks+"/reschedule", `{"due":"2026-12-20"}`, http.StatusOK)
			refused("POST", tasks+"/reschedule", `{"due":"2026-12-20"}`, http.StatusUnprocessableEntity, "refused")
			refused("POST", tasks+"/reschedule", `{"due":"next week"}`, http.StatusUnprocessableEntity, "validation")
			ok("POST", tasks+"/reassign", `{"assignee":"rep-kato"}`, http.StatusOK)
			ok("POST", tasks+"/cancel", `{"reason":"duplicate task"}`, http.StatusOK)
			refused("POST", tasks+"/complete", "", http.StatusUnprocessableEntity, "refused")
			refused("POST", tasks+"/reassign", `{"assignee":"rep-mori"}`, http.StatusUnprocessableEntity, "refused")
			got := ok("GET", "/v1/contacts/"+id, "", http.StatusOK)["tasks"].([]any)[0].(map[string]any)
			if got["due"] != "2026-12-20" || got["assignee"] != "rep-kato" || got["cancelled"] != true || got["cancel_reason"] != "duplicate task" {
				t.Fatalf("task: %v", got)
			}

			// Deal edits: only real changes, If-Match honoured.
			deal := ok("POST", "/v1/deals", `{"contact_id":"`+id+`","title":"Renewal","amount":300000,"currency":"JPY"}`, http.StatusCreated)["id"].(string)
			ok("PATCH", "/v1/deals/"+deal, `{"amount":500000,"owner":"rep-kato"}`, http.StatusOK, "If-Match", `"1"`)
			refused("PATCH", "/v1/deals/"+deal, `{"title":"Bigger renewal"}`, http.StatusPreconditionFailed, "precondition-failed", "If-Match", `"1"`)
			refused("PATCH", "/v1/deals/"+deal, `{"amount":500000}`, http.StatusUnprocessableEntity, "refused")
			if d := ok("GET", "/v1/deals/"+deal, "", http.StatusOK); d["amount"].(map[string]any)["amount"] != 500000.0 || d["owner"] != "rep-kato" || d["version"] != 3.0 {
				t.Fatalf("edited deal: %v", d)
			}

			// Consent: an email touchpoint after an email opt-out is refused, naming it.
			ok("POST", "/v1/contacts/"+id+"/opt-out", `{"channel":"email"}`, http.StatusOK)
			r := refused("POST", "/v1/contacts/"+id+"/touchpoints", `{"kind":"email"}`, http.StatusUnprocessableEntity, "refused")
			if !strings.Contains(r.json(t)["detail"].(string), "opt") {
				t.Fatalf("the refusal does not name the opt-out: %s", r.body)
			}
			ok("POST", "/v1/contacts/"+id+"/touchpoints", `{"kind":"meeting"}`, http.StatusOK)

			// Merge: the duplicate points to the survivor, and takes no more commands.
			dup := e.createContact()
			refused("POST", "/v1/contacts/"+dup+"/merge", `{"into":"`+dup+`"}`, http.StatusUnprocessableEntity, "refused")
			ok("POST", "/v1/contacts/"+dup+"/merge", `{"into":"`+id+`"}`, http.StatusOK)
			r = refused("POST", "/v1/contacts/"+dup+"/touchpoints", `{"kind":"call"}`, http.StatusConflict, "merged")
			if r.json(t)["merged_into"] != id {
				t.Fatalf("merged problem: %s", r.body)
			}
			if got := ok("GET", "/v1/contacts/"+dup, "", http.StatusOK); got["merged_into"] != id {
				t.Fatalf("merged contact: %v", got)
			}
		})
	}
}
