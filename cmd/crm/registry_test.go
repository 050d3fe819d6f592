package main

import (
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/eventcrm/crm/cmd/crm/internal/readmodels"
)

// Every read model listed in package readmodels is rebuilt by `crm rebuild`, compared by
// `crm projections diff`, run and reported by `crm serve` (GET /v1/projections), and
// answers each of its queries now and at a past log position (time travel): the list is
// the only place a read model is named.
func TestEveryListedReadModelIsServedEverywhere(t *testing.T) {
	t.Parallel()
	env, storePath := seeded(t, "20")
	var contactID string
	var head int64
	err := openDB(t, storePath).QueryRow(`SELECT (SELECT substr(min(stream), 9) FROM events WHERE stream LIKE 'contact-%'),
		(SELECT max(position) FROM events)`).Scan(&contactID, &head)
	if err != nil {
		t.Fatal(err)
	}
	for _, rm := range readmodels.All() {
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
	for _, rm := range readmodels.All() {
		name := rm.Projection.Name()
		t.Run(name, func(t *testing.T) {
			if got, want := sets[name], setName(rm.Projection, "g1"); got != want {
				t.Errorf("GET /v1/projections: %s serves %q, want %q", name, got, want)
			}
			if len(rm.Queries) == 0 {
				t.Fatalf("%s has no HTTP query", name)
			}
			for _, q := range rm.Queries {
				path := "/v1" + strings.ReplaceAll(q.Path, "{contactId}", url.PathEscape(contactID))
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
