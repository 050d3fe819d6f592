package httpapi_test

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/eventcrm/crm/cmd/crm/internal/auth"
	"github.com/eventcrm/crm/cmd/crm/internal/httpapi"
	"github.com/eventcrm/crm/cmd/crm/internal/webhooks"
	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/keys"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/hooks"
	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/runtime"
)

func TestWebhookEndpoints(t *testing.T) {
	t.Parallel()
	for _, b := range projectiontest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			store, a := webhookAPI(t, b)

			body := `{"url":"https://hooks.example.com/crm","event_types":["contact.became_hot.v1","deal.*"],"description":"chat"}`
			if r := a.do("POST", "/v1/webhooks", appToken, body); r.status != http.StatusForbidden {
				t.Fatalf("an app subscribed: %d", r.status)
			}
			for _, bad := range []struct{ body, field string }{
				{`{"url":"ftp://hooks.example.com","event_types":["*"]}`, "url"},
				{`{"url":"http://127.0.0.1:9000/","event_types":["*"]}`, "url"},
				{`{"url":"https://hooks.example.com","event_types":[]}`, "event_types"},
				{`{"url":"https://hooks.example.com","event_types":["contact.nothing.v1"]}`, "event_types"},
			} {
				r := a.do("POST", "/v1/webhooks", adminToken, bad.body)
				if r.status != http.StatusBadRequest || r.json(t)["field"] != bad.field {
					t.Errorf("%s: %d %s, want 400 naming %s", bad.body, r.status, r.body, bad.field)
				}
			}
			r := a.do("POST", "/v1/webhooks", adminToken, body)
			created := r.json(t)
			if r.status != http.StatusCreated || created["secret"] == nil || created["enabled"] != true || r.header.Get("Location") != "/v1/webhooks/"+created["id"].(string) {
				t.Fatalf("create: %d %s", r.status, r.body)
			}
			id := created["id"].(string)
			got := a.do("GET", "/v1/webhooks/"+id, adminToken, "")
			if got.status != http.StatusOK || got.json(t)["secret"] != nil {
				t.Fatalf("get shows %d %s (the secret is shown once)", got.status, got.body)
			}
			if r := a.do("PATCH", "/v1/webhooks/"+id, adminToken, `{"enabled":false}`, "If-Match", `"1"`); r.status != http.StatusOK || r.json(t)["disabled_reason"] != "disabled by root" {
				t.Fatalf("disable: %d %s", r.status, r.body)
			}
			if r := a.do("PATCH", "/v1/webhooks/"+id, adminToken, `{"description":"late"}`, "If-Match", `"1"`); r.status != http.StatusPreconditionFailed {
				t.Fatalf("a change of an old version: %d %s, want 412", r.status, r.body)
			}
			if r := a.do("PATCH", "/v1/webhooks/"+id, adminToken, `{"enabled":true}`, "X-Reason", "receiver fixed"); r.status != http.StatusOK || r.json(t)["enabled"] != true {
				t.Fatalf("enable: %d %s", r.status, r.body)
			}
			if r := a.do("GET", "/v1/webhooks/"+id+"/deliveries", adminToken, ""); r.status != http.StatusOK || len(r.json(t)["deliveries"].([]any)) != 0 {
				t.Fatalf("deliveries: %d %s", r.status, r.body)
			}
			if r := a.do("GET", "/v1/webhooks/"+id+"/deliveries?limit=0x", adminToken, ""); r.status != http.StatusBadRequest {
				t.Fatalf("bad limit: %d %s", r.status, r.body)
			}
			if r := a.do("POST", "/v1/webhooks/"+id+"/deliveries/msg_x/redeliver", adminToken, ""); r.status != http.StatusNotFound {
				t.Fatalf("redeliver unknown: %d %s", r.status, r.body)
			}
			// The list is the read model of the subscription events: it follows the log.
			projectiontest.WaitUntil(t, time.Minute, "the subscription listed", func() bool {
				r := a.do("GET", "/v1/webhooks", adminToken, "")
				list, _ := r.json(t)["webhooks"].([]any)
				return len(list) == 1 && list[0].(map[string]any)["enabled"] == true
			})
			if r := a.do("DELETE", "/v1/webhooks/"+id, adminToken, ""); r.status != http.StatusNoContent {
				t.Fatalf("delete: %d %s", r.status, r.body)
			}
			if r := a.do("GET", "/v1/webhooks/"+id, adminToken, ""); r.status != http.StatusNotFound {
				t.Fatalf("deleted: %d", r.status)
			}
			// The subscription's history is in the log, with actors and reasons; its secret is not.
			var history []string
			for _, e := range projectiontest.AllEvents(t, store) {
				if strings.Contains(string(e.Data), created["secret"].(string)[len(webhooks.SecretPrefix):]) {
					t.Errorf("the secret is in the log: %s %s", e.Type, e.Data)
				}
				if e.Stream == "webhook-"+id {
					history = append(history, e.Type+" by "+e.Metadata.Actor+": "+e.Metadata.Reason)
				}
			}
			want := []string{"webhook.subscription_created.v1 by root: ", "webhook.subscription_disabled.v1 by root: ",
				"webhook.subscription_enabled.v1 by root: receiver fixed", "webhook.subscription_deleted.v1 by root: "}
			if strings.Join(history, "\n") != strings.Join(want, "\n") {
				t.Errorf("history\n%s\nwant\n%s", strings.Join(history, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// webhookAPI is a server over a store of backend b with the webhook endpoints mounted, for an
// app and an admin; it answers the store too.
func webhookAPI(t *testing.T, b projectiontest.Backend) (eventstore.Store, *api) {
	t.Helper()
	store, db := b.Open(t)
	tokens, err := auth.ParseTokens("web:app:" + appToken + ",root:admin:" + adminToken)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := webhooks.New(context.Background(), webhookConfig(t, store, db, nil))
	if err != nil {
		t.Fatal(err)
	}
	s := httpapi.New(httpapi.Config{Store: store, Commands: commands.NewHandler(store), Tokens: tokens, Log: zaptest.NewLogger(t)})
	s.MountWebhooks(svc)
	return store, &api{t: t, url: describedServer(t, s).URL}
}

// webhookConfig is the configuration of a webhook service over store and db: a key store in a
// SQLite file, and the subscriptions' read model kept live by runner (a runner of its own
// when nil, until the test ends).
func webhookConfig(t testing.TB, store eventstore.Store, db *projections.DB, runner *runtime.Runner) webhooks.Config {
	t.Helper()
	k, err := keys.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "keys.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k.Close() })
	if runner == nil {
		runner = projectiontest.NewRunner(t, projectiontest.RunnerConfig(store, db), hooks.Projection())
		projectiontest.Start(t, runner)
	}
	return webhooks.Config{DB: db, Store: store, Commands: commands.NewHandler(store), Keys: k,
		Tables: func(context.Context) (projections.Tables, error) { return runner.Tables(hooks.Name) }}
}

// A PATCH that both changes a subscription and switches it records two events under one
// Idempotency-Key: both are applied, and the same request sent again answers the same
// subscription without recording anything more.
func TestWebhookPatchWithIdempotencyKeyChangesAndSwitches(t *testing.T) {
	t.Parallel()
	for _, b := range projectiontest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			_, a := webhookAPI(t, b)
			r := a.do("POST", "/v1/webhooks", adminToken, `{"url":"https://hooks.example.com/crm","event_types":["*"]}`)
			if r.status != http.StatusCreated {
				t.Fatalf("create: %d %s", r.status, r.body)
			}
			id := r.json(t)["id"].(string)
			for _, tt := range []struct {
				name, body, key string
				enabled         bool
				version         float64
			}{
				{"disable and change", `{"enabled":false,"description":"paused"}`, "patch-1", false, 3},
				{"the same again", `{"enabled":false,"description":"paused"}`, "patch-1", false, 3},
				{"enable and move", `{"enabled":true,"url":"https://hooks.example.com/v2"}`, "patch-2", true, 5},
				{"the same again", `{"enabled":true,"url":"https://hooks.example.com/v2"}`, "patch-2", true, 5},
			} {
				r := a.do("PATCH", "/v1/webhooks/"+id, adminToken, tt.body, "Idempotency-Key", tt.key)
				got := r.json(t)
				if r.status != http.StatusOK || got["enabled"] != tt.enabled || got["version"] != tt.version {
					t.Fatalf("%s: %d %s, want 200, enabled %v at version %v", tt.name, r.status, r.body, tt.enabled, tt.version)
				}
			}
		})
	}
}
