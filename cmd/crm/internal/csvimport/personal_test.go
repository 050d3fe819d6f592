package csvimport_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/eventcrm/crm/cmd/crm/internal/csvimport"
	"github.com/eventcrm/crm/commands"
)

// A report is kept apart from the log (import_runs, a saved report file), where an erasure
// does not reach it: a refused row's problem names the column and the reason, never the
// value of a column that holds personal data, in its value or in its reason.
func TestReportsQuoteNoPersonalData(t *testing.T) {
	t.Parallel()
	longName, longNote := strings.Repeat("佐", 501), strings.Repeat("覚", 10_001)
	cases := []struct {
		name     string
		kind     csvimport.Kind
		file     string
		personal []string // the values no report may quote
		wants    []want   // value "" for every personal column
	}{
		{"contacts", csvimport.Contacts, "key,name,email,phone,channel\n" +
			"c2,田中 一郎,tanaka(at)mail.example,,web_form\n" +
			"c3,鈴木 二郎,,03-CALL-SUZUKI,web_form\n" +
			"c4," + longName + ",,,web_form\n" +
			"c5,高橋 三郎,,,fax\n",
			[]string{"田中 一郎", "tanaka(at)mail.example", "鈴木 二郎", "03-CALL-SUZUKI", longName, "高橋 三郎"},
			[]want{
				{2, "email", "", "the value is not an email address", both},
				{3, "phone", "", "the value is not a phone number", both},
				{4, "name", "", "is longer than 500 characters", both},
				{5, "channel", "fax", "is not a lead channel", both},
			}},
		{"touchpoints", csvimport.Touchpoints, "contact_key,kind,note\nc1,meeting," + longNote + "\n",
			[]string{longNote},
			[]want{{2, "note", "", "is longer than 10000 characters", both}}},
		{"deals", csvimport.Deals, "contact_key,title,amount,currency,stage,lost_reason,lost_note\nc1,更新,100,JPY,lost,price," + longNote + "\n",
			[]string{longNote},
			[]want{{2, "lost_note", "", "is longer than 10000 characters", real}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := commands.NewHandler(backends[0].open(t))
			importFile(t, h, csvimport.Contacts, "key,name,channel\nc1,佐藤 花子,seminar\n", "", false, nil)
			for _, dryRun := range []bool{true, false} {
				rep := importFile(t, h, c.kind, c.file, "", dryRun, nil)
				var got []want
				for _, p := range rep.Problems {
					got = append(got, want{p.Row, p.Column, p.Value, p.Why, both})
					for _, v := range c.personal {
						if strings.Contains(p.Value, v) || strings.Contains(p.Why, v) {
							t.Errorf("%s (dry run %v): problem of row %d, column %q quotes %.20q: %.60q", c.name, dryRun, p.Row, p.Column, v, p.Value+" "+p.Why)
						}
					}
				}
				var wants []want
				for _, w := range c.wants {
					if w.in == both || (w.in == dry) == dryRun {
						wants = append(wants, w)
					}
				}
				if len(got) != len(wants) {
					t.Errorf("%s (dry run %v): %d problems, want %d: %.300q", c.name, dryRun, len(got), len(wants), fmt.Sprint(got))
					continue
				}
				for i, w := range wants {
					if g := got[i]; g.row != w.row || g.column != w.column || g.value != w.value || !strings.Contains(g.why, w.why) {
						t.Errorf("%s (dry run %v): problem %d = row %d column %q value %.40q why %.80q; want row %d column %q value %q why ~%q",
							c.name, dryRun, i, g.row, g.column, g.value, g.why, w.row, w.column, w.value, w.why)
					}
				}
			}
		})
	}
}
