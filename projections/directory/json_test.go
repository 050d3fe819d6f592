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
