package httpapi_test

import (
	"net/http"
	"testing"
)

// A command whose path names everything it acts on takes no body field but occurred_at: a
// field the path sets (a task id) is refused, not quietly replaced by the path's, and the
// refused request appends nothing.
func TestPathOnlyCommandsRefuseBodyFields(t *testing.T) {
	t.Parallel()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			a := newWholeAPI(t, b)
			ids := a.setUp(t)
			for _, tc := range []struct {
				name, path, body, field string
			}{
				{"complete task with a task id", "/v1/contacts/{contact}/tasks/{task}/complete", `{"task_id":"{task}"}`, "task_id"},
				{"complete task with a contact id", "/v1/contacts/{contact}/tasks/{task}/complete", `{"contact_id":"{contact}"}`, "contact_id"},
				{"reopen with a deal id", "/v1/deals/{deal}/reopen", `{"deal_id":"{deal}"}`, "deal_id"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					head := a.head(t)
					r := a.send(t, http.MethodPost, ids.fill(tc.path), appToken, ids.fill(tc.body))
					checkProblem(t, a, r, head, http.StatusBadRequest, "bad-request", tc.field)
				})
			}
			t.Run("occurred_at alone is taken", func(t *testing.T) {
				r := a.send(t, http.MethodPost, ids.fill("/v1/contacts/{contact}/tasks/{task}/complete"), appToken,
					`{"occurred_at":"2026-02-01T09:00:00Z"}`)
				if r.status != http.StatusOK {
					t.Fatalf("complete task: %d %s", r.status, r.body)
				}
			})
		})
	}
}
