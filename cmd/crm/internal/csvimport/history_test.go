package csvimport_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/eventcrm/crm/cmd/crm/internal/csvimport"
	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/domain/deal"
)

// TestHistoryKeepsItsDates: every event of a row occurs at the row's time, a time without a
// zone being the business zone's (Asia/Tokyo here), and a win at its contract date.
func TestHistoryKeepsItsDates(t *testing.T) {
	store := backends[0].open(t)
	h := commands.NewHandler(store)
	importFile(t, h, csvimport.Contacts, contactsFile, "", false, nil)
	importFile(t, h, csvimport.Deals, dealsFile, "", false, nil)
	ctx := context.Background()
	c1 := commands.CreatedID(csvimport.KeyScope, "import:contacts:key:c1")
	d1 := commands.CreatedID(csvimport.KeyScope, "import:deals:key:d1")
	type at struct {
		typ  string
		when time.Time
	}
	for _, tc := range []struct {
		stream string
		want   []at
	}{
		{contact.StreamName(c1), []at{
			{contact.TypeCreated, time.Date(2024, 4, 1, 1, 0, 0, 0, time.UTC)},      // 10:00 in Tokyo
			{contact.TypePhaseChanged, time.Date(2024, 4, 1, 1, 0, 0, 0, time.UTC)}, // approach, with it
		}},
		{deal.StreamName(d1), []at{
			{deal.TypeOpened, time.Date(2024, 4, 5, 0, 0, 0, 0, time.UTC)},
			{deal.TypeWon, time.Date(2024, 5, 19, 15, 0, 0, 0, time.UTC)}, // 20 May in Tokyo
		}},
	} {
		events, err := h.History(ctx, tc.stream)
		if err != nil {
			t.Fatal(err)
		}
		var got []at
		for _, e := range events {
			got = append(got, at{e.Type, e.OccurredAt.UTC()})
		}
		// (The process manager that moves a won deal's contact to won does not run here.)
		want := tc.want
		if len(got) != len(want) {
			t.Fatalf("%s: %+v, want %+v", tc.stream, got, want)
		}
		for i := range want {
			if got[i].typ != want[i].typ || !got[i].when.Equal(want[i].when) {
				t.Errorf("%s event %d: %+v, want %+v", tc.stream, i, got[i], want[i])
			}
		}
		if tc.stream == deal.StreamName(d1) {
			var won deal.Won
			if err := json.Unmarshal(events[1].Data, &won); err != nil {
				t.Fatal(err)
			}
			if won.ClosedAt != "2024-05-20" || won.Amount.Amount != 1_200_000 || won.Amount.Currency != "JPY" {
				t.Errorf("won %+v", won)
			}
		}
	}
}

// TestChangedRowsUpdate: a row with a key that changed updates its record (now), and the
// report says so; a row without a key is its content, so a changed one is another record.
func TestChangedRowsUpdate(t *testing.T) {
	store := backends[0].open(t)
	h := commands.NewHandler(store)
	first := "key,name,email,channel,phase\nk1,Yui Sato,yui@example.com,seminar,approach\n,No Key,nokey@example.com,web_form,\n"
	rep := importFile(t, h, csvimport.Contacts, first, "", false, nil)
	if rep.Created != 2 {
		t.Fatalf("first import %+v", rep)
	}
	before := logLength(t, store)
	changed := "key,name,email,channel,phase\nk1,Yui Sato,yui.sato@example.com,seminar,discovery\n,No Key,nokey2@example.com,web_form,\n"
	rep = importFile(t, h, csvimport.Contacts, changed, "", false, nil)
	if rep.Updated != 1 || rep.Created != 1 || rep.Skipped != 0 || rep.Refused != 0 {
		t.Fatalf("changed import %+v", rep)
	}
	// k1: details changed and phase changed; the keyless row: a new contact.
	if n := logLength(t, store) - before; n != 3 {
		t.Fatalf("the changed file appended %d events, want 3", n)
	}
	c, err := h.Contact(context.Background(), commands.CreatedID(csvimport.KeyScope, "import:contacts:key:k1"), commands.At{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Email != "yui.sato@example.com" || c.Phase != contact.Discovery {
		t.Fatalf("k1 is %s in %s", c.Email, c.Phase)
	}
	rep = importFile(t, h, csvimport.Contacts, changed, "", false, nil)
	if rep.Skipped != 2 || rep.Updated != 0 || rep.Created != 0 {
		t.Fatalf("the changed file again %+v", rep)
	}
}

// TestHeaders: a file's header is checked before any row: columns named as the kind names
// them, or mapped.
func TestHeaders(t *testing.T) {
	tests := []struct {
		name    string
		kind    csvimport.Kind
		content string
		mapping map[string]string
		err     string // "" when it opens
	}{
		{"columns by name", csvimport.Contacts, "name,channel\n", nil, ""},
		{"unknown column", csvimport.Contacts, "name,channel,memo\n", nil, `column "memo" is not a column of contacts files`},
		{"mapped to nothing", csvimport.Contacts, "name,channel,memo\n", map[string]string{"memo": ""}, ""},
		{"Japanese headers mapped", csvimport.Contacts, "氏名,メール,流入経路\n",
			map[string]string{"氏名": "name", "メール": "email", "流入経路": "channel"}, ""},
		{"mapped to an unknown column", csvimport.Contacts, "氏名\n", map[string]string{"氏名": "full_name"}, `is not a column of contacts files`},
		{"required column missing", csvimport.Contacts, "email,channel\n", nil, "contacts files need a column name"},
		{"one of two required", csvimport.Touchpoints, "kind,note\n", nil, "touchpoints files need a column contact_key or contact_id"},
		{"deal without amount", csvimport.Deals, "contact_key,title,currency\n", nil, "deals files need a column amount"},
		{"twice the same column", csvimport.Contacts, "name,氏名\n", map[string]string{"氏名": "name"}, `are both name`},
		{"empty file", csvimport.Contacts, "", nil, "the file is empty"},
		{"a BOM is not Shift_JIS", csvimport.Contacts, "\uFEFFname\n", nil, "not Shift_JIS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc := ""
			if strings.Contains(tt.name, "Shift_JIS") {
				enc = "shift_jis"
			}
			_, err := csvimport.Open(strings.NewReader(tt.content), 0, csvimport.Options{Kind: tt.kind, Mapping: tt.mapping, Encoding: enc}, nil)
			var he *csvimport.HeaderError
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("open: %v", err)
			case tt.err != "" && (!errors.As(err, &he) || !strings.Contains(err.Error(), tt.err)):
				t.Fatalf("open: %v, want a header error ~%q", err, tt.err)
			}
		})
	}
}

// TestMappedFileImports: a file with its own header names imports through a mapping, and its
// problems name the file's columns.
func TestMappedFileImports(t *testing.T) {
	store := backends[0].open(t)
	h := commands.NewHandler(store)
	mapping := map[string]string{"顧客番号": "key", "氏名": "name", "メール": "email", "流入経路": "channel", "備考": ""}
	file := sjis(t, "顧客番号,氏名,メール,流入経路,備考\nA-1,佐藤 花子,hanako@example.com,seminar,VIP\nA-2,田中,tanaka@,web_form,\n")
	rep := importFile(t, h, csvimport.Contacts, file, "", false, mapping)
	if rep.Encoding != csvimport.EncodingShiftJIS || rep.Created != 1 || rep.Refused != 1 {
		t.Fatalf("report %+v", rep)
	}
	if p := rep.Problems[0]; p.Row != 3 || p.Column != "メール" || p.Value != "" || p.Why != "the value is not an email address" {
		t.Fatalf("problem %+v", p)
	}
	c, err := h.Contact(context.Background(), commands.CreatedID(csvimport.KeyScope, "import:contacts:key:A-1"), commands.At{})
	if err != nil || c.Name != "佐藤 花子" || c.Channel != contact.ChannelSeminar {
		t.Fatalf("contact %+v, %v", c, err)
	}
}

// TestWrongEncodingNamed: a Shift_JIS file imported as UTF-8 has rows that are not UTF-8
// text, each refused with the hint; nothing of it is appended.
func TestWrongEncodingNamed(t *testing.T) {
	store := backends[0].open(t)
	h := commands.NewHandler(store)
	rep := importFile(t, h, csvimport.Contacts, sjis(t, "name,channel\n佐藤,seminar\nSato,seminar\n"), "utf-8", false, nil)
	if rep.Refused != 1 || rep.Created != 1 || rep.Problems[0].Row != 2 || rep.Problems[0].Column != "name" ||
		!strings.Contains(rep.Problems[0].Why, "is not UTF-8 text") {
		t.Fatalf("report %+v", rep)
	}
}
