package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/eventstore/sqlite"
)

// TestLinkByCompany: contacts in no account are grouped by their normalised company (width
// and case variants together); a company an account is named for goes to that account;
// --dry-run changes nothing; a run links them through the commands, and a second run finds
// nothing left to do.
func TestLinkByCompany(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := map[string]string{"CRM_DATA_DIR": dir}
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(dir, "crm.db"))
	if err != nil {
		t.Fatal(err)
	}
	h := commands.NewHandler(store)
	meta := commands.Meta{Actor: "rep-a"}
	initech, err := h.CreateAccount(ctx, meta, commands.CreateAccount{Name: "Initech"})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, c := range []struct{ name, company string }{
		{"a1", "ｱｸﾒ"}, {"a2", " アクメ "}, {"g1", "Globex"}, {"g2", "GLOBEX"}, {"g3", "Globex"}, {"i1", "INITECH"}, {"n1", ""}, {"l1", "Globex"},
	} {
		res, err := h.CreateContact(ctx, meta, commands.CreateContact{Name: c.name, Company: c.company, Channel: "other"})
		if err != nil {
			t.Fatal(err)
		}
		ids[c.name] = res.ID
	}
	if _, err := h.LinkContactToAccount(ctx, meta, commands.LinkContactToAccount{ContactID: ids["l1"], AccountID: initech.ID}); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	before := digest(t, filepath.Join(dir, "crm.db"))

	out, _, err := crm(t, env, "accounts", "link-by-company", "--dry-run")
	if err != nil {
		t.Fatal(err)
	}
	want := []proposal{
		{Company: "Globex", Create: true, Contacts: sortedIDs(ids, "g1", "g2", "g3")},
		{Company: "Initech", AccountID: initech.ID, Contacts: sortedIDs(ids, "i1")},
		{Company: "アクメ", Create: true, Contacts: sortedIDs(ids, "a1", "a2")},
	}
	got := proposalsOf(t, out)
	if len(got) != len(want) {
		t.Fatalf("proposals %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i].Company != want[i].Company || got[i].AccountID != want[i].AccountID || got[i].Create != want[i].Create ||
			strings.Join(got[i].Contacts, ",") != strings.Join(want[i].Contacts, ",") {
			t.Errorf("proposal %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if digest(t, filepath.Join(dir, "crm.db")) != before {
		t.Fatal("--dry-run changed the log")
	}

	if _, _, err := crm(t, env, "accounts", "link-by-company"); err != nil {
		t.Fatal(err)
	}
	after := digest(t, filepath.Join(dir, "crm.db"))
	out, _, err = crm(t, env, "accounts", "link-by-company")
	if err != nil || out != "" || digest(t, filepath.Join(dir, "crm.db")) != after {
		t.Fatalf("a second run: %q, %v (the log changed: %v)", out, err, digest(t, filepath.Join(dir, "crm.db")) != after)
	}
	store, err = sqlite.Open(ctx, filepath.Join(dir, "crm.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	h = commands.NewHandler(store)
	for _, name := range []string{"a1", "a2", "g1", "g2", "i1"} {
		c, err := commands.NewHandler(store).Contact(ctx, ids[name], commands.At{})
		if err != nil || c.AccountID == "" {
			t.Errorf("contact %s: account %q, %v", name, c.AccountID, err)
		}
	}
	if c, _ := h.Contact(ctx, ids["i1"], commands.At{}); c.AccountID != initech.ID {
		t.Errorf("INITECH went to %s, not to Initech's account", c.AccountID)
	}
	a1, _ := h.Contact(ctx, ids["a1"], commands.At{})
	a2, _ := h.Contact(ctx, ids["a2"], commands.At{})
	if a1.AccountID != a2.AccountID {
		t.Errorf("the width variants went to two accounts: %s, %s", a1.AccountID, a2.AccountID)
	}
}

func proposalsOf(t *testing.T, out string) []proposal {
	t.Helper()
	var ps []proposal
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var p proposal
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("proposals %q: %v", out, err)
		}
		ps = append(ps, p)
	}
	return ps
}

func sortedIDs(ids map[string]string, names ...string) []string {
	var out []string
	for _, n := range names {
		out = append(out, ids[n])
	}
	slices.Sort(out)
	return out
}
