package directory_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/directory"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// benchContacts is the size of the directory of BenchmarkDirectory
// (CRM_BENCH_DIRECTORY_CONTACTS, default 100,000).
func benchContacts(b *testing.B) int {
	if v := os.Getenv("CRM_BENCH_DIRECTORY_CONTACTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("CRM_BENCH_DIRECTORY_CONTACTS=%q is not a count", v)
		}
		return n
	}
	return 100_000
}

var (
	familyKanji = []string{"佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤"}
	familyKana  = []string{"サトウ", "スズキ", "タカハシ", "タナカ", "イトウ", "ワタナベ", "ヤマモト", "ナカムラ", "コバヤシ", "カトウ"}
	givenKanji  = []string{"花子", "太郎", "一郎", "美咲", "翔太", "陽菜", "蓮", "結衣", "大輝", "さくら", "健", "愛"}
	latin       = []string{"Sato", "Suzuki", "Smith", "Jones", "Garcia", "Muller", "Rossi", "Dubois", "Kim", "Nguyen", "Brown", "Lee"}
	companies   = []string{"田中商事", "ｱｸﾒ", "Acme Corp", "Globex", "Initech", "山本製作所", "Umbrella", "Hooli"}
)

// directoryEvents creates n contacts, a third with Japanese names in kanji, a third in kana
// (half of them half-width), a third Latin, with emails, phones and companies.
func directoryEvents(n int) []eventstore.Event {
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	events := make([]eventstore.Event, n)
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
	return events
}

// BenchmarkDirectory answers contacts-directory questions over a directory of
// benchContacts contacts: searches of 2 and 3 characters (Japanese, half-width kana,
// Latin), a filtered list and the first page unfiltered, each with its exact total. It
// reports the latency's p50 and p99 over the iterations.
func BenchmarkDirectory(b *testing.B) {
	questions := []struct {
		name   string
		params directory.ContactParams
	}{
		{"q=2 kanji", directory.ContactParams{Q: "佐藤"}},
		{"q=3 kanji", directory.ContactParams{Q: "佐藤 花"}},
		{"q=3 half-width kana", directory.ContactParams{Q: "ｻﾄｳ"}},
		{"q=2 latin", directory.ContactParams{Q: "sm"}},
		{"q=3 latin", directory.ContactParams{Q: "smi"}},
		{"q=email", directory.ContactParams{Q: "user4242@"}},
		{"owner, by last activity", directory.ContactParams{Owner: "rep-7", Sort: "-last_activity"}},
		{"first page", directory.ContactParams{}},
	}
	n := benchContacts(b)
	// Written as contact.created.v1, read as the newest version, as a store read through the codec gives them.
	events := projectiontest.Upcast(b, directoryEvents(n))
	p := directory.Projection()
	for _, d := range []projections.Dialect{projections.SQLite, projections.Postgres} {
		b.Run(d.String(), func(b *testing.B) {
			db := projectiontest.Open(b, d)
			tables := projections.TablesFor(p, "")
			ctx := context.Background()
			if err := db.EnsureSchema(ctx, p, tables); err != nil {
				b.Fatal(err)
			}
			for i := 0; i < len(events); i += 10_000 {
				if _, err := db.ApplyBatch(ctx, p, tables, events[i:min(i+10_000, len(events))]); err != nil {
					b.Fatal(err)
				}
			}
			if d == projections.Postgres {
				// What autovacuum does after a load: statistics, and the visibility map that
				// lets the search scan an index without the table.
				if _, err := db.SQL.ExecContext(ctx, "VACUUM ANALYZE"); err != nil {
					b.Fatal(err)
				}
			}
			for _, q := range questions {
				b.Run(q.name, func(b *testing.B) {
					lat := make([]time.Duration, 0, b.N)
					var total int64
					for b.Loop() {
						start := time.Now()
						a, err := directory.QueryContacts(ctx, db, tables, q.params)
						if err != nil {
							b.Fatal(err)
						}
						lat = append(lat, time.Since(start))
						total = a.Total
					}
					slices.Sort(lat)
					b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
					b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
					b.ReportMetric(float64(total), "total")
				})
			}
		})
	}
}
