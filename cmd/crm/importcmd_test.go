package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/text/encoding/japanese"

	"github.com/eventcrm/crm/cmd/crm/internal/csvimport"
	"github.com/eventcrm/crm/commands"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func importReport(t *testing.T, stdout string) csvimport.Report {
	t.Helper()
	var rep csvimport.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("the report is not JSON: %v\n%s", err, stdout)
	}
	return rep
}

func TestImportCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := map[string]string{"CRM_DATA_DIR": filepath.Join(dir, "data"), "CRM_BUSINESS_TZ": "Asia/Tokyo"}
	contacts := writeFile(t, dir, "contacts.csv", "key,name,email,channel,phase,occurred_at\n"+
		"c1,Yui Sato,yui@example.com,seminar,approach,2024/4/1 10:00\nc2,Ken Tanaka,ken@example.com,referral,,2024-04-02\n")

	out, errOut, err := crm(t, env, "import", "contacts", contacts, "--progress", "lines")
	if err != nil {
		t.Fatalf("import: %v\n%s", err, errOut)
	}
	if rep := importReport(t, out); rep.Created != 2 || rep.Rows != 2 || rep.Encoding != "utf-8" {
		t.Fatalf("report %+v", rep)
	}
	if !strings.Contains(errOut, "100.0%") || !strings.Contains(errOut, "2 rows") {
		t.Fatalf("progress %q", errOut)
	}
	// Sealed as the server seals: no file but the key store holds a personal field in clear.
	for _, clear := range []string{"yui@example.com", "Ken Tanaka"} {
		if held := filesHoldingText(t, filepath.Join(dir, "data"), clear); len(held) > 0 {
			t.Fatalf("%q in clear in %v", clear, held)
		}
	}
	out, _, err = crm(t, env, "import", "--progress", "none", "contacts", contacts)
	if rep := importReport(t, out); err != nil || rep.Skipped != 2 || rep.Created != 0 {
		t.Fatalf("again: %v %+v", err, rep)
	}

	// Shift_JIS with the spreadsheet's own headers, named and mapped.
	sjis, err := japanese.ShiftJIS.NewEncoder().String("顧客,種別,内容,日時\nc1,meeting,初回面談,2024/4/3 15:00\nc2,fax,,\n")
	if err != nil {
		t.Fatal(err)
	}
	touchpoints := writeFile(t, dir, "touchpoints.csv", sjis)
	mapping := writeFile(t, dir, "mapping.json", `{"顧客":"contact_key","種別":"kind","内容":"note","日時":"occurred_at"}`)
	out, errOut, err = crm(t, env, "import", "touchpoints", touchpoints, "--encoding", "shift_jis", "--mapping", mapping, "--dry-run")
	rep := importReport(t, out)
	if err == nil || !strings.Contains(err.Error(), "1 of 2 rows bad") || rep.Valid != 1 || rep.Refused != 1 ||
		rep.Problems[0].Column != "種別" || rep.Problems[0].Value != "fax" {
		t.Fatalf("dry run: %v %+v %s", err, rep, errOut)
	}
	out, _, err = crm(t, env, "import", "touchpoints", touchpoints, "--encoding", "sjis", "--mapping", mapping)
	if rep := importReport(t, out); err == nil || rep.Created != 1 || rep.Refused != 1 {
		t.Fatalf("import: %v %+v", err, rep)
	}
	out, _, err = crm(t, env, "history", "contact-"+commandsCreatedID("import:contacts:key:c1"))
	if err != nil || !strings.Contains(out, "初回面談") || !strings.Contains(out, "2024-04-03T06:00:00Z") {
		t.Fatalf("history: %v\n%s", err, out)
	}
}

func TestImportCommandRefusals(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := map[string]string{"CRM_DATA_DIR": filepath.Join(dir, "data")}
	good := writeFile(t, dir, "good.csv", "name,channel\nYui,seminar\n")
	memo := writeFile(t, dir, "memo.csv", "name,channel,memo\nYui,seminar,VIP\n")
	tests := []struct {
		name  string
		args  []string
		usage bool
		err   string
	}{
		{"no kind", []string{"import"}, true, "import takes a kind and a file"},
		{"no file", []string{"import", "contacts"}, true, "import takes a kind and a file"},
		{"unknown kind", []string{"import", "leads", good}, true, `"leads" is not a kind of file`},
		{"unknown encoding", []string{"import", "--encoding", "latin1", "contacts", good}, true, "--encoding"},
		{"unknown progress", []string{"import", "--progress", "dots", "contacts", good}, true, "--progress"},
		{"no such file", []string{"import", "contacts", filepath.Join(dir, "nope.csv")}, false, "no such file"},
		{"unknown column", []string{"import", "contacts", memo}, false, `column "memo" is not a column of contacts files`},
		{"bad mapping", []string{"import", "--mapping", good, "contacts", memo}, false, "want a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := crm(t, env, tt.args...)
			var ue usageError
			if err == nil || !strings.Contains(err.Error(), tt.err) || errors.As(err, &ue) != tt.usage {
				t.Fatalf("err %v (usage error: %v), want ~%q (usage error: %v)", err, errors.As(err, &ue), tt.err, tt.usage)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "crm.db")); err == nil {
		t.Fatal("a refused import opened the store")
	}
}

func commandsCreatedID(key string) string { return commands.CreatedID(csvimport.KeyScope, key) }

// filesHoldingText lists the files of dir, the key store left out, whose bytes hold text.
func filesHoldingText(t *testing.T, dir, text string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var held []string
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), "keys.db") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(text)) {
			held = append(held, e.Name())
		}
	}
	return held
}
