package httpapi_test

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"
	"net/http/httptest"

	"github.com/eventcrm/crm/cmd/crm/internal/auth"
	"github.com/eventcrm/crm/cmd/crm/internal/httpapi"
	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/domain/settings"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/sqlite"
)

// newAdminAPI is newAPI on a store of the backend, with an admin token too.
func newAdminAPI(t *testing.T, backend string) (*api, *commands.Handler, eventstore.Store) {
	t.Helper()
	var store eventstore.Store
	switch backend {
	case "sqlite":
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "crm.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		store = s
	case "postgres":
		store = openPostgres(t)
	}
	tokens, err := auth.ParseTokens("web:app:" + appToken + ",root:admin:" + adminToken)
	if err != nil {
		t.Fatal(err)
	}
	cmds := commands.NewHandler(store)
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Store: store, Commands: cmds, Tokens: tokens, Log: zaptest.NewLogger(t)}))
	t.Cleanup(srv.Close)
	return &api{t: t, url: srv.URL}, cmds, store
}

func TestSettingsAreEventsChangedByAnAdmin(t *testing.T) {
	t.Parallel()
	for _, backend := range auditBackends() {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			a, cmds, _ := newAdminAPI(t, backend)
			ctx := context.Background()
			r := a.do("GET", "/v1/settings/lead_scoring", adminToken, "")
			if r.status != http.StatusOK || r.json(t)["value"].(map[string]any)["half_life_days"] != 30.0 {
				t.Fatalf("defaults: %d %s", r.status, r.body)
			}
			body := `{"weights":{"meeting":40,"inquiry":25},"rules":[{"field":"title","match":"contains","value":"head","points":10}],"half_life_days":14,"hot_threshold":60}`
			cases := []struct {
				name, token, body string
				headers           []string
				status            int
				field             string
			}{
				{"an app may not", appToken, body, []string{"X-Reason", "tuning"}, http.StatusForbidden, ""},
				{"a reason is required", adminToken, body, nil, http.StatusUnprocessableEntity, "reason"},
				{"a bad kind", adminToken, `{"weights":{"fax":1},"half_life_days":14,"hot_threshold":60,"reason":"x"}`, nil, http.StatusUnprocessableEntity, "weights"},
				{"a bad half-life", adminToken, `{"weights":{},"half_life_days":0,"hot_threshold":60,"reason":"x"}`, nil, http.StatusUnprocessableEntity, "half_life_days"},
				{"a stale If-Match", adminToken, body, []string{"X-Reason", "tuning", "If-Match", `"3"`}, http.StatusPreconditionFailed, ""},
				{"the change", adminToken, body, []string{"X-Reason", "tuning", "If-Match", `"0"`}, http.StatusOK, ""},
				{"the same again", adminToken, body, []string{"X-Reason", "tuning"}, http.StatusUnprocessableEntity, ""},
			}
			for _, c := range cases {
				r := a.do("PUT", "/v1/settings/lead_scoring", c.token, c.body, c.headers...)
				if r.status != c.status {
					t.Fatalf("%s: %d %s, want %d", c.name, r.status, r.body, c.status)
				}
				if c.field != "" && r.json(t)["field"] != c.field {
					t.Errorf("%s: %s, want field %s", c.name, r.body, c.field)
				}
			}
			r = a.do("GET", "/v1/settings/lead_scoring", adminToken, "")
			if r.header.Get("ETag") != `"1"` || r.json(t)["value"].(map[string]any)["half_life_days"] != 14.0 {
				t.Fatalf("after the change: %s %s", r.header.Get("ETag"), r.body)
			}
			if r := a.do("GET", "/v1/settings", appToken, ""); r.status != http.StatusForbidden {
				t.Errorf("an app read the settings: %d", r.status)
			}
			for _, put := range []struct{ path, body string }{
				{"/v1/settings/stage_probabilities", `{"probabilities":{"qualification":5,"needs_analysis":20,"proposal":50,"negotiation":80},"reason":"calibrated"}`},
				{"/v1/settings/lost_reasons", `{"reasons":["price","competitor","other"],"reason":"simpler"}`},
				{"/v1/settings/processes", `{"hot_lead_handoff":true,"nps_follow_up":false,"support_ticket":true,"onboarding":true,"task_reminders":true,"dormancy":true,"dormant_days":60,"reason":"quarter plan"}`},
			} {
				if r := a.do("PUT", put.path, adminToken, put.body); r.status != http.StatusOK {
					t.Fatalf("%s: %d %s", put.path, r.status, r.body)
				}
			}
			history, err := cmds.History(ctx, settings.StreamName)
			if err != nil {
				t.Fatal(err)
			}
			if len(history) != 4 || history[0].Metadata.Actor != "root" || history[0].Metadata.Reason != "tuning" || history[3].Metadata.Reason != "quarter plan" {
				t.Fatalf("settings history: %+v", history)
			}
			// Each point of the log has the settings then in force.
			before, err := cmds.SettingsBefore(ctx, history[0].Position)
			if err != nil {
				t.Fatal(err)
			}
			after, err := cmds.SettingsBefore(ctx, history[0].Position+1)
			if err != nil {
				t.Fatal(err)
			}
			if before.LeadScoring.HalfLifeDays != 30 || after.LeadScoring.HalfLifeDays != 14 || after.Processes.NPSFollowUp != true {
				t.Errorf("settings before %v, after %v", before.LeadScoring, after)
			}
			// A lost reason no longer offered is refused; one offered is taken.
			contactID := a.createContact()
			deal := a.do("POST", "/v1/deals", appToken, `{"contact_id":"`+contactID+`","title":"Plan","amount":100,"currency":"JPY"}`).json(t)["id"].(string)
			if r := a.do("POST", "/v1/deals/"+deal+"/lose", appToken, `{"reason":"timing"}`); r.status != http.StatusUnprocessableEntity || r.json(t)["field"] != "reason" {
				t.Errorf("lost for timing: %d %s", r.status, r.body)
			}
			if r := a.do("POST", "/v1/deals/"+deal+"/lose", appToken, `{"reason":"competitor"}`); r.status != http.StatusOK {
				t.Errorf("lost to a competitor: %d %s", r.status, r.body)
			}
			now, err := cmds.Settings(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if now.Processes.NPSFollowUp || now.Processes.DormantDays != 60 || len(now.LostReasons) != 3 || now.StageProbabilities["negotiation"] != 80 {
				t.Errorf("settings now: %+v", now)
			}

		})
	}
}

// A value of the wrong JSON type is a 400 naming the field as the client wrote it, also for
// the fields the body shares with a section (no Go name of the code's in the path).
func TestSettingsOfAWrongTypeNameTheFieldAsSent(t *testing.T) {
	t.Parallel()
	for _, backend := range auditBackends() {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			a, _, _ := newAdminAPI(t, backend)
			for _, c := range []struct{ section, body, field string }{
				{"processes", `{"dormant_days":"sixty","reason":"x"}`, "dormant_days"},
				{"processes", `{"dormancy":1,"reason":"x"}`, "dormancy"},
				{"processes", `{"reason":5}`, "reason"},
				{"lead_scoring", `{"rules":[{"points":"many"}],"reason":"x"}`, "rules.points"},
				{"lead_scoring", `{"half_life_days":"long","reason":"x"}`, "half_life_days"},
			} {
				r := a.do("PUT", "/v1/settings/"+c.section, adminToken, c.body)
				if r.status != http.StatusBadRequest || r.json(t)["field"] != c.field || !strings.Contains(r.header.Get("Content-Type"), "problem+json") {
					t.Errorf("%s %s: %d %s, want a 400 naming %s", c.section, c.body, r.status, r.body, c.field)
				}
			}
		})
	}
}
