package catalog_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/catalog"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/domain/deal"
)

// decodeBoth decodes data as the event name with encoding/json and with domain.DecodeData and
// fails t unless both fail or both give the same value: of valid JSON, which is all that is
// stored. Invalid JSON must fail unless anyInvalid (a fuzzed input may be invalid in a member
// that goccy/go-json skips).
func decodeBoth(t *testing.T, name string, data []byte, anyInvalid bool) {
	t.Helper()
	registry := catalog.Registry()
	want, err := registry.New(name)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := registry.New(name)
	wantErr := json.Unmarshal(data, want)
	gotErr := domain.DecodeData(data, got)
	if !json.Valid(data) {
		// Never stored (see domain.DecodeData): of the invalid JSON of the cases below,
		// DecodeData refuses what is invalid where it reads, not in a member it skips.
		if gotErr == nil && !anyInvalid {
			t.Errorf("%s %s: invalid JSON read without an error", name, data)
		}
		return
	}
	switch {
	case (wantErr == nil) != (gotErr == nil):
		t.Errorf("%s %s: encoding/json says %v, DecodeData says %v", name, data, wantErr, gotErr)
	case wantErr == nil && !reflect.DeepEqual(got, want):
		t.Errorf("%s %s: DecodeData gives %#v; encoding/json gives %#v", name, data, got, want)
	}
}

// TestDecodeDataAgreesWithEncodingJSON: the JSON every event type is stored as (its golden
// file) decodes to the same value with DecodeData as with encoding/json, and so does JSON
// written otherwise than Encode writes it.
func TestDecodeDataAgreesWithEncodingJSON(t *testing.T) {
	t.Parallel()
	golden, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(golden) < len(catalog.Registry().Names()) {
		t.Fatalf("golden files: %v (%d)", err, len(golden))
	}
	for _, path := range golden {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		decodeBoth(t, strings.TrimSuffix(filepath.Base(path), ".json"), data, false)
	}
	for _, c := range writtenOtherwise() {
		t.Run(c.name, func(t *testing.T) { decodeBoth(t, c.event, []byte(c.data), false) })
	}
}

// FuzzDecodeDataAgreesWithEncodingJSON decodes any data as every event type with both.
func FuzzDecodeDataAgreesWithEncodingJSON(f *testing.F) {
	golden, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, path := range golden {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, c := range writtenOtherwise() {
		f.Add([]byte(c.data))
	}
	names := catalog.Registry().Names()
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, name := range names {
			decodeBoth(t, name, data, true)
		}
	})
}

// writtenOtherwise is JSON written otherwise than Encode writes it, as the event named.
func writtenOtherwise() []writtenCase {
	return []writtenCase{
		{"members in another case", contact.TypePhaseChanged, `{"CONTACT_ID":"c-1","From":"lead","to":"prospect","Rule":"manual"}`},
		{"unknown members", contact.TypeTouchpointRecorded, `{"contact_id":"c-1","touchpoint_id":"t","kind":"call","phase":"lead","extra":{"a":[1,2,{"b":null}]},"n":1e300}`},
		{"null members", contact.TypeTouchpointRecorded, `{"contact_id":null,"touchpoint_id":"t","kind":null,"note":null,"phase":"lead"}`},
		{"escapes and Japanese text", contact.TypeTouchpointRecorded, `{"contact_id":"c\u002d1","touchpoint_id":"\t\"/","kind":"call","note":"\u3042\ud83d\ude00 商談","phase":"lead"}`},
		{"a lone surrogate", contact.TypeTouchpointRecorded, `{"contact_id":"c-1","touchpoint_id":"t","kind":"call","note":"\ud83d!","phase":"lead"}`},
		{"invalid UTF-8", contact.TypeTouchpointRecorded, "{\"contact_id\":\"c-1\",\"touchpoint_id\":\"t\",\"kind\":\"call\",\"note\":\"\xff\xfe\xe3\x81\",\"phase\":\"lead\"}"},
		{"a member name escaped", deal.TypeStageChanged, `{"\u0064eal_id":"d-1","from":"qualification","to":"proposal"}`},
		{"an escaped name shorter than a field", deal.TypeStageChanged, `{"deal_id":"d-1","from":"qualification","\u0074":"proposal"}`},
		{"an escaped name a prefix of a field", contact.TypeNoteAdded, `{"contact_id":"c-1","note_id":"n","\u0074e":"x","author":"a"}`},
		{"a name with the Kelvin sign", contact.TypeTouchpointRecorded, "{\"contact_id\":\"c-1\",\"touchpoint_id\":\"t\",\"\u212aind\":\"call\",\"phase\":\"lead\"}"},
		{"a name with a long s", deal.TypeLost, "{\"deal_id\":\"d-1\",\"rea\u017fon\":\"price\"}"},
		{"white space", deal.TypeStageChanged, " {\n\t\"deal_id\" : \"d-1\" ,\r\n \"from\":\"qualification\", \"to\" : \"proposal\" } \n"},
		{"a member twice", deal.TypeStageChanged, `{"deal_id":"d-1","from":"qualification","to":"proposal","to":"negotiation"}`},
		{"largest amount", deal.TypeOpened, `{"deal_id":"d-1","contact_id":"c-1","title":"t","amount":{"amount":9223372036854775807,"currency":"JPY"},"owner":"o","stage":"lead"}`},
		{"amount too large", deal.TypeOpened, `{"deal_id":"d-1","contact_id":"c-1","title":"t","amount":{"amount":9223372036854775808,"currency":"JPY"},"owner":"o","stage":"lead"}`},
		{"amount with an exponent", deal.TypeOpened, `{"deal_id":"d-1","contact_id":"c-1","title":"t","amount":{"amount":1e3,"currency":"JPY"},"owner":"o","stage":"lead"}`},
		{"amount of minus zero", deal.TypeOpened, `{"deal_id":"d-1","contact_id":"c-1","title":"t","amount":{"amount":-0,"currency":"JPY"},"owner":"o","stage":"lead"}`},
		{"smallest amount", deal.TypeOpened, `{"deal_id":"d-1","contact_id":"c-1","title":"t","amount":{"amount":-9223372036854775808,"currency":"JPY"},"owner":"o","stage":"lead"}`},
		{"amount too small", deal.TypeOpened, `{"deal_id":"d-1","contact_id":"c-1","title":"t","amount":{"amount":-9223372036854775809,"currency":"JPY"},"owner":"o","stage":"lead"}`},
		{"amount far too large", deal.TypeOpened, `{"deal_id":"d-1","contact_id":"c-1","title":"t","amount":{"amount":123456789012345678901234567890,"currency":"JPY"},"owner":"o","stage":"lead"}`},
		{"amount with a fraction", deal.TypeOpened, `{"deal_id":"d-1","contact_id":"c-1","title":"t","amount":{"amount":1.5,"currency":"JPY"},"owner":"o","stage":"lead"}`},
		{"amount as a string", deal.TypeOpened, `{"deal_id":"d-1","contact_id":"c-1","title":"t","amount":{"amount":"100","currency":"JPY"},"owner":"o","stage":"lead"}`},
		{"text as a number", contact.TypePhaseChanged, `{"contact_id":1,"from":"lead","to":"prospect"}`},
		{"truncated", contact.TypePhaseChanged, `{"contact_id":"c-1","from":"lead"`},
		{"cut short after an escape", contact.TypePhaseChanged, `{"\p`},
		{"an invalid escape in a name", contact.TypePhaseChanged, `{"\p":"c-1"}`},
		{"an invalid escape in a text", contact.TypePhaseChanged, `{"contact_id":"\p"}`},
		{"trailing data", contact.TypePhaseChanged, `{"contact_id":"c-1"} {}`},
		{"not an object", contact.TypePhaseChanged, `["c-1"]`},
		{"empty", contact.TypePhaseChanged, ``},
		{"null", contact.TypePhaseChanged, `null`},
		{"a name of v2", contact.TypeCreated, `{"contact_id":"c-1","name":{"family":"山田","given":"太郎","family_kana":"ヤマダ","given_kana":"タロウ"},"channel":"web","owner":"o"}`},
		{"a name of v1 read as v2", contact.TypeCreated, `{"contact_id":"c-1","name":"山田 太郎","channel":"web","owner":"o"}`},
	}
}

type writtenCase struct {
	name, event, data string
}
