package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/eventcrm/crm/eventstore"
)

// tenEvents appends 10 events to a new stream in two appends and returns the stream.
func tenEvents(t *testing.T, s suite, st eventstore.Store) string {
	t.Helper()
	ctx := s.context(t)
	stream := streamName("ten")
	mustAppend(t, ctx, st, stream, eventstore.NoStream, newEvents(4, "test.happened.v1"))
	mustAppend(t, ctx, st, stream, 4, newEvents(6, "test.happened.v1"))
	return stream
}

func testReadStreamFrom(t *testing.T, s suite) {
	t.Parallel()
	st := s.newStore(t)
	ctx := s.context(t)
	stream := tenEvents(t, s, st)
	tests := []struct {
		from int64
		want []int64
	}{
		{1, seq(1, 10)},
		{4, seq(4, 10)},
		{5, seq(5, 10)},
		{10, []int64{10}},
		{11, nil},
		{1000, nil},
	}
	for _, tc := range tests {
		got := mustReadStream(t, ctx, st, stream, tc.from, 100)
		if !equalInts(versions(got), tc.want) {
			t.Errorf("read from %d: versions %v, want %v", tc.from, versions(got), tc.want)
		}
		for _, e := range got {
			if e.Stream != stream {
				t.Errorf("read from %d: event of stream %q", tc.from, e.Stream)
			}
		}
	}
}

func testReadStreamLimit(t *testing.T, s suite) {
	t.Parallel()
	st := s.newStore(t)
	ctx := s.context(t)
	stream := tenEvents(t, s, st)
	tests := []struct {
		from  int64
		limit int
		want  []int64
	}{
		{1, 1, []int64{1}},
		{1, 3, seq(1, 3)},
		{3, 4, seq(3, 6)},
		{8, 5, seq(8, 10)},
		{1, 10, seq(1, 10)},
	}
	for _, tc := range tests {
		got := mustReadStream(t, ctx, st, stream, tc.from, tc.limit)
		if !equalInts(versions(got), tc.want) {
			t.Errorf("read from %d limit %d: versions %v, want %v", tc.from, tc.limit, versions(got), tc.want)
		}
	}
	// Paging through the stream by the last version seen visits every event once.
	var paged []int64
	for from := int64(1); ; {
		page := mustReadStream(t, ctx, st, stream, from, 3)
		paged = append(paged, versions(page)...)
		if len(page) < 3 {
			break
		}
		from = page[len(page)-1].Version + 1
	}
	if !equalInts(paged, seq(1, 10)) {
		t.Errorf("paged versions %v, want 1..10", paged)
	}
}

func testReadStreamMissing(t *testing.T, s suite) {
	t.Parallel()
	st := s.newStore(t)
	ctx := s.context(t)
	events, err := st.ReadStream(ctx, streamName("missing"), 1, 10)
	if !errors.Is(err, eventstore.ErrStreamNotFound) {
		t.Fatalf("read a missing stream: %d events, err = %v; want ErrStreamNotFound", len(events), err)
	}
}

func testGlobalOrder(t *testing.T, s suite) {
	t.Parallel()
	st := s.newStore(t)
	ctx := s.context(t)
	a, b := streamName("order-a"), streamName("order-b")
	type step struct {
		stream   string
		expected int64
		n        int
	}
	steps := []step{{a, 0, 3}, {b, 0, 1}, {a, 3, 1}, {b, 1, 2}, {a, 4, 1}}
	var wantIDs []string
	var last int64
	for _, st1 := range steps {
		events := newEvents(st1.n, "test.ordered.v1")
		res := mustAppend(t, ctx, st, st1.stream, st1.expected, events)
		if res.Position <= last {
			t.Errorf("append to %s landed at position %d, not after the previous append's %d", st1.stream, res.Position, last)
		}
		last = res.Position
		for _, e := range events {
			wantIDs = append(wantIDs, e.ID)
		}
	}
	mine := make(map[string]bool, len(wantIDs))
	for _, id := range wantIDs {
		mine[id] = true
	}
	first := mustReadStream(t, ctx, st, a, 1, 1)[0]

	// The three events of the first append are contiguous in the global log.
	head, err := st.ReadAll(ctx, first.Position-1, 3)
	if err != nil {
		t.Fatalf("read all: %v", err)
	}
	if len(head) != 3 {
		t.Fatalf("read all limit 3 returned %d events", len(head))
	}
	for i, e := range head {
		if e.ID != wantIDs[i] {
			t.Errorf("global log after %d holds %s at offset %d, want %s of the same append", first.Position-1, e.ID, i, wantIDs[i])
		}
	}

	// Paging by the last position seen returns every event once, in append order.
	const pageSize = 2
	var gotIDs []string
	var lastMine int64
	after := first.Position - 1
	for pages := 0; len(gotIDs) < len(wantIDs); pages++ {
		if pages > 1000 {
			t.Fatalf("still paging after 1000 pages, found %d of my %d events", len(gotIDs), len(wantIDs))
		}
		page, err := st.ReadAll(ctx, after, pageSize)
		if err != nil {
			t.Fatalf("read all after %d: %v", after, err)
		}
		if len(page) == 0 {
			t.Fatalf("read all after %d is empty, found %d of my %d events", after, len(gotIDs), len(wantIDs))
		}
		if len(page) > pageSize {
			t.Fatalf("read all with limit %d returned %d events", pageSize, len(page))
		}
		for _, e := range page {
			if e.Position <= after {
				t.Fatalf("read all: position %d after %d", e.Position, after)
			}
			after = e.Position
			if mine[e.ID] {
				gotIDs = append(gotIDs, e.ID)
				lastMine = e.Position
			}
		}
	}
	for i := range wantIDs {
		if gotIDs[i] != wantIDs[i] {
			t.Fatalf("global order of my events = %v, want %v", gotIDs, wantIDs)
		}
	}
	if lastMine != last {
		t.Errorf("last event read at position %d, the last append said %d", lastMine, last)
	}
}

// readAllUpTo reads the global log after position after up to and including position upTo.
func readAllUpTo(t *testing.T, ctx context.Context, st eventstore.Store, after, upTo int64) []eventstore.Event {
	t.Helper()
	var events []eventstore.Event
	for after < upTo {
		page, err := st.ReadAll(ctx, after, 500)
		if err != nil {
			t.Fatalf("read all after %d: %v", after, err)
		}
		if len(page) == 0 {
			t.Fatalf("read all after %d is empty, want events up to %d", after, upTo)
		}
		for _, e := range page {
			if e.Position > upTo {
				return events
			}
			events = append(events, e)
			after = e.Position
		}
	}
	return events
}

func testEventByID(t *testing.T, s suite) {
	t.Parallel()
	st := s.newStore(t)
	ctx := s.context(t)
	stream := streamName("byid")
	events := newEvents(3, "test.happened.v1")
	mustAppend(t, ctx, st, stream, eventstore.NoStream, events)
	stored := mustReadStream(t, ctx, st, stream, 1, 10)
	for i, want := range stored {
		got, err := st.EventByID(ctx, events[i].ID)
		if err != nil {
			t.Fatalf("event by id %s: %v", events[i].ID, err)
		}
		if d := diffEvent(got, want); d != "" {
			t.Errorf("event by id %s: %s", events[i].ID, d)
		}
	}
	if _, err := st.EventByID(ctx, newID()); !errors.Is(err, eventstore.ErrEventNotFound) {
		t.Errorf("unknown id: err = %v, want ErrEventNotFound", err)
	}
}

func testHashChain(t *testing.T, s suite) {
	t.Parallel()
	st := s.newStore(t)
	ctx := s.context(t)
	a, b := streamName("chain-a"), streamName("chain-b")
	mustAppend(t, ctx, st, a, eventstore.NoStream, newEvents(1, "test.chained.v1"))
	mustAppend(t, ctx, st, b, eventstore.NoStream, newEvents(2, "test.chained.v1"))
	mustAppend(t, ctx, st, a, 1, newEvents(2, "test.chained.v1"))
	mustAppend(t, ctx, st, b, 2, newEvents(1, "test.chained.v1"))
	mustAppend(t, ctx, st, a, 3, newEvents(1, "test.chained.v1"))

	for stream, n := range map[string]int64{a: 4, b: 3} {
		got := mustReadStream(t, ctx, st, stream, 1, 100)
		var prev []byte
		for _, e := range got {
			if !bytes.Equal(e.PrevHash, prev) {
				t.Errorf("%s version %d: prev hash %x, want the previous event's hash %x", stream, e.Version, e.PrevHash, prev)
			}
			if want := eventstore.ChainHash(prev, e); !bytes.Equal(e.Hash, want) {
				t.Errorf("%s version %d: hash %x, want ChainHash %x", stream, e.Version, e.Hash, want)
			}
			if len(e.Hash) != 32 {
				t.Errorf("%s version %d: hash of %d bytes, want 32", stream, e.Version, len(e.Hash))
			}
			prev = e.Hash
		}
		count, err := eventstore.VerifyStream(ctx, st, stream)
		if err != nil || count != n {
			t.Errorf("verify stream %s = %d, %v; want %d, nil", stream, count, err, n)
		}
		// The stored hash covers the data: a changed body no longer verifies.
		tampered := got[1]
		tampered.Data = append(bytes.Clone(tampered.Data[:len(tampered.Data)-1]), ' ', '}')
		v := eventstore.NewChainVerifier()
		if err := v.Check(got[0]); err != nil {
			t.Fatalf("check %s version 1: %v", stream, err)
		}
		if err := v.Check(tampered); !errors.Is(err, eventstore.ErrBrokenChain) {
			t.Errorf("check a changed event of %s: err = %v, want ErrBrokenChain", stream, err)
		}
	}
	// The same chains, checked through the global log.
	first := mustReadStream(t, ctx, st, a, 1, 1)[0]
	lastB := mustReadStream(t, ctx, st, b, 3, 1)[0]
	lastA := mustReadStream(t, ctx, st, a, 4, 1)[0]
	v := eventstore.NewChainVerifier()
	for _, e := range readAllUpTo(t, ctx, st, first.Position-1, max(lastA.Position, lastB.Position)) {
		if e.Stream != a && e.Stream != b {
			continue
		}
		if err := v.Check(e); err != nil {
			t.Errorf("chain through the global log: %v", err)
		}
	}
	if v.Count() != 7 {
		t.Errorf("found %d of the 7 events in the global log", v.Count())
	}

	count, err := eventstore.VerifyAll(ctx, st, nil)
	var chainErr *eventstore.ChainError
	switch {
	case errors.As(err, &chainErr) && chainErr.Stream != a && chainErr.Stream != b:
		// A shared database may hold streams that other tests broke on purpose.
		t.Logf("verify all stopped at another test's stream: %v", err)
	case err != nil:
		t.Errorf("verify all: %v", err)
	case count < 7:
		t.Errorf("verify all checked %d events, want at least the 7 of this test", count)
	}
}

func testCheckpoints(t *testing.T, s suite) {
	t.Parallel()
	st := s.newStore(t)
	cp, ok := st.(eventstore.Checkpoints)
	if !s.features.Checkpoints {
		t.Skipf("backend has no checkpoints (implements eventstore.Checkpoints: %v)", ok)
	}
	if !ok {
		t.Fatalf("%T does not implement eventstore.Checkpoints, but the features say it does", st)
	}
	ctx := s.context(t)
	name, other := streamName("projection"), streamName("projection")
	load := func(name string, want int64) {
		t.Helper()
		got, err := cp.LoadCheckpoint(ctx, name)
		if err != nil || got != want {
			t.Fatalf("load checkpoint %s = %d, %v; want %d, nil", name, got, err, want)
		}
	}
	load(name, 0)
	for _, pos := range []int64{42, 43, 7} { // a rebuild may move a checkpoint back
		if err := cp.SaveCheckpoint(ctx, name, pos); err != nil {
			t.Fatalf("save checkpoint %s at %d: %v", name, pos, err)
		}
		load(name, pos)
	}
	load(other, 0)
	if err := cp.SaveCheckpoint(ctx, other, 1); err != nil {
		t.Fatalf("save checkpoint %s: %v", other, err)
	}
	load(other, 1)
	load(name, 7)
}

// Every backend gives each event the metadata bytes it stored and hashed, whatever the
// strings hold: the chain then verifies from what was read, never from a re-encoding that
// may differ from the stored bytes (an invalid UTF-8 byte is stored as \ufffd).
func testMetadataAsStored(t *testing.T, s suite) {
	t.Parallel()
	st := s.newStore(t)
	ctx := s.context(t)
	for _, tc := range []struct {
		name string
		meta eventstore.Metadata
	}{
		{"plain", eventstore.Metadata{Actor: "user:test", Reason: "a plain reason"}},
		{"html characters", eventstore.Metadata{Actor: "a<b>&c", Reason: "<script>&amp;</script>"}},
		{"line separators", eventstore.Metadata{Reason: "one\u2028two\u2029three\nfour\tfive"}},
		{"Japanese", eventstore.Metadata{Actor: "佐藤", Reason: "契約更新のため", CorrelationID: "相関-1"}},
		{"invalid UTF-8", eventstore.Metadata{Reason: "bad \xff byte", CorrelationID: "\xfe\xff", CausationID: "x\xc3"}},
		{"NUL and controls", eventstore.Metadata{Reason: "nul\x00here\x01", Headers: `{"k":"v"}`}},
		{"escaped headers", eventstore.Metadata{Headers: `{"k":"<\u2028>"}`, RequestHash: "abc"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stream := streamName("meta")
			events := newEvents(2, "test.metadata.v1")
			for i := range events {
				events[i].Metadata = tc.meta
			}
			mustAppend(t, ctx, st, stream, eventstore.NoStream, events)
			// What the store holds is the one encoding of the metadata, decoded the way
			// encoding/json decodes it (an invalid byte becomes U+FFFD).
			stored := eventstore.EncodeMetadata(tc.meta)
			var decoded eventstore.Metadata
			if err := json.Unmarshal(stored, &decoded); err != nil {
				t.Fatal(err)
			}
			got := mustReadStream(t, ctx, st, stream, 1, 10)
			var prev []byte
			for _, e := range got {
				if e.MetadataJSON == nil {
					t.Fatalf("version %d: no stored metadata bytes", e.Version)
				}
				var fromBytes eventstore.Metadata
				if err := json.Unmarshal(e.MetadataJSON, &fromBytes); err != nil || fromBytes != e.Metadata {
					t.Errorf("version %d: metadata %+v is not what its bytes %q decode to (%+v, %v)", e.Version, e.Metadata, e.MetadataJSON, fromBytes, err)
				}
				if e.Metadata != decoded {
					t.Errorf("version %d: metadata %+v, want %+v", e.Version, e.Metadata, decoded)
				}
				if want := eventstore.ChainHash(prev, e); !bytes.Equal(e.Hash, want) {
					t.Errorf("version %d: hash %x, ChainHash of the read event %x", e.Version, e.Hash, want)
				}
				prev = e.Hash
			}
			if _, err := eventstore.VerifyStream(ctx, st, stream); err != nil {
				t.Errorf("verify stream: %v", err)
			}
		})
	}
}
