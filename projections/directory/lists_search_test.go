package directory_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/directory"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// listsHistory is a generated history of accounts and deals whose names and titles are
// Japanese in kanji, full-width and half-width kana, Latin in both cases and full-width
// Latin, then renames of accounts, new titles, won and lost deals and a merge of contacts
// (which moves deals to the survivor). Each event is a minute after the one before, so that
// deals opened later sort later. The events after the first cut are the writes of
// TestListsPagingUnderWrites.
func listsHistory(t *testing.T) (events []eventstore.Event, cut int) {
	accounts := []string{"田中商事", "タナカ物産", "ﾀﾅｶ工業", "Acme Corp", "ACME Japan", "ＡＣＭＥ", "Globex", "Straße AG", "Émile & Co", "藤田"}
	industries := []string{"製造", "IT", "ｿﾌﾄｳｪｱ"}
	titles := []string{"保守契約 2024", "ﾎｼｭ契約", "ホシュ更新", "Upgrade plan", "SUPPORT renewal", "ｓｕｐｐｏｒｔ", "新規導入",
		"Smart licence", "Straße", "Émile", "保守", "up", "Smash", "ﾎｼ ｼｭｶﾞｰ"}
	at := time.Date(2024, 1, 1, 9, 0, 0, 0, time.UTC)
	var b strings.Builder
	line := func(stream, typ, data string, args ...any) {
		at = at.Add(time.Minute)
		fmt.Fprintf(&b, "%s %s %s "+data+"\n", append([]any{at.Format(time.RFC3339), stream, typ}, args...)...)
	}
	const nAccounts, nContacts, nDeals = 20, 12, 40
	for i := range nAccounts {
		line(fmt.Sprintf("account-a%d", i), "account.created.v1", `{"account_id":"a%d","name":"%s %d","domain":"a%d.example","industry":%q}`,
			i, accounts[i%len(accounts)], i, i%3, industries[i%len(industries)])
	}
	for i := range nContacts {
		line(fmt.Sprintf("contact-c%d", i), "contact.created.v1", `{"contact_id":"c%d","name":"C %d","channel":"web_form","owner":"rep-a"}`, i, i)
		line(fmt.Sprintf("contact-c%d", i), "contact.account_linked.v1", `{"contact_id":"c%d","account_id":"a%d"}`, i, i%3)
	}
	for i := range nDeals {
		line(fmt.Sprintf("deal-d%02d", i), "deal.opened.v1",
			`{"deal_id":"d%02d","contact_id":"c%d","title":%q,"amount":{"amount":1000,"currency":"JPY"},"owner":"rep-%d","stage":"qualification"}`,
			i, i%nContacts, titles[i%len(titles)], i%2)
	}
	for i := 0; i < nDeals; i += 7 {
		line(fmt.Sprintf("deal-d%02d", i), "deal.title_changed.v1", `{"deal_id":"d%02d","from":"","to":%q}`, i, titles[(i+5)%len(titles)])
	}
	for i := 1; i < nDeals; i += 5 {
		line(fmt.Sprintf("deal-d%02d", i), "deal.lost.v1", `{"deal_id":"d%02d","contact_id":"c%d","from_stage":"qualification","reason":"price"}`, i, i%nContacts)
	}
	for i := 0; i < nAccounts; i += 6 {
		line(fmt.Sprintf("account-a%d", i), "account.details_changed.v1", `{"account_id":"a%d","name":"%s %d","industry":"ｻｰﾋﾞｽ"}`,
			i, accounts[(i+4)%len(accounts)], i)
	}
	line("contact-c5", "contact.merged_into.v1", `{"contact_id":"c5","into":"c4"}`)
	cut = strings.Count(b.String(), "\n")
	// The writes: new deals and accounts that match, titles and domains changed into and out
	// of a match (a deal's and an account's sort key stays).
	for i := range 12 {
		d := nDeals + i
		line(fmt.Sprintf("deal-d%02d", d), "deal.opened.v1",
			`{"deal_id":"d%02d","contact_id":"c%d","title":%q,"amount":{"amount":1000,"currency":"JPY"},"owner":"rep-a","stage":"qualification"}`,
			d, i%nContacts, titles[i%len(titles)])
		line(fmt.Sprintf("deal-d%02d", i*3), "deal.title_changed.v1", `{"deal_id":"d%02d","from":"","to":%q}`, i*3, titles[(i*3+i)%len(titles)])
		a := nAccounts + i
		line(fmt.Sprintf("account-a%d", a), "account.created.v1", `{"account_id":"a%d","name":"%s %d","domain":"a%d.example"}`,
			a, accounts[i%len(accounts)], a, a)
		line(fmt.Sprintf("account-a%d", i*2), "account.details_changed.v1", `{"account_id":"a%d","domain":"%s.example"}`, i*2, []string{"tanaka", "acme", "zz"}[i%3])
	}
	return projectiontest.MustParseHistory(t, b.String()), cut
}

// dealQueries and accountQueries are searches of one, two and three or more characters,
// Japanese and Latin, width and case variants, and texts nobody has.
var (
	dealQueries = []string{"保", "保守", "保守契約", "保守契", "mas", "ホシュ", "シュガ", "ﾎｼｭ", "ホシュ", "ﾎ", "契", "u", "up", "UP", "Ｕｐ", "sup", "support", "SUPPORT re",
		"ss", "ß", "strasse", "é", "émile", "x", "zz", "新規導入", " ", "2024"}
	accountQueries = []string{"田", "田中", "田中商事", "タナ", "ﾀﾅ", "ﾀﾅｶ", "ac", "AC", "ａｃ", "acm", "acme j", "a1.ex", ".example", "製造",
		"ｿﾌ", "ソフト", "e", "é", "ß", "ss", "zz", "1", "12"}
)

// TestListSearchEqualsSubstring checks the searches of the deals and accounts lists, answered
// from the postings the fold keeps (or, for a longer text, the trigram index), against a
// substring match of every row's normalised text, in every sort and with a filter, on both
// dialects, folded event by event (the live path) and in one batch, with pages small enough
// for every way of reading the postings.
func TestListSearchEqualsSubstring(t *testing.T) {
	events, _ := listsHistory(t)
	p := directory.Projection()
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		for name, set := range liveAndBatch(t, db, p, events) {
			for _, sort := range []string{"", "-created", "title"} {
				for _, status := range []string{"", "open", "lost"} {
					all := allDeals(t, db, set, directory.DealParams{Sort: sort, Status: status})
					if status == "" && len(all) != 52 {
						t.Fatalf("%s: %d deals listed, the history has 52", name, len(all))
					}
					// A status alone: the total is the count the fold keeps.
					if _, total := dealIDs(t, db, set, directory.DealParams{Sort: sort, Status: status, Limit: 2}); total != int64(len(all)) {
						t.Errorf("%s: status %q: total %d, %d deals listed", name, status, total, len(all))
					}
					for _, q := range dealQueries {
						want := []string{}
						for _, d := range all {
							if strings.Contains(directory.Normalize(d.Title), directory.Normalize(q)) {
								want = append(want, d.DealID)
							}
						}
						for _, limit := range []int{2, 50} {
							params := directory.DealParams{Q: q, Sort: sort, Status: status, Limit: limit}
							got, total := dealIDs(t, db, set, params)
							if strings.Join(got, ",") != strings.Join(want, ",") || total != int64(len(want)) {
								t.Errorf("%s: %+v: total %d, %v; substring match: %d, %v", name, params, total, got, len(want), want)
							}
						}
					}
				}
			}
			for _, sort := range []string{"", "-name", "created"} {
				all := allAccounts(t, db, set, directory.AccountParams{Sort: sort})
				if len(all) != 32 {
					t.Fatalf("%s: %d accounts listed, the history has 32", name, len(all))
				}
				for _, q := range accountQueries {
					want := []string{}
					for _, a := range all {
						if accountHolds(a, q) {
							want = append(want, a.AccountID)
						}
					}
					for _, limit := range []int{2, 50} {
						params := directory.AccountParams{Q: q, Sort: sort, Limit: limit}
						got, total := accountIDs(t, db, set, params)
						if strings.Join(got, ",") != strings.Join(want, ",") || total != int64(len(want)) {
							t.Errorf("%s: %+v: total %d, %v; substring match: %d, %v", name, params, total, got, len(want), want)
						}
					}
				}
			}
		}
	})
}

// TestListsPagingUnderWrites pages through searches of the deals, accounts and contacts
// lists three rows at a time while deals and accounts are opened, created and changed
// between the pages: no row is shown twice, every row that matches from the first page to
// the last is shown (but for a row whose own sort key, a deal's title, changed meanwhile), and every page's total is the number of rows that match at that moment.
func TestListsPagingUnderWrites(t *testing.T) {
	events, cut := listsHistory(t)
	p := directory.Projection()
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		ctx := context.Background()
		sets := 0
		for _, q := range []string{"保", "保守", "ﾎｼｭ", "u", "up", "sup", "ac", "ｱｸ", "田中", "acme"} {
			for _, sort := range []string{"", "-created", "title", "-name"} {
				if sort == "title" && !isDealSearch(q) || sort == "-name" && isDealSearch(q) {
					continue
				}
				sets++
				set := projections.TablesFor(p, fmt.Sprintf("w%d", sets))
				projectiontest.MustApply(t, db, p, set, nil)
				if _, err := db.ApplyBatch(ctx, p, set, events[:cut]); err != nil {
					t.Fatal(err)
				}
				matching := func() map[string]bool {
					ids := map[string]bool{}
					if isDealSearch(q) {
						for _, d := range allDeals(t, db, set, directory.DealParams{}) {
							if strings.Contains(directory.Normalize(d.Title), directory.Normalize(q)) {
								ids[d.DealID] = true
							}
						}
						return ids
					}
					for _, a := range allAccounts(t, db, set, directory.AccountParams{}) {
						if accountHolds(a, q) {
							ids[a.AccountID] = true
						}
					}
					return ids
				}
				// titles reads the deals' titles: a row whose own sort key changed between two
				// pages may be shown twice or skipped (the README says so).
				titles := func() map[string]string {
					m := map[string]string{}
					for _, d := range allDeals(t, db, set, directory.DealParams{}) {
						m[d.DealID] = d.Title
					}
					return m
				}
				first, firstTitles := matching(), titles()
				seen := map[string]bool{}
				cursor, next := "", cut
				for page := 0; ; page++ {
					ids, total, nextCursor := askPage(t, db, set, q, sort, cursor)
					if want := len(matching()); total != int64(want) {
						t.Errorf("q=%q sort=%q page %d: total %d, %d match", q, sort, page, total, want)
					}
					for _, id := range ids {
						if seen[id] {
							t.Errorf("q=%q sort=%q page %d: %s shown again", q, sort, page, id)
						}
						seen[id] = true
					}
					if nextCursor == "" {
						break
					}
					cursor = nextCursor
					for range 4 {
						if next < len(events) {
							if _, err := db.Apply(ctx, p, set, []eventstore.Event{events[next]}); err != nil {
								t.Fatal(err)
							}
							next++
						}
					}
				}
				lastTitles := titles()
				for id := range matching() {
					if sort == "title" && firstTitles[id] != lastTitles[id] {
						continue
					}
					if first[id] && !seen[id] {
						t.Errorf("q=%q sort=%q: %s matched from the first page to the last and was not shown", q, sort, id)
					}
				}
			}
		}
	})
}

// TestPostingsEqualGrams checks the postings the fold keeps for each list against the grams
// of its rows' texts, computed here from what the lists show: one posting per distinct
// character and pair of adjacent characters of each field (normalised), with the row's key
// in the list's default sort, and their number per gram (”: the rows listed).
func TestPostingsEqualGrams(t *testing.T) {
	events, _ := listsHistory(t)
	p := directory.Projection()
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		ctx := context.Background()
		set := projections.TablesFor(p, "")
		projectiontest.MustApply(t, db, p, set, nil)
		for _, e := range events {
			if _, err := db.Apply(ctx, p, set, []eventstore.Event{e}); err != nil {
				t.Fatalf("apply %d: %v", e.Position, err)
			}
		}
		var deals, accounts, contacts, dealTrigrams, accountTrigrams, contactTrigrams []string
		for _, d := range allDeals(t, db, set, directory.DealParams{}) {
			deals = append(deals, postingsOf(fmt.Sprint(d.OpenedAt.UnixMicro()), d.DealID, d.Title)...)
			dealTrigrams = append(dealTrigrams, trigramsOf(d.Title)...)
		}
		for _, a := range allAccounts(t, db, set, directory.AccountParams{}) {
			accounts = append(accounts, postingsOf(directory.Normalize(a.Name), a.AccountID, a.Name, a.Domain, a.Industry)...)
			accountTrigrams = append(accountTrigrams, trigramsOf(a.Name, a.Domain, a.Industry)...)
		}
		for _, c := range allContacts(t, db, set, directory.ContactParams{}) {
			contacts = append(contacts, postingsOf(directory.Normalize(c.Name), c.ContactID, c.Name, c.Email, c.Phone, c.Company)...)
			contactTrigrams = append(contactTrigrams, trigramsOf(c.Name, c.Email, c.Phone, c.Company)...)
		}
		for _, l := range []struct {
			postings, counts, sort, id string
			want, trigrams             []string
		}{
			{"deal_grams", "deal_gram_counts", "opened_at", "deal_id", deals, dealTrigrams},
			{"account_grams", "account_gram_counts", "sort_name", "account_id", accounts, accountTrigrams},
			{"contact_grams", "gram_counts", "sort_name", "contact_id", contacts, contactTrigrams},
		} {
			got := column(t, db, "SELECT gram || '|' || "+l.sort+" || '|' || "+l.id+" FROM "+set.Name(l.postings))
			if want := slices.Sorted(slices.Values(l.want)); !slices.Equal(got, want) {
				t.Errorf("%s: %d postings, %d grams of the rows listed:\n%v\n%v", l.postings, len(got), len(want), got, want)
			}
			counts := map[string]int{"": 0}
			for _, g := range l.want {
				counts[strings.SplitN(g, "|", 2)[0]]++
			}
			for _, g := range l.trigrams {
				counts[g]++
			}
			counts[""] = len(idsOf(l.want))
			var want []string
			for g, n := range counts {
				want = append(want, fmt.Sprintf("%s|%d", g, n))
			}
			slices.Sort(want)
			got = column(t, db, "SELECT gram || '|' || matches FROM "+set.Name(l.counts)+" WHERE matches <> 0")
			if !slices.Equal(got, want) {
				t.Errorf("%s: counts %v, the rows listed: %v", l.counts, got, want)
			}
		}
	})
}

// postingsOf is "gram|sort key|id" for every distinct gram of the fields, normalised.
func postingsOf(sortKey, id string, fields ...string) []string {
	var grams []string
	for _, f := range fields {
		r := []rune(directory.Normalize(f))
		for i := range r {
			grams = append(grams, string(r[i]))
			if i > 0 {
				grams = append(grams, string(r[i-1:i+1]))
			}
		}
	}
	slices.Sort(grams)
	var out []string
	for _, g := range slices.Compact(grams) {
		out = append(out, g+"|"+sortKey+"|"+id)
	}
	return out
}

// trigramsOf is the distinct runs of three characters of the fields of one row, normalised.
func trigramsOf(fields ...string) []string {
	var grams []string
	for _, f := range fields {
		r := []rune(directory.Normalize(f))
		for i := 2; i < len(r); i++ {
			grams = append(grams, string(r[i-2:i+1]))
		}
	}
	slices.Sort(grams)
	return slices.Compact(grams)
}

// idsOf is the distinct ids of postings.
func idsOf(postings []string) map[string]bool {
	ids := map[string]bool{}
	for _, p := range postings {
		parts := strings.Split(p, "|")
		ids[parts[len(parts)-1]] = true
	}
	return ids
}

// column reads the one column of stmt's rows, sorted.
func column(t *testing.T, db *projections.DB, stmt string) []string {
	t.Helper()
	rows, err := db.SQL.QueryContext(context.Background(), stmt)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// isDealSearch tells the searches TestListsPagingUnderWrites asks of the deals list (the
// others of the accounts list).
func isDealSearch(q string) bool {
	return !slices.Contains([]string{"ac", "ｱｸ", "田中", "acme"}, q)
}

// askPage asks one page of three rows of the deals or the accounts list.
func askPage(t *testing.T, db *projections.DB, set projections.Tables, q, sort, cursor string) (ids []string, total int64, next string) {
	t.Helper()
	ctx := context.Background()
	if isDealSearch(q) {
		a, err := directory.QueryDeals(ctx, db, set, directory.DealParams{Q: q, Sort: sort, Limit: 3, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range a.Deals {
			ids = append(ids, d.DealID)
		}
		return ids, a.Total, a.NextCursor
	}
	a, err := directory.QueryAccounts(ctx, db, set, directory.AccountParams{Q: q, Sort: sort, Limit: 3, Cursor: cursor})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range a.Accounts {
		ids = append(ids, r.AccountID)
	}
	return ids, a.Total, a.NextCursor
}

// accountHolds is the substring match of q in an account's name, domain or industry, normalised.
func accountHolds(a directory.AccountEntry, q string) bool {
	q = directory.Normalize(q)
	for _, f := range []string{a.Name, a.Domain, a.Industry} {
		if strings.Contains(directory.Normalize(f), q) {
			return true
		}
	}
	return false
}

// allDeals pages through the deals list to its end.
func allDeals(t *testing.T, db *projections.DB, set projections.Tables, p directory.DealParams) []directory.DealEntry {
	t.Helper()
	all, _ := pageDeals(t, db, set, p)
	return all
}

// allAccounts pages through the accounts list to its end.
func allAccounts(t *testing.T, db *projections.DB, set projections.Tables, p directory.AccountParams) []directory.AccountEntry {
	t.Helper()
	all, _ := pageAccounts(t, db, set, p)
	return all
}

// dealIDs pages through a deals list and returns the ids in order and its first page's total.
func dealIDs(t *testing.T, db *projections.DB, set projections.Tables, p directory.DealParams) ([]string, int64) {
	t.Helper()
	all, total := pageDeals(t, db, set, p)
	ids := []string{}
	for _, d := range all {
		ids = append(ids, d.DealID)
	}
	return ids, total
}

// accountIDs pages through an accounts list and returns the ids in order and its first
// page's total.
func accountIDs(t *testing.T, db *projections.DB, set projections.Tables, p directory.AccountParams) ([]string, int64) {
	t.Helper()
	all, total := pageAccounts(t, db, set, p)
	ids := []string{}
	for _, a := range all {
		ids = append(ids, a.AccountID)
	}
	return ids, total
}

// pageDeals pages through a deals list: its rows in order and its first page's total.
func pageDeals(t *testing.T, db *projections.DB, set projections.Tables, p directory.DealParams) ([]directory.DealEntry, int64) {
	t.Helper()
	return pageAll(t, p.Cursor, func(cursor string) ([]directory.DealEntry, string, int64, error) {
		p.Cursor = cursor
		a, err := directory.QueryDeals(context.Background(), db, set, p)
		return a.Deals, a.NextCursor, a.Total, err
	})
}

// pageAccounts pages through an accounts list: its rows in order and its first page's total.
func pageAccounts(t *testing.T, db *projections.DB, set projections.Tables, p directory.AccountParams) ([]directory.AccountEntry, int64) {
	t.Helper()
	return pageAll(t, p.Cursor, func(cursor string) ([]directory.AccountEntry, string, int64, error) {
		p.Cursor = cursor
		a, err := directory.QueryAccounts(context.Background(), db, set, p)
		return a.Accounts, a.NextCursor, a.Total, err
	})
}
