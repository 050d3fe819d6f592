package directory_test

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/eventcrm/crm/projections/directory"
)

// A page of the directory appends exactly what encoding/json writes for it: texts that need
// escaping (HTML, control characters, bytes that are not UTF-8, U+2028), Japanese text,
// empty optional fields, no account, no activity, no channel opted out of.
func TestContactsAppendJSONIsEncodingJSON(t *testing.T) {
	at := time.Date(2024, 3, 1, 9, 30, 0, 123456000, time.UTC)
	later := at.Add(36 * time.Hour)
	texts := []string{"", "佐藤 花子", "ｻﾄｳ", `a "quoted" \ name`, "<b>&amp;</b>", "tab\there\nline\x00\x1f", "bad \xff\xfe utf-8",
		"line\u2028sep\u2029", "emoji 🙂", "\u007f", "plain@example.com"}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		b := make([]byte, r.IntN(12))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		texts = append(texts, string(b))
	}
	var entries []directory.ContactEntry
	for i, s := range texts {
		e := directory.ContactEntry{ContactID: s, Name: s, Phase: "lead", PhaseSince: at, Owner: s, Channel: "web_form",
			CreatedAt: at, OpenDeals: int64(i), OptedOut: []string{}}
		if i%2 == 0 {
			e.Email, e.Phone, e.Company, e.Segment = s, s, s, s
			e.Account = &directory.AccountRef{AccountID: "a1", Name: s}
			e.LastActivity = &later
			e.OptedOut = []string{"email", s}
		}
		if i%5 == 0 {
			e.OptedOut = nil
		}
		entries = append(entries, e)
	}
	for _, page := range []directory.Contacts{
		{Total: 0, Contacts: []directory.ContactEntry{}},
		{Total: 3},
		{Total: int64(len(entries)), Contacts: entries, NextCursor: "eyJzIjoibmFtZSJ9"},
		{Total: -1, Contacts: entries[:1], NextCursor: "<&>"},
	} {
		want, err := json.Marshal(page)
		if err != nil {
			t.Fatal(err)
		}
		got, err := page.AppendJSON([]byte("prefix"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, append([]byte("prefix"), want...)) {
			t.Errorf("AppendJSON:\n%s\nencoding/json:\n%s", got[len("prefix"):], want)
		}
	}
}

// BenchmarkContactsJSON writes a page of 50 contacts (Japanese and Latin names, an account,
// a channel opted out of for half of them) with encoding/json and with AppendJSON.
func BenchmarkContactsJSON(b *testing.B) {
	at := time.Date(2024, 3, 1, 9, 30, 0, 0, time.UTC)
	page := directory.Contacts{Total: 20_000, NextCursor: "eyJzIjoibmFtZSIsInQiOiJzYXRvIiwiaSI6ImMwMDAwMDUwIn0"}
	for i := range 50 {
		e := directory.ContactEntry{ContactID: "00000000-0000-4000-8000-0000000000" + string(rune('1'+i%9)) + "0",
			Name: []string{"佐藤 花子", "Smith Jones12"}[i%2], Email: "user@example.com", Phone: "+81-3-1234-5678",
			Company: "Acme Corp", Phase: "lead", PhaseSince: at, Owner: "rep-3", Channel: "web_form", CreatedAt: at,
			LastActivity: &at, OpenDeals: 2, OptedOut: []string{}}
		if i%2 == 0 {
			e.Account = &directory.AccountRef{AccountID: "a00001", Name: "田中商事"}
			e.OptedOut = []string{"email"}
		}
		page.Contacts = append(page.Contacts, e)
	}
	b.Run("encoding-json", func(b *testing.B) {
		var buf bytes.Buffer
		for b.Loop() {
			buf.Reset()
			if err := json.NewEncoder(&buf).Encode(page); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("append", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			var err error
			if buf, err = page.AppendJSON(buf[:0]); err != nil {
				b.Fatal(err)
			}
		}
	})
}
