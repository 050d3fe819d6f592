package postgres

import (
	"encoding/json"
	"testing"

	"github.com/eventcrm/crm/eventstore"
)

func TestDecodeMetadata(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want eventstore.Metadata
		fast bool // decoded without encoding/json
	}{
		{"Empty", `{}`, eventstore.Metadata{}, true},
		{"All", `{"actor":"user:a","command_id":"c","correlation_id":"r","causation_id":"s","reason":"why ✓","request_hash":"h"}`,
			eventstore.Metadata{Actor: "user:a", CommandID: "c", CorrelationID: "r", CausationID: "s", Reason: "why ✓", RequestHash: "h"}, true},
		{"Escaped", `{"reason":"say \"hi\"\n"}`, eventstore.Metadata{Reason: "say \"hi\"\n"}, false},
		{"Spaces", `{ "actor" : "a" }`, eventstore.Metadata{Actor: "a"}, false},
		{"UnknownKey", `{"actor":"a","future":"x"}`, eventstore.Metadata{Actor: "a"}, false},
		{"NotAString", `{"actor":1}`, eventstore.Metadata{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var fast eventstore.Metadata
			if ok := fastMetadata(tc.in, &fast); ok != tc.fast {
				t.Errorf("fast path taken = %v, want %v", ok, tc.fast)
			}
			var got eventstore.Metadata
			err := decodeMetadata(tc.in, &got)
			if tc.name == "NotAString" {
				if err == nil {
					t.Errorf("decode %s: no error", tc.in)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("decode %s = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
		})
	}
}

// The fast path must agree with encoding/json on everything the store writes.
func FuzzDecodeMetadata(f *testing.F) {
	f.Add("user:a", "c", "r", "s", "why", "h")
	f.Add("", "", "", "", "", "")
	f.Add("a\"b", "<&>", "\x00", "é", "\xff", `\`)
	f.Fuzz(func(t *testing.T, actor, command, correlation, causation, reason, hash string) {
		in := eventstore.Metadata{Actor: actor, CommandID: command, CorrelationID: correlation,
			CausationID: causation, Reason: reason, RequestHash: hash}
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		var want, got eventstore.Metadata
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatal(err)
		}
		if err := decodeMetadata(string(b), &got); err != nil || got != want {
			t.Fatalf("decode %s = %+v, %v; want %+v", b, got, err, want)
		}
	})
}
