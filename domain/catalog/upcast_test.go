package catalog_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/catalog"
	"github.com/eventcrm/crm/domain/contact"
)

// upcast applies the catalog's upcasters to stored JSON until its type has none.
func upcast(t *testing.T, typ string, data []byte) (string, []byte) {
	t.Helper()
	by := map[string]catalog.Upcaster{}
	for _, u := range catalog.Upcasters() {
		by[u.From] = u
	}
	for u, ok := by[typ]; ok; u, ok = by[typ] {
		var err error
		if data, err = u.Up(data); err != nil {
			t.Fatalf("upcast %s: %v", typ, err)
		}
		typ = u.To
	}
	return typ, data
}

// The golden JSON of v1 stays frozen (testdata/v1), and reads as v2 with the whole v1 name as
// the family name.
func TestV1EventsReadAsV2(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file   string
		sample domain.Event
		want   domain.Event
	}{
		{"contact.created.v1.json",
			&contact.CreatedV1{ContactID: "c-0001", Name: "田中 愛子", Email: "aiko@tanaka.example", Phone: "+81 3-1234-5678",
				Company: "Tanaka Shoji", Title: "Head of Purchasing", Channel: contact.ChannelExhibition, Owner: "alice", Segment: "smb"},
			&contact.Created{ContactID: "c-0001", Name: contact.PersonName{Family: "田中 愛子"}, Email: "aiko@tanaka.example", Phone: "+81 3-1234-5678",
				Company: "Tanaka Shoji", Title: "Head of Purchasing", Channel: contact.ChannelExhibition, Owner: "alice", Segment: "smb"}},
		{"contact.details_changed.v1.json",
			&contact.DetailsChangedV1{ContactID: "c-0001", Name: ptr("Aiko Tanaka"), Email: ptr("a.tanaka@tanaka.example"), Phone: ptr("03-1234-0000"),
				Company: ptr("Tanaka Holdings"), Title: ptr("CFO"), Segment: ptr("enterprise")},
			&contact.DetailsChanged{ContactID: "c-0001", Name: &contact.PersonName{Family: "Aiko Tanaka"}, Email: ptr("a.tanaka@tanaka.example"),
				Phone: ptr("03-1234-0000"), Company: ptr("Tanaka Holdings"), Title: ptr("CFO"), Segment: ptr("enterprise")}},
	}
	registry := catalog.Registry()
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			golden, err := os.ReadFile(filepath.Join("testdata", "v1", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			encoded, _ := json.Marshal(tt.sample)
			if !bytes.Equal(bytes.TrimSpace(golden), encoded) {
				t.Fatalf("v1 golden JSON changed:\n got %s\nwant %s", encoded, golden)
			}
			typ, data := upcast(t, tt.sample.EventType(), golden)
			if typ != tt.want.EventType() {
				t.Fatalf("read as %s, want %s", typ, tt.want.EventType())
			}
			got, err := registry.Decode(typ, data)
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("read as %+v (%v), want %+v", got, err, tt.want)
			}
		})
	}
	t.Run("a v1 event without its name (erased) reads without it", func(t *testing.T) {
		typ, data := upcast(t, contact.TypeCreatedV1, []byte(`{"contact_id":"c-1","channel":"seminar"}`))
		got, err := registry.Decode(typ, data)
		if err != nil || got.(*contact.Created).Name != (contact.PersonName{}) {
			t.Errorf("%+v, %v", got, err)
		}
	})
}
