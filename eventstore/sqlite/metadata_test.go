package sqlite

import (
	"encoding/json"
	"testing"

	"github.com/eventcrm/crm/eventstore"
)

func TestDecodeMetadata(t *testing.T) {
	tests := []eventstore.Metadata{
		{},
		{Actor: "user:alice"},
		{Actor: "user:alice", CommandID: "c1", CorrelationID: "k1", CausationID: "e0", Reason: "import ✓", RequestHash: "sha256:ab"},
		{Reason: `quote " backslash \ newline` + "\n"}, // escapes: the encoding/json path
		{Reason: "<html> & ünïcode"},                   // json.Marshal escapes <, > and &
	}
	for _, want := range tests {
		b, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		var got eventstore.Metadata
		if err := decodeMetadata(b, &got); err != nil || got != want {
			t.Errorf("decode %s = %+v, %v; want %+v", b, got, err, want)
		}
	}
	var m eventstore.Metadata
	if err := decodeMetadata([]byte(`{"actor":`), &m); err == nil {
		t.Errorf("decode of truncated JSON succeeded")
	}
}

// FuzzScanMetadata checks that whatever the scanner accepts, encoding/json reads the same way.
func FuzzScanMetadata(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"actor":"a"}`, `{"actor":"a","reason":"r"}`, `{"actor":"a",}`, `{"actor":"a"}x`,
		`{"actor":"\u00e9"}`, `{"headers":"{}"}`, `{"actor":"é"}`, "{\"actor\":\"\xff\"}", `{"actor":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast eventstore.Metadata
		if !scanMetadata(b, &fast) {
			return
		}
		var slow eventstore.Metadata
		if err := json.Unmarshal(b, &slow); err != nil {
			t.Fatalf("scanner accepted %q, encoding/json refuses it: %v", b, err)
		}
		if fast != slow {
			t.Fatalf("scan %q = %+v, encoding/json %+v", b, fast, slow)
		}
	})
}
