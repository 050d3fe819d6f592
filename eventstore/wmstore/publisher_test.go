package wmstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/wmstore"
)

func TestPublishMapsMessageToEvent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, store eventstore.Store) {
		ctx := t.Context()
		pub := mustPublisher(t, store, wmstore.PublisherConfig{})
		msg := message.NewMessage(watermill.NewUUID(), []byte(`{"name":"Ann"}`))
		for k, v := range map[string]string{
			wmstore.KeyType:          "contact.created.v1",
			wmstore.KeyOccurredAt:    "2026-01-02T03:04:05.123456+01:00",
			wmstore.KeyActor:         "user:ann",
			wmstore.KeyCommandID:     "cmd-1",
			wmstore.KeyCorrelationID: "corr-1",
			wmstore.KeyCausationID:   "cause-1",
			wmstore.KeyReason:        "import",
			wmstore.KeyRequestHash:   "h",
			"tenant":                 "acme",
			// Assigned by the store: ignored.
			wmstore.KeyStream:   "elsewhere",
			wmstore.KeyVersion:  "99",
			wmstore.KeyEventID:  "other-id",
			wmstore.KeyPosition: "5",
		} {
			msg.Metadata.Set(k, v)
		}
		if err := pub.Publish("contact-1", msg); err != nil {
			t.Fatal(err)
		}
		e, err := store.EventByID(ctx, msg.UUID)
		if err != nil {
			t.Fatal(err)
		}
		want := eventstore.Metadata{Actor: "user:ann", CommandID: "cmd-1", CorrelationID: "corr-1",
			CausationID: "cause-1", Reason: "import", RequestHash: "h", Headers: `{"tenant":"acme"}`}
		if e.Stream != "contact-1" || e.Version != 1 || e.Type != "contact.created.v1" ||
			string(e.Data) != `{"name":"Ann"}` || e.Metadata != want ||
			!e.OccurredAt.Equal(time.Date(2026, 1, 2, 2, 4, 5, 123456000, time.UTC)) {
			t.Errorf("stored %+v", e)
		}

		// Without type metadata: the configured default type.
		plain := message.NewMessage(watermill.NewUUID(), nil)
		if err := pub.Publish("contact-1", plain); err != nil {
			t.Fatal(err)
		}
		typed := mustPublisher(t, store, wmstore.PublisherConfig{DefaultType: "note.added.v1"})
		other := message.NewMessage(watermill.NewUUID(), nil)
		if err := typed.Publish("contact-1", other); err != nil {
			t.Fatal(err)
		}
		for id, want := range map[string]string{plain.UUID: wmstore.DefaultEventType, other.UUID: "note.added.v1"} {
			if e, err := store.EventByID(ctx, id); err != nil || e.Type != want {
				t.Errorf("event %s: type %q, %v; want %q", id, e.Type, err, want)
			}
		}

		bad := message.NewMessage(watermill.NewUUID(), nil)
		bad.Metadata.Set(wmstore.KeyOccurredAt, "yesterday")
		if err := pub.Publish("contact-1", bad); err == nil {
			t.Error("published a message with a bad occurred_at")
		}
	})
}

func TestPublishRefuses(t *testing.T) {
	forEachBackend(t, func(t *testing.T, store eventstore.Store) {
		pub := mustPublisher(t, store, wmstore.PublisherConfig{})
		msg := message.NewMessage(watermill.NewUUID(), nil)
		if err := pub.Publish(wmstore.AllTopic, msg); !errors.Is(err, wmstore.ErrPublishToAll) {
			t.Errorf("publish to %s: %v, want ErrPublishToAll", wmstore.AllTopic, err)
		}
		if err := pub.Publish("s", message.NewMessage("", nil)); !errors.Is(err, eventstore.ErrInvalidAppend) {
			t.Errorf("publish without UUID: %v, want ErrInvalidAppend", err)
		}
		if err := pub.Close(); err != nil {
			t.Fatal(err)
		}
		if err := pub.Publish("s", msg); !errors.Is(err, wmstore.ErrPublisherClosed) {
			t.Errorf("publish after close: %v, want ErrPublisherClosed", err)
		}
	})
}

func TestPublishAgainIsIdempotent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, store eventstore.Store) {
		ctx := t.Context()
		pub := mustPublisher(t, store, wmstore.PublisherConfig{})
		m1, m2 := message.NewMessage(watermill.NewUUID(), nil), message.NewMessage(watermill.NewUUID(), nil)
		for range 2 {
			if err := pub.Publish("s", m1, m2); err != nil {
				t.Fatal(err)
			}
		}
		if events, err := store.ReadStream(ctx, "s", 1, 10); err != nil || len(events) != 2 {
			t.Fatalf("stream after a retry: %d events, %v; want 2", len(events), err)
		}
		m3 := message.NewMessage(watermill.NewUUID(), nil)
		if err := pub.Publish("s", m1, m3); !errors.Is(err, eventstore.ErrDuplicateEventID) {
			t.Errorf("publish a stored message with a new one: %v, want ErrDuplicateEventID", err)
		}
	})
}

// A message published to two topics (a fan-out, a poison queue) is two events, so the second
// gets a derived ID, and is still delivered with the message's UUID.
func TestPublishOneMessageToTwoTopics(t *testing.T) {
	forEachBackend(t, func(t *testing.T, store eventstore.Store) {
		ctx := t.Context()
		pub := mustPublisher(t, store, wmstore.PublisherConfig{})
		msg := message.NewMessage(watermill.NewUUID(), []byte(`{}`))
		msg.Metadata.Set("tenant", "acme")
		for _, topic := range []string{"a", "b", "b"} { // the second "b" is a retry
			if err := pub.Publish(topic, msg); err != nil {
				t.Fatalf("publish to %s: %v", topic, err)
			}
		}
		b, err := store.ReadStream(ctx, "b", 1, 10)
		if err != nil || len(b) != 1 {
			t.Fatalf("stream b: %d events, %v; want 1", len(b), err)
		}
		if want := wmstore.DerivedEventID("b", msg.UUID); b[0].ID != want {
			t.Errorf("event ID in b %s, want %s", b[0].ID, want)
		}
		sub := mustSubscriber(t, store, testConfig(""))
		got := receive(t, mustSubscribe(t, ctx, sub, "b"), 1)[0]
		if got.UUID != msg.UUID || got.Metadata.Get("tenant") != "acme" ||
			got.Metadata.Get(wmstore.KeyEventID) != b[0].ID {
			t.Errorf("delivered %s %v", got.UUID, got.Metadata)
		}
		if e, err := wmstore.EventFromMessage(got); err != nil || e.ID != b[0].ID || e.Metadata != b[0].Metadata {
			t.Errorf("event of the delivered message %+v, %v; want %+v", e, err, b[0])
		}
	})
}

// Watermill gives every message a context; a Publish ends when any of them does.
func TestPublishHonoursEveryMessageContext(t *testing.T) {
	forEachBackend(t, func(t *testing.T, store eventstore.Store) {
		pub := mustPublisher(t, store, wmstore.PublisherConfig{})
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		late := message.NewMessageWithContext(ctx, watermill.NewUUID(), nil)
		first := message.NewMessage(watermill.NewUUID(), nil)
		if err := pub.Publish("s", first, late); !errors.Is(err, context.Canceled) {
			t.Errorf("publish with a canceled message context: %v, want context.Canceled", err)
		}
		if _, err := store.EventByID(t.Context(), first.UUID); !errors.Is(err, eventstore.ErrEventNotFound) {
			t.Errorf("event of a canceled publish: %v, want ErrEventNotFound", err)
		}
	})
}
