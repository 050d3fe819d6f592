package main

import (
	"context"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/eventcrm/crm/cmd/crm/internal/readmodels"
	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/eventstore/sqlite"
)

// Every read model listed in package readmodels is rebuilt by `crm rebuild`, compared by
// `crm projections diff`, run and reported by `crm serve` (GET /v1/projections), and
// answers each of its queries now and at a past log position (time travel): the list is
// the only place a read model is named.
func TestEveryListedReadModelIsServedEverywhere(t *testing.T) {
	t.Parallel()
	env, storePath := seededWithAccount(t, "20")
	var contactID, accountID string
	var head int64
	err := openDB(t, storePath).QueryRow(`SELECT (SELECT substr(min(stream), 9) FROM events WHERE stream LIKE 'contact-%'),
		(SELECT substr(min(stream), 9) FROM events WHERE stream LIKE 'account-%'),
		(SELECT max(position) FROM events)`).Scan(&contactID, &accountID, &head)
	if err != nil {
		t.Fatal(err)
	}
	for _, rm := range readmodels.All(readmodels.Options{}) {
		name := rm.Projection.Name()
		out, _, err := crm(t, env, "rebuild", "--projection", name, "--quiet", "--drop-delay", "0s")
		if want := name + ": " + setName(rm.Projection, "g1") + " now serves"; err != nil || !strings.Contains(out, want) {
			t.Fatalf("crm rebuild --projection %s: %v\n%s", name, err, out)
		}
		out, _, err = crm(t, env, "projections", "diff", name, "--quiet")
		if err != nil || !strings.Contains(out, "identical") {
			t.Fatalf("crm projections diff %s: %v\n%s", name, err, out)
		}
	}

	env["CRM_LOG_LEVEL"] = "warn"
	s := serve(t, env)
	defer s.stop()
	s.waitCaughtUp()
	sets := s.tableSets()
	for _, rm := range readmodels.All(readmodels.Options{}) {
		name := rm.Projection.Name()
		t.Run(name, func(t *testing.T) {
			if got, want := sets[name], setName(rm.Projection, "g1"); got != want {
				t.Errorf("GET /v1/projections: %s serves %q, want %q", name, got, want)
			}
			if len(rm.Queries) == 0 && rm.ServedBy == "" {
				t.Fatalf("%s has no HTTP query", name)
			}
			if rm.ServedBy != "" {
				if status, body := s.request("GET", rm.ServedBy, s.token); status != 200 {
					t.Errorf("GET %s: %d %v", rm.ServedBy, status, body)
				}
			}
			for _, q := range rm.Queries {
				path := "/v1" + strings.NewReplacer("{contactId}", url.PathEscape(contactID), "{accountId}", url.PathEscape(accountID)).Replace(q.Path)
				if strings.Contains(path, "{") {
					t.Fatalf("%s: no value for the variables of %s", name, q.Path)
				}
				for _, query := range []string{"", "?at_position=" + strconv.FormatInt(head/2, 10)} {
					if status, body := s.request("GET", path+query, s.token); status != 200 {
						t.Errorf("GET %s: %d %v", path+query, status, body)
					}
				}
			}
		})
	}
}

// seededWithAccount is seeded with an account created first, so that every log position of
// the history knows it.
func seededWithAccount(t *testing.T, contacts string) (map[string]string, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "crm.db")
	store, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = commands.NewHandler(store).CreateAccount(context.Background(), commands.Meta{Actor: "rep-a"}, commands.CreateAccount{Name: "Tanaka Trading"})
	if cerr := store.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"CRM_DATA_DIR": dir}
	if out, _, err := crm(t, env, "seed", "--contacts", contacts, "--quiet"); err != nil {
		t.Fatalf("seed: %v\n%s", err, out)
	}
	return env, path
}
