// Package storetest is the conformance suite every eventstore.Store backend must pass, in the
// manner of watermill's pubsub/tests.TestPubSub: a backend's own test calls TestStore with a
// constructor and the Features it honestly has.
//
// Every subtest writes to streams with a random suffix and only asserts on its own events, so
// the suite also runs against a database shared with other tests or earlier runs.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
)

// Features describes the honest differences between backends.
type Features struct {
	// Checkpoints: the Store also implements eventstore.Checkpoints.
	Checkpoints bool
	// Slow: every call is a network round trip to a server (or otherwise slow). The
	// concurrency tests then use at most 8 writers and every wait is longer.
	Slow bool
	// ClockSkew is how far the clock that stamps RecordedAt (a remote server's) may be from
	// the test process's clock.
	ClockSkew time.Duration
}

// TestStore runs the conformance suite. newStore returns a new Store for one subtest; it may
// share its database with the Stores of other subtests. The suite closes every Store it gets.
func TestStore(t *testing.T, features Features, newStore func(t *testing.T) eventstore.Store) {
	s := suite{features: features, newStoreFn: newStore}
	tests := []struct {
		name string
		fn   func(t *testing.T, s suite)
	}{
		{"RoundTrip", testRoundTrip},
		{"OccurredAtDefaultsToNow", testOccurredAtDefaultsToNow},
		{"CallerOwnsSlices", testCallerOwnsSlices},
		{"WrongExpectedVersion", testWrongExpectedVersion},
		{"AnyVersion", testAnyVersion},
		{"ConcurrentAppendsOneWinner", testConcurrentAppendsOneWinner},
		{"ConcurrentRetryLoopHasNoHoles", testConcurrentRetryLoop},
		{"ConcurrentAppendsToDifferentStreams", testConcurrentDifferentStreams},
		{"ReadStreamFromVersion", testReadStreamFrom},
		{"ReadStreamLimit", testReadStreamLimit},
		{"ReadStreamMissing", testReadStreamMissing},
		{"GlobalOrder", testGlobalOrder},
		{"SubscribeCatchUpThenLive", testSubscribeCatchUpThenLive},
		{"SubscribeResumeFromCheckpoint", testSubscribeResume},
		{"SubscriptionEndsByContextAndClose", testSubscriptionEnds},
		{"IdempotentRetry", testIdempotentRetry},
		{"DuplicateEventID", testDuplicateEventID},
		{"EventByID", testEventByID},
		{"InvalidAppend", testInvalidAppend},
		{"HashChain", testHashChain},
		{"MetadataAsStored", testMetadataAsStored},
		{"Checkpoints", testCheckpoints},
		{"CloseEndsSubscriptions", testCloseEndsSubscriptions},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, s) })
	}
}

type suite struct {
	features   Features
	newStoreFn func(t *testing.T) eventstore.Store
}

// newStore returns a store that is closed when t ends.
func (s suite) newStore(t *testing.T) eventstore.Store {
	t.Helper()
	st := s.newStoreFn(t)
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return st
}

// timeout bounds every wait of a subtest.
func (s suite) timeout() time.Duration {
	if s.features.Slow {
		return 60 * time.Second
	}
	return 15 * time.Second
}

// maxWriters caps the number of concurrent writers.
func (s suite) maxWriters() int {
	if s.features.Slow {
		return 8
	}
	return 64
}

func (s suite) context(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), s.timeout())
	t.Cleanup(cancel)
	return ctx
}

// streamName returns a stream name no other test run uses.
func streamName(prefix string) string {
	return prefix + "-" + randomHex(8)
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("random: %v", err))
	}
	return hex.EncodeToString(b)
}

// newID returns a random UUID (version 4) in text form.
func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("random: %v", err))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// newEvents returns n events with distinct IDs and bodies naming their index.
func newEvents(n int, typ string) []eventstore.EventData {
	events := make([]eventstore.EventData, n)
	for i := range events {
		events[i] = eventstore.EventData{
			ID:   newID(),
			Type: typ,
			Data: fmt.Appendf(nil, `{"i":%d,"note":"event %d"}`, i, i),
			Metadata: eventstore.Metadata{
				Actor:         "user:test",
				CommandID:     newID(),
				CorrelationID: newID(),
			},
		}
	}
	return events
}

func mustAppend(t *testing.T, ctx context.Context, st eventstore.Store, stream string, expected int64, events []eventstore.EventData) eventstore.AppendResult {
	t.Helper()
	res, err := st.Append(ctx, stream, expected, events)
	if err != nil {
		t.Fatalf("append %d events to %s at %s: %v", len(events), stream, eventstore.FormatExpected(expected), err)
	}
	return res
}

func mustReadStream(t *testing.T, ctx context.Context, st eventstore.Store, stream string, from int64, limit int) []eventstore.Event {
	t.Helper()
	events, err := st.ReadStream(ctx, stream, from, limit)
	if err != nil {
		t.Fatalf("read stream %s from %d limit %d: %v", stream, from, limit, err)
	}
	return events
}

// versions lists the stream versions of events.
func versions(events []eventstore.Event) []int64 {
	v := make([]int64, len(events))
	for i, e := range events {
		v[i] = e.Version
	}
	return v
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// seq returns from, from+1, ..., to.
func seq(from, to int64) []int64 {
	var s []int64
	for v := from; v <= to; v++ {
		s = append(s, v)
	}
	return s
}

// diffEvent describes how got differs from want, or returns "" when they are equal.
// Nil and empty byte slices are equal.
func diffEvent(got, want eventstore.Event) string {
	var d []string
	add := func(field string, g, w any) { d = append(d, fmt.Sprintf("%s = %v, want %v", field, g, w)) }
	if got.ID != want.ID {
		add("ID", got.ID, want.ID)
	}
	if got.Stream != want.Stream {
		add("Stream", got.Stream, want.Stream)
	}
	if got.Version != want.Version {
		add("Version", got.Version, want.Version)
	}
	if got.Position != want.Position {
		add("Position", got.Position, want.Position)
	}
	if got.Type != want.Type {
		add("Type", got.Type, want.Type)
	}
	if !bytes.Equal(got.Data, want.Data) {
		add("Data", string(got.Data), string(want.Data))
	}
	if got.Metadata != want.Metadata {
		add("Metadata", got.Metadata, want.Metadata)
	}
	if !bytes.Equal(got.MetadataJSON, want.MetadataJSON) {
		add("MetadataJSON", string(got.MetadataJSON), string(want.MetadataJSON))
	}
	if !got.OccurredAt.Equal(want.OccurredAt) {
		add("OccurredAt", got.OccurredAt, want.OccurredAt)
	}
	if !got.RecordedAt.Equal(want.RecordedAt) {
		add("RecordedAt", got.RecordedAt, want.RecordedAt)
	}
	if !bytes.Equal(got.PrevHash, want.PrevHash) {
		add("PrevHash", hex.EncodeToString(got.PrevHash), hex.EncodeToString(want.PrevHash))
	}
	if !bytes.Equal(got.Hash, want.Hash) {
		add("Hash", hex.EncodeToString(got.Hash), hex.EncodeToString(want.Hash))
	}
	if len(d) == 0 {
		return ""
	}
	return fmt.Sprint(d)
}

// checkStoredTime checks that a time read back from the store is UTC with microsecond
// precision.
func checkStoredTime(t *testing.T, what string, tm time.Time) {
	t.Helper()
	if tm.Location() != time.UTC {
		t.Errorf("%s location = %v, want UTC", what, tm.Location())
	}
	if tm.Nanosecond()%1000 != 0 {
		t.Errorf("%s = %v has sub-microsecond digits", what, tm)
	}
}
