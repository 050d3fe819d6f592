package wmstore_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/wmstore"
)

func TestAllTopicIsTheLogInOrder(t *testing.T) {
	forEachBackend(t, func(t *testing.T, store eventstore.Store) {
		ctx := t.Context()
		pub := mustPublisher(t, store, wmstore.PublisherConfig{})
		var want []*message.Message
		for _, stream := range []string{"a", "b", "a", "c"} {
			want = append(want, publishN(t, pub, stream, 1)...)
		}
		sub := mustSubscriber(t, store, testConfig(""))
		ch := mustSubscribe(t, ctx, sub, wmstore.AllTopic)
		got := receive(t, ch, 4)
		equalIDs(t, got, want)
		var last int64
		for i, msg := range got {
			e, err := wmstore.EventFromMessage(msg)
			if err != nil {
				t.Fatal(err)
			}
			if e.Position <= last || e.Stream != []string{"a", "b", "a", "c"}[i] {
				t.Errorf("message %d: position %d after %d, stream %s", i, e.Position, last, e.Stream)
			}
			last = e.Position
		}
		// Then live.
		live := publishN(t, pub, "d", 1)
		equalIDs(t, receive(t, ch, 1), live)
	})
}

// A consumer group resumes after the last acked message, in a stream topic and in $all.
func TestConsumerGroupResumes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, store eventstore.Store) {
		for _, topic := range []string{"orders", wmstore.AllTopic} {
			t.Run(topic, func(t *testing.T) {
				ctx := t.Context()
				pub := mustPublisher(t, store, wmstore.PublisherConfig{})
				group := "projection-" + watermill.NewShortUUID()
				msgs := publishN(t, pub, "orders", 5)
				if topic == wmstore.AllTopic {
					// The log holds what other subtests published: skip to our messages.
					e, err := store.EventByID(ctx, msgs[0].UUID)
					if err != nil {
						t.Fatal(err)
					}
					cps := store.(eventstore.Checkpoints)
					if err := cps.SaveCheckpoint(ctx, wmstore.CheckpointName(group, topic), e.Position-1); err != nil {
						t.Fatal(err)
					}
				}

				first := mustSubscriber(t, store, testConfig(group))
				got := receive(t, mustSubscribe(t, ctx, first, topic), 3)
				equalIDs(t, got, msgs[:3])
				if err := first.Close(); err != nil {
					t.Fatal(err)
				}
				third, err := wmstore.EventFromMessage(got[2])
				if err != nil {
					t.Fatal(err)
				}
				want := third.Version
				if topic == wmstore.AllTopic {
					want = third.Position
				}
				at, err := store.(eventstore.Checkpoints).LoadCheckpoint(ctx, wmstore.CheckpointName(group, topic))
				if err != nil || at != want {
					t.Errorf("checkpoint %d, %v; want %d", at, err, want)
				}

				second := mustSubscriber(t, store, testConfig(group))
				equalIDs(t, receive(t, mustSubscribe(t, ctx, second, topic), 2), msgs[3:])
			})
		}
	})
}

func TestNackRedeliversTheSameEvent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, store eventstore.Store) {
		pub := mustPublisher(t, store, wmstore.PublisherConfig{})
		msgs := publishN(t, pub, "s", 2)
		cfg := testConfig("")
		cfg.NackDelay = 100 * time.Millisecond
		ch := mustSubscribe(t, t.Context(), mustSubscriber(t, store, cfg), "s")

		first := <-ch
		nacked := time.Now()
		first.Nack()
		select {
		case <-first.Context().Done():
		case <-time.After(time.Second):
			t.Error("context of a nacked message not canceled")
		}
		again := receive(t, ch, 1)[0]
		if waited := time.Since(nacked); waited < cfg.NackDelay {
			t.Errorf("redelivered after %v, want at least %v", waited, cfg.NackDelay)
		}
		if again == first || again.UUID != msgs[0].UUID {
			t.Errorf("redelivered %s (same message: %v), want a fresh copy of %s", again.UUID, again == first, msgs[0].UUID)
		}
		equalIDs(t, receive(t, ch, 1), msgs[1:])
	})
}

// Within one Subscriber, the subscriptions of a consumer group to one topic take turns.
func TestConsumerGroupTakesTurns(t *testing.T) {
	forEachBackend(t, func(t *testing.T, store eventstore.Store) {
		pub := mustPublisher(t, store, wmstore.PublisherConfig{})
		msgs := publishN(t, pub, "s", 3)
		sub := mustSubscriber(t, store, testConfig("g"))

		ctx1, cancel1 := context.WithCancel(t.Context())
		defer cancel1()
		ch1 := mustSubscribe(t, ctx1, sub, "s")
		equalIDs(t, receive(t, ch1, 1), msgs[:1])
		ch2 := mustSubscribe(t, t.Context(), sub, "s")
		receiveNothing(t, ch2, 200*time.Millisecond)

		cancel1()
		for range ch1 { // closed once it has handed over
		}
		equalIDs(t, receive(t, ch2, 2), msgs[1:])
	})
}

// readCounter counts the ReadStream calls per stream.
type readCounter struct {
	eventstore.Store
	mu    sync.Mutex
	reads map[string]int
}

func (c *readCounter) ReadStream(ctx context.Context, stream string, from int64, limit int) ([]eventstore.Event, error) {
	c.mu.Lock()
	c.reads[stream]++
	c.mu.Unlock()
	return c.Store.ReadStream(ctx, stream, from, limit)
}

func (c *readCounter) count(stream string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reads[stream]
}

// A stream subscription is woken by appends to its stream, at once and only by those.
func TestStreamSubscriptionWakesForItsStreamOnly(t *testing.T) {
	forEachBackend(t, func(t *testing.T, store eventstore.Store) {
		counted := &readCounter{Store: store, reads: make(map[string]int)}
		pub := mustPublisher(t, store, wmstore.PublisherConfig{})
		cfg := testConfig("")
		cfg.PollInterval = time.Hour // no polling: only wake-ups deliver
		// One Subscriber: when busy has its messages, the wake-ups for them have been sent.
		sub := mustSubscriber(t, counted, cfg)
		quiet := mustSubscribe(t, t.Context(), sub, "quiet")
		busy := mustSubscribe(t, t.Context(), sub, "busy")

		busyMsgs := publishN(t, pub, "busy", 50)
		equalIDs(t, receive(t, busy, 50), busyMsgs)
		if n := counted.count("quiet"); n > 1 {
			t.Errorf("appends to another stream made the quiet subscription read %d times", n)
		}
		start := time.Now()
		quietMsgs := publishN(t, pub, "quiet", 1)
		equalIDs(t, receive(t, quiet, 1), quietMsgs)
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("woken after %v", d)
		}
	})
}

func TestSubscriptionsEndWithTheirStore(t *testing.T) {
	forEachBackend(t, func(t *testing.T, store eventstore.Store) {
		sub := mustSubscriber(t, store, testConfig("g"))
		all := mustSubscribe(t, t.Context(), sub, wmstore.AllTopic)
		stream := mustSubscribe(t, t.Context(), sub, "s")
		if err := store.Close(); err != nil {
			t.Fatal(err)
		}
		for _, ch := range []<-chan *message.Message{all, stream} {
			select {
			case _, ok := <-ch:
				if ok {
					t.Error("message after the store closed")
				}
			case <-time.After(5 * time.Second):
				t.Error("channel still open 5s after the store closed")
			}
		}
		if _, err := sub.Subscribe(t.Context(), "s"); !errors.Is(err, eventstore.ErrClosed) {
			t.Errorf("subscribe on a closed store: %v, want ErrClosed", err)
		}
		if err := sub.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := sub.Subscribe(t.Context(), "s"); !errors.Is(err, wmstore.ErrSubscriberClosed) {
			t.Errorf("subscribe after close: %v, want ErrSubscriberClosed", err)
		}
	})
}

func TestNewSubscriberValidatesConfig(t *testing.T) {
	store := &readCounter{} // not an eventstore.Checkpoints
	_, err := wmstore.NewSubscriber(store, wmstore.SubscriberConfig{
		ConsumerGroup: "g", PollInterval: -1, RetryInterval: -1, BatchSize: -1,
	}, nil)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"no checkpoints", "poll interval", "retry interval", "batch size"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// Handlers are router handlers with the usual middleware: the correlation middleware carries
// an event's correlation ID to what its handler publishes.
func TestRouterHandlerKeepsCorrelation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, store eventstore.Store) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		pub := mustPublisher(t, store, wmstore.PublisherConfig{})
		sub := mustSubscriber(t, store, testConfig("process-manager"))
		router, err := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
		if err != nil {
			t.Fatal(err)
		}
		router.AddMiddleware(middleware.CorrelationID)
		router.AddHandler("deal-won", "deal-1", sub, "tasks", pub, func(msg *message.Message) ([]*message.Message, error) {
			e, err := wmstore.EventFromMessage(msg)
			if err != nil {
				return nil, err
			}
			task := message.NewMessage(watermill.NewUUID(), []byte(`{"for":"`+e.Stream+`"}`))
			task.Metadata.Set(wmstore.KeyType, "task.created.v1")
			task.Metadata.Set(wmstore.KeyCausationID, e.ID)
			return []*message.Message{task}, nil
		})
		done := make(chan error, 1)
		go func() { done <- router.Run(ctx) }()
		<-router.Running()

		won := message.NewMessage(watermill.NewUUID(), []byte(`{}`))
		won.Metadata.Set(wmstore.KeyType, "deal.won.v1")
		won.Metadata.Set(wmstore.KeyCorrelationID, "corr-7")
		if err := pub.Publish("deal-1", won); err != nil {
			t.Fatal(err)
		}
		tasks := mustSubscriber(t, store, testConfig(""))
		task, err := wmstore.EventFromMessage(receive(t, mustSubscribe(t, ctx, tasks, "tasks"), 1)[0])
		if err != nil {
			t.Fatal(err)
		}
		if task.Type != "task.created.v1" || task.Metadata.CorrelationID != "corr-7" || task.Metadata.CausationID != won.UUID {
			t.Errorf("task %s, metadata %+v", task.Type, task.Metadata)
		}
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}
