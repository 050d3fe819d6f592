package csvimport_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/encoding/japanese"

	"github.com/eventcrm/crm/cmd/crm/internal/csvimport"
	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/postgres"
	"github.com/eventcrm/crm/eventstore/postgres/postgrestest"
	"github.com/eventcrm/crm/eventstore/sqlite"
	"github.com/eventcrm/crm/projections/projectiontest"
)

const actor = "importer"

// backends open a fresh store: a SQLite file, or a fresh schema of the test PostgreSQL
// (the test fails, never skips, when it cannot be reached).
var backends = []struct {
	name string
	open func(t *testing.T) eventstore.Store
}{
	{"sqlite", func(t *testing.T) eventstore.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "crm.db"))
		if err != nil {
			t.Fatalf("open sqlite: %v", err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}},
	{"postgres", func(t *testing.T) eventstore.Store {
		schema := freshSchema(t)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s, err := postgres.Open(ctx, projectiontest.PostgresURL(), postgres.WithSchema(schema))
		if err != nil {
			t.Fatalf("open postgres at %s (set CRM_TEST_POSTGRES_URL): %v", projectiontest.PostgresURL(), err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}},
}

func freshSchema(t *testing.T) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "csvimport_test_" + hex.EncodeToString(b)
	postgrestest.DropWhenDone(t, projectiontest.PostgresURL(), schema)
	return schema
}

func logLength(t *testing.T, s eventstore.Store) int {
	t.Helper()
	n := 0
	for after := int64(0); ; {
		batch, err := s.ReadAll(context.Background(), after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		n += len(batch)
		if len(batch) < 1000 {
			return n
		}
		after = batch[len(batch)-1].Position
	}
}

// encodings are the ways a file reaches the import: as Excel saves it in Japan or elsewhere,
// detected or named.
var encodings = []struct {
	name, named string
	encode      func(t *testing.T, s string) string
}{
	{"utf-8", "", func(_ *testing.T, s string) string { return s }},
	{"utf-8 with BOM", "", func(_ *testing.T, s string) string { return "\uFEFF" + s }},
	{"utf-8 named", "utf-8", func(_ *testing.T, s string) string { return s }},
	{"shift_jis detected", "", sjis},
	{"shift_jis named", "cp932", sjis},
}

func sjis(t *testing.T, s string) string {
	t.Helper()
	out, err := japanese.ShiftJIS.NewEncoder().String(s)
	if err != nil {
		t.Fatalf("encode Shift_JIS: %v", err)
	}
	return out
}

// importFile runs one import of content.
func importFile(t *testing.T, h *commands.Handler, kind csvimport.Kind, content, encoding string, dry bool, mapping map[string]string) csvimport.Report {
	t.Helper()
	opts := csvimport.Options{Kind: kind, Encoding: encoding, DryRun: dry, Actor: actor, Zone: tokyo(t), Mapping: mapping, Workers: 4}
	var progress csvimport.Progress
	f, err := csvimport.Open(strings.NewReader(content), int64(len(content)), opts, &progress)
	if err != nil {
		t.Fatalf("open %s: %v", kind, err)
	}
	rep, err := csvimport.Run(context.Background(), h, f, opts, &progress)
	if err != nil {
		t.Fatalf("import %s: %v", kind, err)
	}
	if p := progress.Snapshot(); p.Rows != rep.Rows || p.BytesRead != int64(len(content)) || p.Percent != 100 {
		t.Fatalf("progress at the end %+v, report rows %d, file %d bytes", p, rep.Rows, len(content))
	}
	return rep
}

func tokyo(t *testing.T) *time.Location {
	loc, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// want is an expected problem: the why is matched by a part of it. in says which runs find
// it: both, or only a dry run (which reads the log) or only a real one (whose commands say it
// in their words).
type want struct {
	row        int64
	column     string
	value, why string
	in         string
}

const (
	both = ""
	dry  = "dry"
	real = "real"
)

func checkProblems(t *testing.T, what string, got []csvimport.Problem, wants []want, dryRun bool) {
	t.Helper()
	var ws []want
	for _, w := range wants {
		if w.in == both || (w.in == dry) == dryRun {
			ws = append(ws, w)
		}
	}
	if len(got) != len(ws) {
		t.Fatalf("%s: %d problems, want %d:\n%+v", what, len(got), len(ws), got)
	}
	for i, w := range ws {
		g := got[i]
		if g.Row != w.row || g.Column != w.column || g.Value != w.value || !strings.Contains(g.Why, w.why) {
			t.Errorf("%s: problem %d = %+v, want row %d column %q value %q why ~%q", what, i, g, w.row, w.column, w.value, w.why)
		}
	}
}

const contactsFile = `key,name,email,phone,channel,phase,occurred_at
c1,佐藤 花子,hanako@example.com,03-1234-5678,seminar,approach,2024-04-01 10:00
c2,田中 一郎,tanaka@,,web_form,,
c3,鈴木,,abc,web_form,,
c4,,,,web_form,,
c5,高橋,,,fax,,
c6,伊藤,,,,,
c7,渡辺,,,web_form,negotiating,
c8,山本,,,web_form,churned,
c9,中村,,,web_form,,yesterday
c10,小林
c11,加藤,bad@,,fax,,
`

var contactProblems = []want{
	{3, "email", "", "the value is not an email address", both},
	{4, "phone", "", "the value is not a phone number", both},
	{5, "name", "", "must not be empty", both},
	{6, "channel", "fax", "is not a lead channel", both},
	{7, "channel", "", "is required for a new contact", both},
	{8, "phase", "negotiating", "is not a", both},
	{9, "phase", "churned", "", both},
	{10, "occurred_at", "yesterday", "is not a time", both},
	{11, "", "", "has 2 fields, the header has 7", both},
	{12, "email", "", "the value is not an email address", both},
	{12, "channel", "fax", "is not a lead channel", both},
}

const dealsFile = `key,contact_key,title,amount,currency,stage,lost_reason,closed_at,expected_close,occurred_at
d1,c1,導入,"1,200,000",JPY,won,,2024/5/20,2024/6/30,2024-04-05 09:00
d2,,案件,100,JPY,,,,,
d3,nobody,案件,100,JPY,,,,,
d4,c1,案件,12.5,JPY,,,,,
d5,c1,案件,-1,JPY,,,,,
d6,c1,案件,100,yen,,,,,
d7,c1,,100,JPY,,,,,
d8,c1,案件,100,JPY,closing,,,,
d9,c1,案件,100,JPY,lost,,,,
d10,c1,案件,100,JPY,won,,31/12/2024,,
d11,c1,案件,100,JPY,,,,tomorrow,
`

var dealProblems = []want{
	{3, "", "", "names no contact", both},
	{4, "contact_key", "nobody", "no contact was imported with this key", dry},
	{4, "contact_key", "nobody", "does not exist", real}, // the command refuses it in its words
	{5, "amount", "12.5", "is not an amount", both},
	{6, "amount", "-1", "is negative", both},
	{7, "currency", "yen", "is not an ISO 4217 currency code", both},
	{8, "title", "", "is required", both},
	{9, "stage", "closing", "", both},
	{10, "lost_reason", "", "", both},
	{11, "closed_at", "31/12/2024", "is not a date", both},
	{12, "expected_close", "tomorrow", "is not a date", both},
}

const touchpointsFile = `contact_key,kind,note,occurred_at
c1,meeting,初回面談,2024-04-02 15:00
c1,email,オプトアウト前の案内,2024-04-03
c1,fax,,
,call,,
nobody,call,,
c1,email,オプトアウト後の案内,2024-05-01
c1,call,,2024-13-01
`

var touchpointProblems = []want{
	{4, "kind", "fax", "is not a", both},
	{5, "", "", "names no contact", both},
	{6, "contact_key", "nobody", "no contact was imported with this key", dry},
	{6, "contact_key", "nobody", "not found", real},
	{7, "", "", "opted out", both},
	{8, "occurred_at", "2024-13-01", "is not a time", both},
}

// TestImportEveryBadRowInBothEncodings imports files with every kind of bad row, dry and for
// real, in each encoding; then the same files in the other encoding, which append nothing.
func TestImportEveryBadRowInBothEncodings(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			for _, enc := range encodings {
				t.Run(enc.name, func(t *testing.T) {
					store := b.open(t)
					h := commands.NewHandler(store)
					file := func(s string) string { return enc.encode(t, s) }

					rep := importFile(t, h, csvimport.Contacts, file(contactsFile), enc.named, true, nil)
					checkProblems(t, "contacts dry run", rep.Problems, contactProblems, true)
					if n := logLength(t, store); n != 0 {
						t.Fatalf("a dry run appended %d events", n)
					}
					if rep.Valid != 1 || rep.Refused != 10 || rep.Rows != 11 {
						t.Fatalf("contacts dry run %+v", rep)
					}
					rep = importFile(t, h, csvimport.Contacts, file(contactsFile), enc.named, false, nil)
					checkProblems(t, "contacts", rep.Problems, contactProblems, false)
					if rep.Created != 1 || rep.Refused != 10 || rep.Updated != 0 || rep.Skipped != 0 {
						t.Fatalf("contacts %+v", rep)
					}
					// c1 opts out of email on 10 April: a touchpoint by email after it is refused.
					c1 := commands.CreatedID(csvimport.KeyScope, "import:contacts:key:c1")
					if _, err := h.OptOut(context.Background(), commands.Meta{Actor: "rep", OccurredAt: time.Date(2024, 4, 10, 0, 0, 0, 0, time.UTC)},
						commands.OptOut{ContactID: c1, Channel: "email"}); err != nil {
						t.Fatal(err)
					}
					before := logLength(t, store)
					for _, k := range []struct {
						kind    csvimport.Kind
						content string
						wants   []want
					}{{csvimport.Deals, dealsFile, dealProblems}, {csvimport.Touchpoints, touchpointsFile, touchpointProblems}} {
						rep := importFile(t, h, k.kind, file(k.content), enc.named, true, nil)
						checkProblems(t, string(k.kind)+" dry run", rep.Problems, k.wants, true)
						if n := logLength(t, store); n != before {
							t.Fatalf("a dry run of %s appended %d events", k.kind, n-before)
						}
					}
					rep = importFile(t, h, csvimport.Deals, file(dealsFile), enc.named, false, nil)
					checkProblems(t, "deals", rep.Problems, dealProblems, false)
					if rep.Created != 1 || rep.Refused != 10 {
						t.Fatalf("deals %+v", rep)
					}
					rep = importFile(t, h, csvimport.Touchpoints, file(touchpointsFile), enc.named, false, nil)
					checkProblems(t, "touchpoints", rep.Problems, touchpointProblems, false)
					if rep.Created != 2 || rep.Refused != 5 {
						t.Fatalf("touchpoints %+v", rep)
					}

					// Again, in the other encoding: the rows are the same, nothing is appended.
					after := logLength(t, store)
					other := encodings[len(encodings)-1] // Shift_JIS
					if strings.HasPrefix(enc.name, "shift_jis") {
						other = encodings[0] // UTF-8
					}
					for _, k := range []struct {
						kind    csvimport.Kind
						content string
						skipped int64
					}{{csvimport.Contacts, contactsFile, 1}, {csvimport.Deals, dealsFile, 1}, {csvimport.Touchpoints, touchpointsFile, 2}} {
						rep := importFile(t, h, k.kind, other.encode(t, k.content), other.named, false, nil)
						if rep.Skipped != k.skipped || rep.Created != 0 || rep.Updated != 0 {
							t.Fatalf("%s again (%s): %+v", k.kind, other.name, rep)
						}
					}
					if n := logLength(t, store); n != after {
						t.Fatalf("importing the files again appended %d events", n-after)
					}
				})
			}
		})
	}
}
