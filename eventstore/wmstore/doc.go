// Package wmstore exposes an eventstore.Store as a Watermill Pub/Sub: the log is the broker,
// so projections and process managers are ordinary Watermill router handlers and there is no
// outbox and no dual write. RunHandler is the one router runner both use: a consumer on a
// router of its own, closed when its context ends, its end reported so that the caller
// restarts it.
//
// # Topics
//
// The topic AllTopic ("$all") is the whole log in global position order. Any other topic is
// the stream of that name: its events only, in version order. A Subscriber reads "$all" with
// Store.Subscribe and a stream with Store.ReadStream, woken when the stream changes.
//
// # Consumer groups
//
// A Subscriber with a ConsumerGroup is durable: after an Ack it saves how far the group got
// in the topic (the global position for "$all", the stream version for a stream) as the
// eventstore checkpoint CheckpointName(group, topic), and a later subscription of the group
// resumes after it. A group that has no checkpoint yet starts at the beginning of the topic.
// Saves run in the background, one at a time and always of the latest Ack, so that the next
// message does not wait for a commit; a subscription that ends saves its last Ack first.
// Within one Subscriber, the subscriptions of a group to one topic take turns: one consumes,
// the others wait and take over when it ends. Subscribers in several processes that share a
// group are not coordinated: each resumes from the last saved checkpoint, so run one consumer
// per group and topic, or expect duplicates.
//
// Without a consumer group a subscription is a private replay: it starts at the beginning of
// the topic every time and saves nothing. This is what Watermill's universal tests expect of
// a persistent Pub/Sub (a message published before Subscribe is received), and what an
// in-memory read model rebuilt at start-up needs.
//
// # Delivery
//
// A subscription delivers one message at a time and waits for its Ack or Nack before the
// next: order is kept and delivery is at least once. A nacked message is delivered again,
// as a fresh copy, after SubscriberConfig.NackDelay. The message context is the subscribe
// context; it is canceled after Ack or Nack and when the Subscriber closes.
//
// A delivered message's UUID is the event ID, its payload the event data, and its metadata
// holds the recorded fields (see the Key constants) plus the headers the event was published
// with. EventFromMessage turns it back into the eventstore.Event. The one exception is a
// message published to several streams (below): its events keep the message's UUID, so code
// that must tell events apart, like a projection's idempotence, keys on KeyEventID.
//
// # Publishing
//
// Publisher.Publish(topic, msgs...) appends the messages to stream topic in one atomic
// append with eventstore.AnyVersion. Metadata under KeyType and KeyOccurredAt sets the event
// type (default DefaultEventType) and business time, the eventstore.Metadata keys set those
// fields, the keys the store assigns are ignored, and any other metadata is kept in
// eventstore.Metadata.Headers and delivered back. The message UUID becomes the event ID, so
// publishing a message again is an idempotent retry. Event IDs are unique in the whole log
// while Watermill lets one message go to several topics (a fan-out, a poison queue), so a
// UUID already stored in another stream gets the event ID DerivedEventID(topic, uuid)
// instead, and the message keeps its UUID through the KeyMessageUUID header.
package wmstore
