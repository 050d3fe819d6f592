package main

import (
	"context"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/postgres"
	"github.com/eventcrm/crm/eventstore/sqlite"
)

// A log holding metadata written from an invalid UTF-8 byte (stored as \ufffd), as commands
// could write before the edge refused such headers, passes every check of the command line:
// history, verify, a new audit checkpoint and its offline verification.
func TestCommandLineOnLogWithReplacedBytes(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"CRM_DATA_DIR": t.TempDir()}
			var store eventstore.Store
			var err error
			switch backend {
			case "sqlite":
				file := filepath.Join(env["CRM_DATA_DIR"], "crm.db")
				env["CRM_STORE"] = "sqlite://" + file
				store, err = sqlite.Open(context.Background(), file)
			case "postgres":
				env["CRM_STORE"] = boundedSchema(t)
				u, perr := url.Parse(env["CRM_STORE"])
				if perr != nil {
					t.Fatal(perr)
				}
				store, err = postgres.Open(context.Background(), postgresURL(), postgres.WithSchema(u.Query().Get("schema")))
			}
			if err != nil {
				t.Fatal(err)
			}
			id := writeReplacedBytes(t, store)
			if err := store.Close(); err != nil {
				t.Fatal(err)
			}

			if out, _, err := crm(t, env, "history", "--json", "contact-"+id); err != nil || strings.Contains(out, "chain_error") {
				t.Fatalf("history: %v\n%s", err, out)
			}
			if out, _, err := crm(t, env, "verify", "--quiet"); err != nil || !strings.HasPrefix(out, "OK: ") {
				t.Fatalf("verify: %q, %v", out, err)
			}
			cpPath := filepath.Join(t.TempDir(), "cp.json")
			if cp := saveCheckpoint(t, env, cpPath); cp.Size != 3 {
				t.Fatalf("checkpoint of %d events, want 3", cp.Size)
			}
			out, _, err := crm(t, env, "audit", "verify", "--checkpoint", cpPath, "--quiet")
			if err != nil || !strings.Contains(out, "OK: ") {
				t.Fatalf("audit verify: %q, %v", out, err)
			}
			if out, _, err := crm(t, env, "audit", "verify", "--checkpoint", cpPath, "--stream", "contact-"+id); err != nil {
				t.Fatalf("audit verify --stream: %q, %v", out, err)
			}
		})
	}
}

// writeReplacedBytes creates a contact whose second event's metadata was given invalid UTF-8,
// and another contact after it, and returns the first contact's id.
func writeReplacedBytes(t *testing.T, store eventstore.Store) string {
	t.Helper()
	ctx := context.Background()
	h := commands.NewHandler(store)
	created, err := h.CreateContact(ctx, commands.Meta{Actor: "web"}, commands.CreateContact{Name: "Yui", Channel: "seminar"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.RecordTouchpoint(ctx, commands.Meta{Actor: "web", Reason: "bad \xff byte", CorrelationID: "\xfe\xff"},
		commands.RecordTouchpoint{ContactID: created.ID, Kind: "call"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.CreateContact(ctx, commands.Meta{Actor: "web"}, commands.CreateContact{Name: "Ken", Channel: "seminar"}); err != nil {
		t.Fatal(err)
	}
	return created.ID
}
