package eventstore_test

import (
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
)

func sampleEvent(stream string, version int64) eventstore.Event {
	return eventstore.Event{
		ID: "0b7c6f3e-1d2a-4e5f-8a9b-0c1d2e3f4a5b", Stream: stream, Version: version, Position: 7,
		Type: "contact.created.v1", Data: []byte(`{"name":"Yui"}`),
		Metadata:   eventstore.Metadata{Actor: "alice", CommandID: "c1", CorrelationID: "k1", CausationID: "k1", Reason: "import"},
		OccurredAt: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC),
		RecordedAt: time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC),
	}
}

// The hash of an event is persisted in every backend: changing what it covers or how breaks
// every stored log. This frozen value catches such a change.
func TestChainHashIsFrozen(t *testing.T) {
	t.Parallel()
	got := hex.EncodeToString(eventstore.ChainHash(nil, sampleEvent("contact-1", 1)))
	// Computed independently from the documented layout (length-prefixed fields, big endian).
	const want = "5ecdd330f5710f723814a53da13d7f6ae1ceaf7f09bd91801902c640aa2b83c1"
	if got != want {
		t.Fatalf("ChainHash changed: got %s, want %s", got, want)
	}
}

func TestChainHashCoversEveryField(t *testing.T) {
	t.Parallel()
	base := sampleEvent("contact-1", 1)
	prev := []byte{1, 2, 3}
	h := eventstore.ChainHash(prev, base)
	mutations := map[string]func(e *eventstore.Event){
		"id":             func(e *eventstore.Event) { e.ID = "other" },
		"stream":         func(e *eventstore.Event) { e.Stream = "contact-2" },
		"version":        func(e *eventstore.Event) { e.Version = 2 },
		"type":           func(e *eventstore.Event) { e.Type = "contact.created.v2" },
		"data":           func(e *eventstore.Event) { e.Data = []byte(`{"name":"Yuj"}`) },
		"actor":          func(e *eventstore.Event) { e.Metadata.Actor = "mallory" },
		"reason":         func(e *eventstore.Event) { e.Metadata.Reason = "" },
		"causation":      func(e *eventstore.Event) { e.Metadata.CausationID = "x" },
		"occurred_at":    func(e *eventstore.Event) { e.OccurredAt = e.OccurredAt.Add(time.Microsecond) },
		"recorded_at":    func(e *eventstore.Event) { e.RecordedAt = e.RecordedAt.Add(time.Microsecond) },
		"field boundary": func(e *eventstore.Event) { e.ID, e.Stream = e.ID+"c", "ontact-1" },
	}
	for name, mutate := range mutations {
		e := base
		mutate(&e)
		if string(eventstore.ChainHash(prev, e)) == string(h) {
			t.Errorf("changing %s does not change the hash", name)
		}
	}
	if string(eventstore.ChainHash([]byte{1, 2, 4}, base)) == string(h) {
		t.Error("changing the previous hash does not change the hash")
	}
	moved := base
	moved.Position = 99
	if string(eventstore.ChainHash(prev, moved)) != string(h) {
		t.Error("the global position must not be part of the stream hash")
	}
}

func chain(stream string, n int) []eventstore.Event {
	events := make([]eventstore.Event, n)
	var prev []byte
	for i := range events {
		e := sampleEvent(stream, int64(i+1))
		e.Position = int64(i + 1)
		e.PrevHash = prev
		e.Hash = eventstore.ChainHash(prev, e)
		prev = e.Hash
		events[i] = e
	}
	return events
}

func TestChainVerifier(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		tamper  func(events []eventstore.Event) []eventstore.Event
		version int64 // the version named by the error, 0 for an intact chain
	}{
		{"intact", func(es []eventstore.Event) []eventstore.Event { return es }, 0},
		{"changed data", func(es []eventstore.Event) []eventstore.Event { es[2].Data = []byte(`{}`); return es }, 3},
		{"changed hash", func(es []eventstore.Event) []eventstore.Event { es[1].Hash[0] ^= 1; return es }, 2},
		{"removed event", func(es []eventstore.Event) []eventstore.Event { return append(es[:1:1], es[2:]...) }, 3},
		{"swapped events", func(es []eventstore.Event) []eventstore.Event { es[1], es[2] = es[2], es[1]; return es }, 3},
		{"inserted event", func(es []eventstore.Event) []eventstore.Event {
			extra := es[1]
			return append(es[:2:2], append([]eventstore.Event{extra}, es[2:]...)...)
		}, 2},
		{"renumbered after removal", func(es []eventstore.Event) []eventstore.Event {
			es = append(es[:1:1], es[2:]...)
			for i := range es {
				es[i].Version = int64(i + 1)
			}
			return es
		}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := eventstore.NewChainVerifier()
			var err error
			for _, e := range tc.tamper(chain("deal-1", 5)) {
				if err = v.Check(e); err != nil {
					break
				}
			}
			if tc.version == 0 {
				if err != nil {
					t.Fatalf("intact chain: %v", err)
				}
				return
			}
			var ce *eventstore.ChainError
			if !errors.As(err, &ce) || !errors.Is(err, eventstore.ErrBrokenChain) {
				t.Fatalf("err = %v, want a *ChainError", err)
			}
			if ce.Version != tc.version || ce.Stream != "deal-1" {
				t.Fatalf("broken at %s v%d, want v%d", ce.Stream, ce.Version, tc.version)
			}
		})
	}
}

func TestCheckExpected(t *testing.T) {
	t.Parallel()
	tests := []struct {
		expected, actual int64
		ok               bool
	}{
		{eventstore.AnyVersion, 0, true}, {eventstore.AnyVersion, 5, true},
		{eventstore.NoStream, 0, true}, {eventstore.NoStream, 1, false},
		{3, 3, true}, {3, 2, false}, {3, 4, false},
	}
	for _, tc := range tests {
		err := eventstore.CheckExpected("s", tc.expected, tc.actual)
		if (err == nil) != tc.ok {
			t.Errorf("CheckExpected(%d, %d) = %v", tc.expected, tc.actual, err)
		}
		var vc *eventstore.VersionConflictError
		if err != nil && (!errors.Is(err, eventstore.ErrWrongExpectedVersion) || !errors.As(err, &vc) || vc.Actual != tc.actual) {
			t.Errorf("CheckExpected(%d, %d) error %v is not a VersionConflictError with Actual", tc.expected, tc.actual, err)
		}
	}
}

func TestValidateAppend(t *testing.T) {
	t.Parallel()
	ok := eventstore.EventData{ID: "a", Type: "t.v1"}
	tests := []struct {
		name     string
		stream   string
		expected int64
		events   []eventstore.EventData
		valid    bool
	}{
		{"valid", "s", eventstore.AnyVersion, []eventstore.EventData{ok}, true},
		{"no stream", "", 0, []eventstore.EventData{ok}, false},
		{"no events", "s", 0, nil, false},
		{"bad expected", "s", -2, []eventstore.EventData{ok}, false},
		{"no id", "s", 0, []eventstore.EventData{{Type: "t.v1"}}, false},
		{"no type", "s", 0, []eventstore.EventData{{ID: "a"}}, false},
		{"id twice", "s", 0, []eventstore.EventData{ok, ok}, false},
	}
	for _, tc := range tests {
		err := eventstore.ValidateAppend(tc.stream, tc.expected, tc.events)
		if (err == nil) != tc.valid || (err != nil && !errors.Is(err, eventstore.ErrInvalidAppend)) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}
