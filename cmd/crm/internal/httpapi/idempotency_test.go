package httpapi_test

import (
	"strings"
	"testing"

	"github.com/eventcrm/crm/cmd/crm/internal/httpapi"
)

// A retry with the same Idempotency-Key is replayed only when it asks for what the first
// request recorded: a different business time, reason, correlation or causation id is a
// 409 problem and appends nothing.
func TestIdempotencyKeyCoversRecordedInputsOverHTTP(t *testing.T) {
	t.Parallel()
	const body = `{"kind":"call","note":"intro","occurred_at":"2025-11-05T14:30:00Z"}`
	headers := []string{"X-Reason", "met at the fair", "X-Correlation-ID", "corr-1", "X-Causation-ID", "cause-1"}
	tests := []struct {
		name         string
		body         string
		headers      []string
		wantConflict bool
	}{
		{"identical", body, headers, false},
		{"another occurred_at", strings.Replace(body, "14:30", "15:30", 1), headers, true},
		{"no occurred_at", `{"kind":"call","note":"intro"}`, headers, true},
		{"another X-Reason", body, []string{"X-Reason", "cold call", "X-Correlation-ID", "corr-1", "X-Causation-ID", "cause-1"}, true},
		{"another X-Correlation-ID", body, []string{"X-Reason", "met at the fair", "X-Correlation-ID", "corr-2", "X-Causation-ID", "cause-1"}, true},
		{"another X-Causation-ID", body, []string{"X-Reason", "met at the fair", "X-Correlation-ID", "corr-1", "X-Causation-ID", "cause-2"}, true},
	}
	a := newAPI(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			created := a.do("POST", "/v1/contacts", appToken, `{"name":"Kenta Ito","channel":"referral"}`)
			id := created.json(t)["id"].(string)
			path := "/v1/contacts/" + id + "/touchpoints"
			key := []string{"Idempotency-Key", "touch-" + tc.name}
			first := a.do("POST", path, appToken, body, append(key, headers...)...)
			if first.status != 200 {
				t.Fatalf("first: %d %s", first.status, first.body)
			}
			again := a.do("POST", path, appToken, tc.body, append(key, tc.headers...)...)
			switch {
			case tc.wantConflict && (again.status != 409 || again.json(t)["type"] != httpapi.ProblemBase+"idempotency-conflict"):
				t.Fatalf("retry: %d %s, want a 409 idempotency-conflict problem", again.status, again.body)
			case !tc.wantConflict && (again.status != 200 || again.header.Get("Idempotent-Replayed") != "true"):
				t.Fatalf("retry: %d %s, want the replayed answer", again.status, again.body)
			}
			if v := a.contactVersion(id); v != 2 {
				t.Fatalf("contact version %v after the retry, want 2", v)
			}
		})
	}
}
