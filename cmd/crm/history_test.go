package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/eventcrm/crm/cmd/crm/internal/config"
	"github.com/eventcrm/crm/commands"
)

// `crm history` shows a sealed event's personal data opened while the person's key exists,
// and the erasure once it is destroyed; the chain it checks, and `crm verify`, are of the
// bytes as stored, which never hold the data in clear.
func TestHistoryOpensSealedData(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			env := map[string]string{"CRM_DATA_DIR": t.TempDir()}
			if backend == "postgres" {
				env["CRM_STORE"] = boundedSchema(t)
			}
			cfg := config.FromEnv(func(k string) string { return env[k] })
			handler := func() (*commands.Handler, func()) {
				s, err := config.OpenSealedStore(ctx, cfg)
				if err != nil {
					t.Fatal(err)
				}
				return commands.NewHandler(s, commands.WithShredder(s.Codec())), func() { _ = s.Close() }
			}
			h, done := handler()
			res, err := h.CreateContact(ctx, commands.Meta{Actor: "test"}, commands.CreateContact{
				Name: "Quillon Histoire", Email: "quillon@history.example", Channel: "web_form"})
			done()
			if err != nil {
				t.Fatal(err)
			}
			stream := "contact-" + res.ID

			type line struct {
				Type     string `json:"type"`
				Personal string `json:"personal"`
				Data     struct {
					Name struct {
						Family string `json:"family"`
					} `json:"name"`
					Email string `json:"email"`
				} `json:"data"`
				DataB64    []byte `json:"data_b64"`
				ChainError string `json:"chain_error"`
			}
			history := func() (string, []line) {
				t.Helper()
				text, _, err := crm(t, env, "history", stream)
				if err != nil {
					t.Fatalf("history: %v", err)
				}
				out, _, err := crm(t, env, "history", "--json", stream)
				if err != nil {
					t.Fatalf("history --json: %v", err)
				}
				var lines []line
				for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
					var v line
					if err := json.Unmarshal([]byte(l), &v); err != nil {
						t.Fatalf("%v: %s", err, l)
					}
					if v.ChainError != "" || strings.Contains(strings.ToLower(string(v.DataB64)), "quillon") {
						t.Errorf("stored bytes: %s, chain %q", v.DataB64, v.ChainError)
					}
					lines = append(lines, v)
				}
				return text, lines
			}
			verify := func() {
				t.Helper()
				if out, _, err := crm(t, env, "verify", "--quiet"); err != nil || !strings.HasPrefix(out, "OK") {
					t.Errorf("verify: %q, %v", out, err)
				}
			}

			text, lines := history()
			if first := lines[0]; first.Personal != "sealed" || first.Data.Name.Family != "Quillon Histoire" || first.Data.Email != "quillon@history.example" {
				t.Errorf("history before the erasure: %+v", first)
			}
			if !strings.Contains(text, "Quillon Histoire") || !strings.Contains(text, "personal data opened") {
				t.Errorf("text history before the erasure:\n%s", text)
			}
			verify()

			h, done = handler()
			_, err = h.EraseContact(ctx, commands.Meta{Actor: "test"}, commands.EraseContact{ContactID: res.ID, Reason: "right to erasure"})
			done()
			if err != nil {
				t.Fatal(err)
			}
			text, lines = history()
			if first := lines[0]; first.Personal != "erased" || first.Data.Name.Family != "" || first.Data.Email != "" {
				t.Errorf("history after the erasure: %+v", first)
			}
			if len(lines) != 2 || strings.Contains(strings.ToLower(text), "quillon") || !strings.Contains(text, "personal data ERASED") {
				t.Errorf("text history after the erasure (%d events):\n%s", len(lines), text)
			}
			verify()
		})
	}
}
