package wmstore_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/wmstore"
)

func recordedEvent() eventstore.Event {
	return eventstore.Event{
		ID:       "0b9e2c4e-7c1f-4c55-9d0e-3b7f4f2d8a11",
		Stream:   "contact-42",
		Version:  7,
		Position: 1234,
		Type:     "contact.phase_changed.v1",
		Data:     []byte(`{"phase":"customer"}`),
		Metadata: eventstore.Metadata{
			Actor:         "user:ann",
			CommandID:     "cmd-1",
			CorrelationID: "corr-1",
			CausationID:   "cause-1",
			Reason:        "signed the contract",
			RequestHash:   "abc",
			Headers:       `{"tenant":"acme"}`,
		},
		OccurredAt: time.Date(2026, 3, 1, 9, 30, 0, 123456000, time.UTC),
		RecordedAt: time.Date(2026, 3, 1, 9, 30, 1, 654321000, time.UTC),
		PrevHash:   []byte{1, 2, 3},
		Hash:       []byte{4, 5, 6},
	}
}

func TestMessageCarriesTheEvent(t *testing.T) {
	e := recordedEvent()
	msg := wmstore.NewMessage(e)
	if msg.UUID != e.ID || string(msg.Payload) != string(e.Data) {
		t.Errorf("message %s %q, want %s %q", msg.UUID, msg.Payload, e.ID, e.Data)
	}
	want := message.Metadata{
		wmstore.KeyEventID:     e.ID,
		wmstore.KeyStream:      "contact-42",
		wmstore.KeyVersion:     "7",
		wmstore.KeyPosition:    "1234",
		wmstore.KeyType:        "contact.phase_changed.v1",
		wmstore.KeyOccurredAt:  "2026-03-01T09:30:00.123456Z",
		wmstore.KeyRecordedAt:  "2026-03-01T09:30:01.654321Z",
		wmstore.KeyPrevHash:    "010203",
		wmstore.KeyHash:        "040506",
		wmstore.KeyActor:       "user:ann",
		wmstore.KeyCommandID:   "cmd-1",
		"correlation_id":       "corr-1", // what Watermill's correlation middleware reads
		wmstore.KeyCausationID: "cause-1",
		wmstore.KeyReason:      "signed the contract",
		wmstore.KeyRequestHash: "abc",
		"tenant":               "acme",
	}
	if !reflect.DeepEqual(msg.Metadata, want) {
		t.Errorf("metadata\n got %v\nwant %v", msg.Metadata, want)
	}
}

func TestEventFromMessageRoundTrips(t *testing.T) {
	for _, tc := range []struct {
		name    string
		headers string
		uuid    string // of the delivered message
	}{
		{"NoHeaders", "", "0b9e2c4e-7c1f-4c55-9d0e-3b7f4f2d8a11"},
		{"Headers", `{"a":"1","tenant":"acme"}`, "0b9e2c4e-7c1f-4c55-9d0e-3b7f4f2d8a11"},
		{"DerivedID", `{"message_uuid":"m-1","tenant":"acme"}`, "m-1"},
		{"HeadersNotObject", `["x"]`, "0b9e2c4e-7c1f-4c55-9d0e-3b7f4f2d8a11"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := recordedEvent()
			e.Metadata.Headers = tc.headers
			msg := wmstore.NewMessage(e)
			if msg.UUID != tc.uuid {
				t.Errorf("UUID %s, want %s", msg.UUID, tc.uuid)
			}
			got, err := wmstore.EventFromMessage(msg)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, e) {
				t.Errorf("event\n got %+v\nwant %+v", got, e)
			}
			if got.Metadata.Headers != "" && !reflect.DeepEqual(eventstore.ChainHash(e.PrevHash, got), eventstore.ChainHash(e.PrevHash, e)) {
				t.Error("round trip changes the chain hash")
			}
		})
	}
}

func TestEventFromMessageNamesWhatIsMissing(t *testing.T) {
	msg := message.NewMessage("m-1", []byte("x"))
	msg.Metadata.Set(wmstore.KeyVersion, "seven")
	_, err := wmstore.EventFromMessage(msg)
	if err == nil {
		t.Fatal("no error for a message that is not an event")
	}
	for _, want := range []string{"no stream", "no type", "version", "no position", "no occurred_at", "no recorded_at"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestCheckpointNamesDoNotCollide(t *testing.T) {
	pairs := [][2]string{{"a", "b:c"}, {"a:b", "c"}, {`a":"b`, "c"}, {"", "a"}, {"a", ""}}
	seen := make(map[string][2]string)
	for _, p := range pairs {
		name := wmstore.CheckpointName(p[0], p[1])
		if other, ok := seen[name]; ok {
			t.Errorf("%q and %q share the checkpoint name %q", p, other, name)
		}
		seen[name] = p
	}
}

func TestDerivedEventIDIsStable(t *testing.T) {
	a := wmstore.DerivedEventID("stream-a", "m-1")
	if a != wmstore.DerivedEventID("stream-a", "m-1") {
		t.Error("derived ID changes between calls")
	}
	if a == wmstore.DerivedEventID("stream-b", "m-1") || a == wmstore.DerivedEventID("stream-a", "m-2") {
		t.Error("derived IDs collide")
	}
	// Derived IDs are persisted: a change of the scheme breaks the idempotence of retries.
	if want := "312f778d-507f-52e0-8332-2e5f3dd7227b"; a != want {
		t.Errorf("derived ID %s, want %s", a, want)
	}
}
