package wmstore_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/wmstore"
)

// features states what the store as a Pub/Sub guarantees, for Watermill's universal tests.
func features() tests.Features {
	return tests.Features{
		// Durable checkpoints per group and topic.
		ConsumerGroups: true,
		// At least once: a message acked but not yet checkpointed when a consumer stops comes
		// again, and subscriptions without a group replay the topic.
		ExactlyOnceDelivery: false,
		// A topic is a stream (version order) or the log (position order), delivered one message
		// at a time, and a nacked message comes again before the next one, for any number of
		// subscribers.
		GuaranteedOrder:                     true,
		GuaranteedOrderWithSingleSubscriber: false,
		// Messages are the log: they outlive every Publisher and Subscriber.
		Persistent: true,
		// Every Subscriber reads the same log; instances need not share anything but the store.
		RequireSingleInstance: false,
		// A subscription without group replays the topic from its beginning.
		NewSubscriberReceivesOldMessages: true,
		// Only the payload and metadata are stored, not the publisher's context.
		ContextPreserved: false,
		// TestReconnect is skipped, as it restarts the broker: SQLite has no server, and the
		// PostgreSQL of the tests is shared with other test runs. The postgres backend retries
		// reads across a lost connection itself (and tests that).
		RestartServiceCommand: nil,
	}
}

// testConfig makes the suite fast without changing behaviour: a nack comes back after 10ms
// instead of a second (TestContinueAfterErrors nacks 300 times in a row), and a lost wake-up
// or a failed read costs 100ms at most.
func testConfig(group string) wmstore.SubscriberConfig {
	return wmstore.SubscriberConfig{
		ConsumerGroup: group,
		NackDelay:     10 * time.Millisecond,
		PollInterval:  100 * time.Millisecond,
		RetryInterval: 100 * time.Millisecond,
	}
}

func newPubSub(t *testing.T, store eventstore.Store, group string) (message.Publisher, message.Subscriber) {
	t.Helper()
	pub, err := wmstore.NewPublisher(store, wmstore.PublisherConfig{})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := wmstore.NewSubscriber(store, testConfig(group), watermill.NewStdLogger(false, false))
	if err != nil {
		t.Fatal(err)
	}
	return pub, sub
}

// suiteTimeout bounds one backend's run of the universal tests, which takes seconds.
const suiteTimeout = 5 * time.Minute

// TestPubSub runs Watermill's universal Pub/Sub tests on every backend. Each backend run
// shares one store: a Publisher and Subscriber are the Pub/Sub instances, the store is the
// broker, and every test uses topics of its own.
//
// It is the last test of the package (files run in name order) because of failAfter.
func TestPubSub(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			failAfter(t, suiteTimeout)
			store := b.open(t)
			tests.TestPubSub(t, features(),
				func(t *testing.T) (message.Publisher, message.Subscriber) {
					return newPubSub(t, store, "")
				},
				func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
					return newPubSub(t, store, group)
				},
			)
		})
	}
}

// failAfter ends the test binary if t is still running after d. The suite publishes from
// helper goroutines that fail with require: a publish that fails there stops its goroutine
// before it reports done, and the test would wait forever (until go test's -timeout) instead
// of failing.
func failAfter(t *testing.T, d time.Duration) {
	timer := time.AfterFunc(d, func() {
		panic(fmt.Sprintf("%s still running after %v: a publish in one of the suite's helper "+
			"goroutines has probably failed (see \"error on publish\" above)", t.Name(), d))
	})
	t.Cleanup(func() { timer.Stop() })
}
