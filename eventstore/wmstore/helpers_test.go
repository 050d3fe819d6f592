package wmstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/wmstore"
)

// forEachBackend runs test, in parallel, against a fresh store of every backend.
func forEachBackend(t *testing.T, test func(t *testing.T, store eventstore.Store)) {
	t.Helper()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			test(t, b.open(t))
		})
	}
}

func mustPublisher(t testing.TB, store eventstore.Store, cfg wmstore.PublisherConfig) *wmstore.Publisher {
	t.Helper()
	p, err := wmstore.NewPublisher(store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustSubscriber(t testing.TB, store eventstore.Store, cfg wmstore.SubscriberConfig) *wmstore.Subscriber {
	t.Helper()
	s, err := wmstore.NewSubscriber(store, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func mustSubscribe(t testing.TB, ctx context.Context, s message.Subscriber, topic string) <-chan *message.Message {
	t.Helper()
	ch, err := s.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// publishN publishes n messages to topic, one Publish each, and returns them.
func publishN(t testing.TB, p message.Publisher, topic string, n int) []*message.Message {
	t.Helper()
	msgs := make([]*message.Message, n)
	for i := range msgs {
		msgs[i] = message.NewMessage(watermill.NewUUID(), []byte(`{}`))
		if err := p.Publish(topic, msgs[i]); err != nil {
			t.Fatal(err)
		}
	}
	return msgs
}

// receive acks and returns the next n messages of ch.
func receive(t testing.TB, ch <-chan *message.Message, n int) []*message.Message {
	t.Helper()
	var got []*message.Message
	timeout := time.After(10 * time.Second)
	for len(got) < n {
		select {
		case msg, ok := <-ch:
			if !ok {
				t.Fatalf("channel closed after %d of %d messages", len(got), n)
			}
			msg.Ack()
			got = append(got, msg)
		case <-timeout:
			t.Fatalf("received %d of %d messages", len(got), n)
		}
	}
	return got
}

func receiveNothing(t testing.TB, ch <-chan *message.Message, d time.Duration) {
	t.Helper()
	select {
	case msg, ok := <-ch:
		if ok {
			t.Fatalf("received %s (%s), want nothing", msg.UUID, msg.Metadata)
		}
		t.Fatal("channel closed, want it open")
	case <-time.After(d):
	}
}

func uuids(msgs []*message.Message) []string {
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.UUID
	}
	return ids
}

func equalIDs(t testing.TB, got, want []*message.Message) {
	t.Helper()
	g, w := uuids(got), uuids(want)
	if len(g) != len(w) {
		t.Fatalf("got %v, want %v", g, w)
	}
	for i := range g {
		if g[i] != w[i] {
			t.Fatalf("got %v, want %v", g, w)
		}
	}
}
