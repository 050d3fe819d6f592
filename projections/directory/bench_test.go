package directory_test

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/directory"
	"github.com/eventcrm/crm/projections/projectiontest"
)

var (
	familyKanji = []string{"佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤"}
	familyKana  = []string{"サトウ", "スズキ", "タカハシ", "タナカ", "イトウ", "ワタナベ", "ヤマモト", "ナカムラ", "コバヤシ", "カトウ"}
	givenKanji  = []string{"花子", "太郎", "一郎", "美咲", "翔太", "陽菜", "蓮", "結衣", "大輝", "さくら", "健", "愛"}
	latin       = []string{"Sato", "Suzuki", "Smith", "Jones", "Garcia", "Muller", "Rossi", "Dubois", "Kim", "Nguyen", "Brown", "Lee"}
	companies   = []string{"田中商事", "ｱｸﾒ", "Acme Corp", "Globex", "Initech", "山本製作所", "Umbrella", "Hooli"}
)

// directoryEvents creates n contacts, a third with Japanese names in kanji, a third in kana
// (half of them half-width), a third Latin, with emails, phones and companies; then n/50
// accounts and n/2 deals (see dealEvents).
func directoryEvents(n int) []eventstore.Event {
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	events := make([]eventstore.Event, n, n+n/50+n/2)
	for i := range n {
		var name string
		switch i % 3 {
		case 0:
			name = familyKanji[i/3%10] + " " + givenKanji[i/7%12]
		case 1:
			name = familyKana[i/3%10] + " " + strconv.Itoa(i)
		default:
			name = latin[i/3%12] + " " + latin[i/11%12] + strconv.Itoa(i)
		}
		data := fmt.Sprintf(`{"contact_id":"c%07d","name":%q,"email":"user%d@example.com","phone":"+81-3-%04d-%04d","company":%q,"channel":"web_form","owner":"rep-%d"}`,
			i, name, i, i%10000, i/10000, companies[i%len(companies)], i%20)
		events[i] = eventstore.Event{ID: fmt.Sprintf("e%d", i), Stream: fmt.Sprintf("contact-c%07d", i), Version: 1,
			Position: int64(i + 1), Type: "contact.created.v1", OccurredAt: start.Add(time.Duration(i) * time.Minute),
			RecordedAt: start, Data: []byte(data)}
	}
	return append(events, dealEvents(n, start, int64(n))...)
}

var (
	accountNames = []string{"田中商事", "ｱｸﾒ商会", "Acme", "Globex", "山本製作所", "Smith & Co", "鈴木工業", "Initech"}
	dealKinds    = []string{"新規導入", "保守契約", "追加発注", "更新", "Renewal", "Upgrade", "Support", "Smart licence"}
)

// dealEvents creates, after n contacts, n/50 accounts (Japanese and Latin names) and n/2
// deals, one for every other contact, titled with its company and a kind of deal (Japanese
// or Latin), in 4 of 5 cases open, owned by 20 owners.
func dealEvents(n int, start time.Time, pos int64) []eventstore.Event {
	var events []eventstore.Event
	add := func(stream, typ, data string) {
		pos++
		events = append(events, eventstore.Event{ID: fmt.Sprintf("e%d", pos), Stream: stream, Version: 1, Position: pos,
			Type: typ, OccurredAt: start.Add(time.Duration(pos) * time.Minute), RecordedAt: start, Data: []byte(data)})
	}
	for i := range n / 50 {
		add(fmt.Sprintf("account-a%05d", i), "account.created.v1",
			fmt.Sprintf(`{"account_id":"a%05d","name":"%s %d","domain":"a%d.example.com","industry":"製造"}`, i, accountNames[i%len(accountNames)], i, i))
	}
	for i := range n / 2 {
		c := 2 * i
		title := companies[c%len(companies)] + " " + dealKinds[i/3%len(dealKinds)] + " " + strconv.Itoa(i)
		add(fmt.Sprintf("deal-d%07d", i), "deal.opened.v1",
			fmt.Sprintf(`{"deal_id":"d%07d","contact_id":"c%07d","title":%q,"amount":{"amount":%d,"currency":"JPY"},"owner":"rep-%d","stage":"qualification"}`,
				i, c, title, 1000*(i%97+1), i%20))
		if i%5 == 4 {
			add(fmt.Sprintf("deal-d%07d", i), "deal.lost.v1", fmt.Sprintf(`{"deal_id":"d%07d","contact_id":"c%07d","from_stage":"qualification","reason":"price"}`, i, c))
		}
	}
	return events
}

// question is one question of BenchmarkDirectory: a page of one of the three lists.
type question struct {
	name     string
	contacts *directory.ContactParams
	deals    *directory.DealParams
	accounts *directory.AccountParams
	many     bool // asked by 100 clients too
}

// ask answers q and returns its total.
func (q question) ask(ctx context.Context, db *projections.DB, tables projections.Tables) (int64, error) {
	switch {
	case q.deals != nil:
		a, err := directory.QueryDeals(ctx, db, tables, *q.deals)
		return a.Total, err
	case q.accounts != nil:
		a, err := directory.QueryAccounts(ctx, db, tables, *q.accounts)
		return a.Total, err
	}
	a, err := directory.QueryContacts(ctx, db, tables, *q.contacts)
	return a.Total, err
}

// BenchmarkDirectory answers questions of the three lists over a directory of n contacts
// (CRM_BENCH_DIRECTORY_CONTACTS, default 100,000), n/2 deals and n/50 accounts: searches of 2 and 3
// characters (Japanese, half-width kana, Latin), filtered lists and the first page unfiltered, each
// with its exact total, from 1 client and from 100 at once, with no writes and while 50 contacts a
// second are created or renamed live. It reports the latency's p50 and p99 over the requests: with
// 1 client b.N requests, with 100 a round of 100 requests per 10 iterations (at least one).
func BenchmarkDirectory(b *testing.B) {
	c := func(p directory.ContactParams) *directory.ContactParams { return &p }
	d := func(p directory.DealParams) *directory.DealParams { return &p }
	a := func(p directory.AccountParams) *directory.AccountParams { return &p }
	questions := []question{
		{name: "q=2 kanji", contacts: c(directory.ContactParams{Q: "佐藤"}), many: true},
		{name: "q=4 kanji and space", contacts: c(directory.ContactParams{Q: "佐藤 花"}), many: true},
		{name: "q=3 half-width kana", contacts: c(directory.ContactParams{Q: "ｻﾄｳ"}), many: true},
		{name: "q=2 latin", contacts: c(directory.ContactParams{Q: "sm"}), many: true},
		{name: "q=3 latin", contacts: c(directory.ContactParams{Q: "smi"}), many: true},
		{name: "q=email", contacts: c(directory.ContactParams{Q: "user4242@"})},
		{name: "owner, by last activity", contacts: c(directory.ContactParams{Owner: "rep-7", Sort: "-last_activity"}), many: true},
		{name: "first page", contacts: c(directory.ContactParams{}), many: true},
		{name: "deals q=2 kanji", deals: d(directory.DealParams{Q: "保守"}), many: true},
		{name: "deals q=3 kanji", deals: d(directory.DealParams{Q: "保守契"}), many: true},
		{name: "deals q=2 latin", deals: d(directory.DealParams{Q: "up"}), many: true},
		{name: "deals q=3 latin", deals: d(directory.DealParams{Q: "upg"}), many: true},
		{name: "deals open, one owner", deals: d(directory.DealParams{Status: "open", Owner: "rep-3"}), many: true},
		{name: "deals one owner, by title", deals: d(directory.DealParams{Owner: "rep-3", Sort: "title"}), many: true},
		{name: "deals q=7 latin, by title", deals: d(directory.DealParams{Q: "upgrade", Sort: "title"}), many: true},
		{name: "accounts q=2 kanji", accounts: a(directory.AccountParams{Q: "田中"}), many: true},
		{name: "accounts q=2 latin", accounts: a(directory.AccountParams{Q: "ac"}), many: true},
		{name: "accounts q=3 latin", accounts: a(directory.AccountParams{Q: "acm"}), many: true},
		{name: "accounts q=5 kanji, newest first", accounts: a(directory.AccountParams{Q: "山本製作所", Sort: "-created"}), many: true},
	}
	n := projectiontest.EnvCount(b, "CRM_BENCH_DIRECTORY_CONTACTS", 1, 100_000)
	// Written as contact.created.v1, read as the newest version, as a store read through the
	// codec gives them.
	events := projectiontest.Upcast(b, directoryEvents(n))
	p := directory.Projection()
	for _, d := range []projections.Dialect{projections.SQLite, projections.Postgres} {
		b.Run(d.String(), func(b *testing.B) {
			db, tables := projectiontest.Loaded(b, d, p, events, 10_000)
			next := int64(len(events))
			projectiontest.ForWrites(b, func(b *testing.B, writes bool) {
				for _, q := range questions {
					for _, clients := range []int{1, 100} {
						if clients > 1 && !q.many {
							continue
						}
						b.Run(fmt.Sprintf("%s/clients=%d", q.name, clients), func(b *testing.B) {
							if writes {
								defer writeContacts(b, db, p, tables, &next)()
							}
							benchQuestion(b, db, tables, q, clients)
						})
					}
				}
			})
		})
	}
}

// benchQuestion asks q from clients clients at once and reports the latency's p50 and p99
// and the total answered.
func benchQuestion(b *testing.B, db *projections.DB, tables projections.Tables, q question, clients int) {
	var total atomic.Int64
	projectiontest.Latency(b, clients, func(ctx context.Context) error {
		n, err := q.ask(ctx, db, tables)
		if err == nil {
			total.Store(n)
		}
		return err
	})
	b.ReportMetric(float64(total.Load()), "total")
}

// writeContacts applies, live, a new contact or a rename of an existing one every 20 ms (50
// a second) until stopped.
func writeContacts(b *testing.B, db *projections.DB, p projections.Projection, tables projections.Tables, next *int64) (stop func()) {
	return projectiontest.WriteLive(b, db, p, tables, 20*time.Millisecond, func() eventstore.Event {
		*next++
		i := *next
		e := eventstore.Event{ID: fmt.Sprintf("w%d", i), Position: i, OccurredAt: time.Now().UTC(), RecordedAt: time.Now().UTC()}
		if i%2 == 0 {
			e.Stream, e.Type = fmt.Sprintf("contact-w%07d", i), "contact.created.v2"
			e.Data = fmt.Appendf(nil, `{"contact_id":"w%07d","name":{"family":%q,"given":"新"},"email":"w%d@example.com","channel":"web_form","owner":"rep-1"}`,
				i, familyKanji[i%10], i)
		} else {
			id := fmt.Sprintf("c%07d", i%1000)
			e.Stream, e.Type = "contact-"+id, "contact.details_changed.v2"
			e.Data = fmt.Appendf(nil, `{"contact_id":%q,"name":{"family":%q,"given":"改"}}`, id, familyKana[i%10])
		}
		return e
	})
}
