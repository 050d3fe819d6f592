package directory_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/directory"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// shortHistory is a generated history of contacts with Japanese names in kanji, full-width
// and half-width kana, Latin names in both cases and full-width Latin, then renames, owner,
// phase and account changes, and merges (a merged contact leaves the list).
func shortHistory(t *testing.T) []eventstore.Event {
	names := []string{"佐藤 花子", "サトウ タロウ", "ｻﾄｳ ｼﾞﾛｳ", "Yui Sato", "SATO Ken", "ＳＡＴＯ Ａｉ", "鈴木", "藤田 一",
		"Ab Cd", "abba", "Émile Zola", "ß Straße"}
	companies := []string{"田中商事", "ｱｸﾒ", "Acme", "", "ＡＣＭＥ"}
	owners := []string{"rep-a", "rep-b", "rep-c"}
	segments := []string{"", "smb", "enterprise"}
	var b strings.Builder
	line := func(stream, typ, data string, args ...any) {
		fmt.Fprintf(&b, "2024-01-01T09:00:00Z %s %s "+data+"\n", append([]any{stream, typ}, args...)...)
	}
	line("account-a1", "account.created.v1", `{"account_id":"a1","name":"A1"}`)
	const n = 48
	for i := range n {
		line(fmt.Sprintf("contact-c%d", i), "contact.created.v1",
			`{"contact_id":"c%d","name":%q,"email":"u%d@ex%d.example","phone":"+81-%d","company":%q,"channel":"web_form","owner":%q,"segment":%q}`,
			i, names[i%len(names)], i, i%4, i*7, companies[i%len(companies)], owners[i%3], segments[i%5%3])
	}
	for i := 0; i < n; i += 5 {
		line(fmt.Sprintf("contact-c%d", i), "contact.details_changed.v1", `{"contact_id":"c%d","name":%q,"company":"ﾊﾞﾅﾅ"}`, i, names[(i+3)%len(names)])
		line(fmt.Sprintf("contact-c%d", i), "contact.owner_changed.v1", `{"contact_id":"c%d","from":%q,"to":"rep-d"}`, i, owners[i%3])
	}
	for i := 1; i < n; i += 4 {
		line(fmt.Sprintf("contact-c%d", i), "contact.phase_changed.v1", `{"contact_id":"c%d","from":"lead","to":"approach","rule":"forward"}`, i)
		line(fmt.Sprintf("contact-c%d", i), "contact.account_linked.v1", `{"contact_id":"c%d","account_id":"a1"}`, i)
	}
	for i := 3; i < n; i += 7 {
		line(fmt.Sprintf("contact-c%d", i), "contact.merged_into.v1", `{"contact_id":"c%d","into":"c%d"}`, i, i-1)
	}
	return projectiontest.MustParseHistory(t, b.String())
}

// searchQueries are searches of one and two characters, width and case variants, a pair
// that spans two words, characters nobody has, and longer texts (found among the postings of
// the trigram index).
var searchQueries = []string{"佐藤 花", "ｻﾄｳ", "サトウ タ", "sato", "SATO K", "ＳＡＴＯ", "acme", "ＡＣＭＥ", "@ex0", "u1@", "ß st", "strasse",
	"émile", "ex1.example", "+81-1", "ﾊﾞﾅﾅ", "藤田 一", "zzz", "abba", "bba", "佐", "佐藤", "藤", "藤 ", "サ", "サト", "ｻﾄ", "ｻ", "sa", "SA", "Ｓａ", "a", "ab", "Ab", "bb",
	"e", "é", "ss", "ß", "@", "@e", "-", "+8", "1", "ﾊﾞ", "バナ", "ナ", "ac", "ＡＣ", "x", "zz", "鈴", "木"}

// TestSearchEqualsSubstring checks searches, answered from the postings the fold keeps (or,
// for a longer text, the trigram index), against a substring match of every listed contact's
// normalised fields, on both dialects, folded event by event (the live path) and in one
// batch, with pages small enough for both ways of reading the postings, alone and with an
// owner and a phase.
func TestSearchEqualsSubstring(t *testing.T) {
	events := shortHistory(t)
	p := directory.Projection()
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		for name, set := range liveAndBatch(t, db, p, events) {
			all := allContacts(t, db, set, directory.ContactParams{})
			if len(all) < 30 {
				t.Fatalf("%s: %d contacts listed, the history lists more", name, len(all))
			}
			for _, q := range searchQueries {
				// Alone, and with a filter, which a search of four characters or more reads
				// with its matches.
				for _, p := range []directory.ContactParams{{Q: q}, {Q: q, Owner: "rep-a", Phase: "approach"}} {
					want := []string{}
					for _, c := range all {
						if matches(c, p) {
							want = append(want, c.ContactID)
						}
					}
					for _, limit := range []int{2, 50} {
						p.Limit = limit
						got, total := pagedIDs(t, db, set, p)
						if strings.Join(got, ",") != strings.Join(want, ",") || total != int64(len(want)) {
							t.Errorf("%s: %+v: total %d, %v; substring match: %d, %v", name, p, total, got, len(want), want)
						}
					}
				}
			}
		}
	})
}

// TestKeptTotalsEqualCount checks the totals of lists with one filter or none, read from the
// counts the fold keeps, against the contacts listed.
func TestKeptTotalsEqualCount(t *testing.T) {
	events := shortHistory(t)
	p := directory.Projection()
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		ctx := context.Background()
		set := projections.TablesFor(p, "")
		projectiontest.MustApply(t, db, p, set, nil)
		for i, e := range events {
			if _, err := db.Apply(ctx, p, set, []eventstore.Event{e}); err != nil {
				t.Fatalf("apply %d: %v", e.Position, err)
			}
			if i%9 != 0 && i != len(events)-1 {
				continue
			}
			all := allContacts(t, db, set, directory.ContactParams{})
			questions := []directory.ContactParams{{}, {Q: "a", Owner: "rep-a"}, {Q: "佐藤", Segment: "smb"}}
			for _, c := range all {
				questions = append(questions, directory.ContactParams{Owner: c.Owner}, directory.ContactParams{Phase: string(c.Phase)},
					directory.ContactParams{Segment: c.Segment}, directory.ContactParams{Channel: c.Channel})
				if c.Account != nil {
					questions = append(questions, directory.ContactParams{AccountID: c.Account.AccountID})
				}
			}
			for _, q := range questions {
				var want int64
				for _, c := range all {
					if matches(c, q) {
						want++
					}
				}
				a, err := directory.QueryContacts(ctx, db, set, q)
				if err != nil {
					t.Fatal(err)
				}
				if a.Total != want {
					t.Errorf("after event %d: %+v: total %d, %d contacts listed match", e.Position, q, a.Total, want)
				}
			}
		}
	})
}

// holds is the substring match of q in a contact's fields, normalised.
func holds(c directory.ContactEntry, q string) bool {
	q = directory.Normalize(q)
	for _, f := range []string{c.Name, c.Email, c.Phone, c.Company} {
		if strings.Contains(directory.Normalize(f), q) {
			return true
		}
	}
	return false
}

func matches(c directory.ContactEntry, p directory.ContactParams) bool {
	account := ""
	if c.Account != nil {
		account = c.Account.AccountID
	}
	for _, eq := range [][2]string{{p.Owner, c.Owner}, {p.Phase, string(c.Phase)}, {p.Segment, c.Segment},
		{p.Channel, c.Channel}, {p.AccountID, account}} {
		if eq[0] != "" && eq[0] != eq[1] {
			return false
		}
	}
	return p.Q == "" || holds(c, p.Q)
}

// allContacts pages through a list to its end.
func allContacts(t *testing.T, db *projections.DB, set projections.Tables, p directory.ContactParams) []directory.ContactEntry {
	t.Helper()
	all, _ := pageContacts(t, db, set, p)
	return all
}

// pagedIDs pages through a list and returns the ids in order and the total of its first page.
func pagedIDs(t *testing.T, db *projections.DB, set projections.Tables, p directory.ContactParams) ([]string, int64) {
	t.Helper()
	all, total := pageContacts(t, db, set, p)
	ids := []string{}
	for _, c := range all {
		ids = append(ids, c.ContactID)
	}
	return ids, total
}

// pageContacts pages through a contacts list: its rows in order and its first page's total.
func pageContacts(t *testing.T, db *projections.DB, set projections.Tables, p directory.ContactParams) ([]directory.ContactEntry, int64) {
	t.Helper()
	return pageAll(t, p.Cursor, func(cursor string) ([]directory.ContactEntry, string, int64, error) {
		p.Cursor = cursor
		a, err := directory.QueryContacts(context.Background(), db, set, p)
		return a.Contacts, a.NextCursor, a.Total, err
	})
}

// pageAll asks page for every page of a list from cursor on, and returns the rows in order
// and the first page's total.
func pageAll[R any](t *testing.T, cursor string, page func(cursor string) (rows []R, next string, total int64, err error)) ([]R, int64) {
	t.Helper()
	var all []R
	var total int64
	for first := true; ; first = false {
		rows, next, n, err := page(cursor)
		if err != nil {
			t.Fatal(err)
		}
		if first {
			total = n
		}
		all = append(all, rows...)
		if next == "" {
			return all, total
		}
		cursor = next
	}
}

// liveAndBatch folds events into two table sets of p, "live" one event at a time (the live
// path) and "batch" in one batch (the rebuild's path), for tests that ask both the same.
func liveAndBatch(t *testing.T, db *projections.DB, p projections.Projection, events []eventstore.Event) map[string]projections.Tables {
	t.Helper()
	ctx := context.Background()
	live := projections.TablesFor(p, "live")
	projectiontest.MustApply(t, db, p, live, nil)
	for _, e := range events {
		if _, err := db.Apply(ctx, p, live, []eventstore.Event{e}); err != nil {
			t.Fatalf("apply %d: %v", e.Position, err)
		}
	}
	batch := projections.TablesFor(p, "batch")
	if err := db.EnsureSchema(ctx, p, batch); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ApplyBatch(ctx, p, batch, events); err != nil {
		t.Fatal(err)
	}
	return map[string]projections.Tables{"live": live, "batch": batch}
}
