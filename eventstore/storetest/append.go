package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
)

func testRoundTrip(t *testing.T, s suite) {
	t.Parallel()
	st := s.newStore(t)
	ctx := s.context(t)
	stream := streamName("roundtrip")

	// A non-UTC zone and nanoseconds, so a backend that stores either is caught.
	occurred := time.Date(2024, 3, 1, 12, 30, 45, 123456789, time.FixedZone("CET", 3600))
	in := []eventstore.EventData{
		{
			ID:   newID(),
			Type: "contact.created.v1",
			Data: []byte(`{"name":"Zoë \"Z\" Ürün","tags":["a","b"],"n":1}`),
			Metadata: eventstore.Metadata{
				Actor:         "user:alice",
				CommandID:     newID(),
				CorrelationID: newID(),
				CausationID:   newID(),
				Reason:        "import from the old CRM ✓",
				RequestHash:   "sha256:" + randomHex(32),
			},
			OccurredAt: occurred,
		},
		{
			ID:         newID(),
			Type:       "contact.phase_changed.v1",
			Data:       []byte(`{"phase":"lead"}`),
			Metadata:   eventstore.Metadata{Actor: "system"},
			OccurredAt: occurred.Add(time.Second),
		},
	}
	before := time.Now()
	res := mustAppend(t, ctx, st, stream, eventstore.NoStream, in)
	after := time.Now()

	if res.Version != 2 {
		t.Errorf("append result version = %d, want 2", res.Version)
	}
	if res.Position <= 0 {
		t.Errorf("append result position = %d, want > 0", res.Position)
	}
	got := mustReadStream(t, ctx, st, stream, 1, 100)
	if len(got) != 2 {
		t.Fatalf("read %d events, want 2", len(got))
	}
	for i, e := range got {
		want := in[i]
		if e.ID != want.ID || e.Stream != stream || e.Version != int64(i+1) || e.Type != want.Type {
			t.Errorf("event %d: id %q stream %q version %d type %q, want %q %q %d %q",
				i, e.ID, e.Stream, e.Version, e.Type, want.ID, stream, i+1, want.Type)
		}
		if !bytes.Equal(e.Data, want.Data) {
			t.Errorf("event %d: data %s, want %s", i, e.Data, want.Data)
		}
		if e.Metadata != want.Metadata {
			t.Errorf("event %d: metadata %+v, want %+v", i, e.Metadata, want.Metadata)
		}
		if wantAt := eventstore.NormalizeTime(want.OccurredAt); !e.OccurredAt.Equal(wantAt) {
			t.Errorf("event %d: occurred at %v, want %v", i, e.OccurredAt, wantAt)
		}
		checkStoredTime(t, fmt.Sprintf("event %d occurred at", i), e.OccurredAt)
		checkStoredTime(t, fmt.Sprintf("event %d recorded at", i), e.RecordedAt)
		s.checkNow(t, fmt.Sprintf("event %d recorded at", i), e.RecordedAt, before, after)
		if len(e.Hash) == 0 {
			t.Errorf("event %d: no hash", i)
		}
	}
	if got[1].Position != res.Position {
		t.Errorf("last event position = %d, want the append result's %d", got[1].Position, res.Position)
	}
	if got[0].Position >= got[1].Position {
		t.Errorf("positions %d, %d do not increase", got[0].Position, got[1].Position)
	}
	if len(got[0].PrevHash) != 0 {
		t.Errorf("version 1 prev hash = %x, want empty", got[0].PrevHash)
	}
	if !bytes.Equal(got[1].PrevHash, got[0].Hash) {
		t.Errorf("version 2 prev hash = %x, want version 1 hash %x", got[1].PrevHash, got[0].Hash)
	}

	// The global log and the lookup by ID return the very same events.
	all, err := st.ReadAll(ctx, got[0].Position-1, 2)
	if err != nil {
		t.Fatalf("read all: %v", err)
	}
	if len(all) != 2 {
		t.Fatalf("read all returned %d events, want 2", len(all))
	}
	for i := range all {
		if d := diffEvent(all[i], got[i]); d != "" {
			t.Errorf("read all event %d differs from read stream: %s", i, d)
		}
		byID, err := st.EventByID(ctx, got[i].ID)
		if err != nil {
			t.Fatalf("event by id %s: %v", got[i].ID, err)
		}
		if d := diffEvent(byID, got[i]); d != "" {
			t.Errorf("event by id %d differs from read stream: %s", i, d)
		}
	}
}

// checkNow checks that a time stamped by the store lies between before and after.
func (s suite) checkNow(t *testing.T, what string, tm, before, after time.Time) {
	t.Helper()
	lo := eventstore.NormalizeTime(before).Add(-s.features.ClockSkew)
	hi := after.Add(s.features.ClockSkew)
	if tm.Before(lo) || tm.After(hi) {
		t.Errorf("%s = %v, want between %v and %v", what, tm, lo, hi)
	}
}

func testOccurredAtDefaultsToNow(t *testing.T, s suite) {
	t.Parallel()
	st := s.newStore(t)
	ctx := s.context(t)
	stream := streamName("occurred-now")
	before := time.Now()
	mustAppend(t, ctx, st, stream, eventstore.NoStream, newEvents(1, "test.happened.v1"))
	after := time.Now()
	got := mustReadStream(t, ctx, st, stream, 1, 10)
	if len(got) != 1 {
		t.Fatalf("read %d events, want 1", len(got))
	}
	checkStoredTime(t, "occurred at", got[0].OccurredAt)
	s.checkNow(t, "occurred at of an event appended without one", got[0].OccurredAt, before, after)
}

func testCallerOwnsSlices(t *testing.T, s suite) {
	t.Parallel()
	st := s.newStore(t)
	ctx := s.context(t)
	stream := streamName("owns")
	in := newEvents(1, "test.happened.v1")
	want := string(in[0].Data)
	mustAppend(t, ctx, st, stream, eventstore.NoStream, in)
	in[0].Data[0] = 'X' // the store must have copied what it was given

	got := mustReadStream(t, ctx, st, stream, 1, 10)
	if string(got[0].Data) != want {
		t.Fatalf("stored data = %s after the caller changed its slice, want %s", got[0].Data, want)
	}
	hash := bytes.Clone(got[0].Hash)
	got[0].Data[0] = 'Y' // and must not hand out its own buffers
	got[0].Hash[0] ^= 0xff

	again := mustReadStream(t, ctx, st, stream, 1, 10)
	if string(again[0].Data) != want || !bytes.Equal(again[0].Hash, hash) {
		t.Fatalf("read back data %s hash %x after the caller changed a returned slice, want %s %x",
			again[0].Data, again[0].Hash, want, hash)
	}
}

func testWrongExpectedVersion(t *testing.T, s suite) {
	t.Parallel()
	tests := []struct {
		name     string
		existing int // events in the stream before the append
		expected int64
	}{
		{"NoStreamOnExistingStream", 3, eventstore.NoStream},
		{"StaleVersion", 3, 1},
		{"FutureVersion", 3, 5},
		{"VersionOnMissingStream", 0, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := s.newStore(t)
			ctx := s.context(t)
			stream := streamName("wrong-version")
			if tc.existing > 0 {
				mustAppend(t, ctx, st, stream, eventstore.NoStream, newEvents(tc.existing, "test.happened.v1"))
			}
			_, err := st.Append(ctx, stream, tc.expected, newEvents(1, "test.happened.v1"))
			if !errors.Is(err, eventstore.ErrWrongExpectedVersion) {
				t.Fatalf("append at %d to a stream at %d: err = %v, want ErrWrongExpectedVersion", tc.expected, tc.existing, err)
			}
			var conflict *eventstore.VersionConflictError
			if !errors.As(err, &conflict) {
				t.Fatalf("err = %#v, want a *VersionConflictError", err)
			}
			if conflict.Stream != stream || conflict.Expected != tc.expected || conflict.Actual != int64(tc.existing) {
				t.Errorf("conflict = %+v, want stream %s expected %d actual %d", *conflict, stream, tc.expected, tc.existing)
			}
			if tc.existing == 0 {
				if _, err := st.ReadStream(ctx, stream, 1, 10); !errors.Is(err, eventstore.ErrStreamNotFound) {
					t.Errorf("read stream after a refused append: err = %v, want ErrStreamNotFound", err)
				}
				return
			}
			if got := mustReadStream(t, ctx, st, stream, 1, 100); !equalInts(versions(got), seq(1, int64(tc.existing))) {
				t.Errorf("stream versions after a refused append = %v, want %v", versions(got), seq(1, int64(tc.existing)))
			}
		})
	}
}

func testAnyVersion(t *testing.T, s suite) {
	t.Parallel()
	st := s.newStore(t)
	ctx := s.context(t)
	stream := streamName("any")
	res := mustAppend(t, ctx, st, stream, eventstore.AnyVersion, newEvents(2, "test.happened.v1"))
	if res.Version != 2 {
		t.Errorf("first append with any version: version = %d, want 2", res.Version)
	}
	res = mustAppend(t, ctx, st, stream, eventstore.AnyVersion, newEvents(1, "test.happened.v1"))
	if res.Version != 3 {
		t.Errorf("second append with any version: version = %d, want 3", res.Version)
	}
	got := mustReadStream(t, ctx, st, stream, 1, 100)
	if !equalInts(versions(got), seq(1, 3)) {
		t.Errorf("versions = %v, want 1..3", versions(got))
	}
	if got[2].Position != res.Position {
		t.Errorf("last position = %d, want %d", got[2].Position, res.Position)
	}
}

func testConcurrentAppendsOneWinner(t *testing.T, s suite) {
	t.Parallel()
	for _, writers := range []int{2, 8, 64} {
		if writers > s.maxWriters() {
			continue
		}
		t.Run(fmt.Sprintf("Writers%d", writers), func(t *testing.T) {
			t.Parallel()
			st := s.newStore(t)
			ctx := s.context(t)
			stream := streamName("race")
			// Two rounds: creating the stream, then extending it.
			for round, expected := range []int64{eventstore.NoStream, 1} {
				start := make(chan struct{})
				errs := make([]error, writers)
				ids := make([]string, writers)
				var wg sync.WaitGroup
				for w := range writers {
					events := newEvents(1, "test.raced.v1")
					ids[w] = events[0].ID
					wg.Go(func() {
						<-start
						_, errs[w] = st.Append(ctx, stream, expected, events)
					})
				}
				close(start)
				wg.Wait()

				winner := -1
				for w, err := range errs {
					switch {
					case err == nil && winner >= 0:
						t.Errorf("round %d: writers %d and %d both appended at version %d", round, winner, w, expected)
					case err == nil:
						winner = w
					case !errors.Is(err, eventstore.ErrWrongExpectedVersion):
						t.Errorf("round %d: loser %d: err = %v, want ErrWrongExpectedVersion", round, w, err)
					default:
						var conflict *eventstore.VersionConflictError
						if !errors.As(err, &conflict) || conflict.Actual != expected+1 {
							t.Errorf("round %d: loser %d: err = %v, want a conflict with actual version %d", round, w, err, expected+1)
						}
					}
				}
				if winner < 0 {
					t.Fatalf("round %d: no writer won", round)
				}
				got := mustReadStream(t, ctx, st, stream, 1, 100)
				if !equalInts(versions(got), seq(1, expected+1)) {
					t.Fatalf("round %d: versions = %v, want %v", round, versions(got), seq(1, expected+1))
				}
				if got[expected].ID != ids[winner] {
					t.Errorf("round %d: version %d holds event %s, want the winner's %s", round, expected+1, got[expected].ID, ids[winner])
				}
			}
		})
	}
}

// testConcurrentRetryLoop runs writers that each append a few events to one stream the way a
// command handler does: read the version, append at it, retry on conflict.
func testConcurrentRetryLoop(t *testing.T, s suite) {
	t.Parallel()
	st := s.newStore(t)
	ctx := s.context(t)
	stream := streamName("retry-loop")
	writers := min(16, s.maxWriters())
	const perWriter = 3
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for w := range writers {
		wg.Go(func() {
			for n := 0; n < perWriter; {
				version := int64(0)
				events, err := st.ReadStream(ctx, stream, 1, 1000)
				if err != nil && !errors.Is(err, eventstore.ErrStreamNotFound) {
					errs[w] = err
					return
				}
				if len(events) > 0 {
					version = events[len(events)-1].Version
				}
				_, err = st.Append(ctx, stream, version, newEvents(1, "test.raced.v1"))
				switch {
				case err == nil:
					n++
				case !errors.Is(err, eventstore.ErrWrongExpectedVersion):
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for w, err := range errs {
		if err != nil {
			t.Errorf("writer %d: %v", w, err)
		}
	}
	got := mustReadStream(t, ctx, st, stream, 1, 10000)
	if want := seq(1, int64(writers*perWriter)); !equalInts(versions(got), want) {
		t.Fatalf("versions = %v, want 1..%d without holes", versions(got), writers*perWriter)
	}
	if _, err := eventstore.VerifyStream(ctx, st, stream); err != nil {
		t.Errorf("verify stream: %v", err)
	}
}

// testConcurrentDifferentStreams checks that concurrent appends that do not conflict all
// succeed and land where they say they did.
func testConcurrentDifferentStreams(t *testing.T, s suite) {
	t.Parallel()
	st := s.newStore(t)
	ctx := s.context(t)
	writers := s.maxWriters()
	const perWriter = 4
	prefix := streamName("parallel")
	type landed struct {
		id  string
		res eventstore.AppendResult
	}
	results := make([][]landed, writers)
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			stream := fmt.Sprintf("%s-%d", prefix, w)
			for v := range int64(perWriter) {
				events := newEvents(1, "test.happened.v1")
				res, err := st.Append(ctx, stream, v, events)
				if err != nil {
					errs[w] = err
					return
				}
				results[w] = append(results[w], landed{events[0].ID, res})
			}
		})
	}
	wg.Wait()
	positions := make(map[int64]string)
	for w := range writers {
		if errs[w] != nil {
			t.Errorf("writer %d: %v", w, errs[w])
			continue
		}
		stream := fmt.Sprintf("%s-%d", prefix, w)
		got := mustReadStream(t, ctx, st, stream, 1, 100)
		if !equalInts(versions(got), seq(1, perWriter)) {
			t.Errorf("%s: versions = %v, want 1..%d", stream, versions(got), perWriter)
			continue
		}
		for i, e := range got {
			l := results[w][i]
			if e.ID != l.id || e.Version != l.res.Version || e.Position != l.res.Position {
				t.Errorf("%s: event %s at version %d position %d, append said %s at %d position %d",
					stream, e.ID, e.Version, e.Position, l.id, l.res.Version, l.res.Position)
			}
			if other, dup := positions[e.Position]; dup {
				t.Errorf("position %d holds both %s and %s", e.Position, other, e.ID)
			}
			positions[e.Position] = e.ID
		}
	}
}

func testIdempotentRetry(t *testing.T, s suite) {
	t.Parallel()
	st := s.newStore(t)
	ctx := s.context(t)
	stream := streamName("retry")
	first := newEvents(2, "test.happened.v1")
	res := mustAppend(t, ctx, st, stream, eventstore.NoStream, first)

	// The response of the first append was lost: the client sends it again, as it was.
	again, err := st.Append(ctx, stream, eventstore.NoStream, first)
	if err != nil {
		t.Fatalf("retry with the same event ids: %v", err)
	}
	if again != res {
		t.Errorf("retry result = %+v, want the original %+v", again, res)
	}
	if again, err = st.Append(ctx, stream, eventstore.AnyVersion, first); err != nil || again != res {
		t.Errorf("retry with any version = %+v, %v; want %+v, nil", again, err, res)
	}

	// Still a retry after the stream moved on.
	second := newEvents(1, "test.happened.v1")
	res2 := mustAppend(t, ctx, st, stream, 2, second)
	if again, err = st.Append(ctx, stream, eventstore.NoStream, first); err != nil || again != res {
		t.Errorf("retry of the first append after another one = %+v, %v; want %+v, nil", again, err, res)
	}
	if again, err = st.Append(ctx, stream, 2, second); err != nil || again != res2 {
		t.Errorf("retry of the second append = %+v, %v; want %+v, nil", again, err, res2)
	}

	got := mustReadStream(t, ctx, st, stream, 1, 100)
	wantIDs := []string{first[0].ID, first[1].ID, second[0].ID}
	if len(got) != len(wantIDs) {
		t.Fatalf("stream holds %d events after retries, want %d", len(got), len(wantIDs))
	}
	for i, e := range got {
		if e.ID != wantIDs[i] || e.Version != int64(i+1) {
			t.Errorf("event %d = %s at version %d, want %s at %d", i, e.ID, e.Version, wantIDs[i], i+1)
		}
	}
	// Nothing was written to the global log either.
	seen := make(map[string]int)
	for _, e := range readAllUpTo(t, ctx, st, got[0].Position-1, got[2].Position) {
		seen[e.ID]++
	}
	for _, id := range wantIDs {
		if seen[id] != 1 {
			t.Errorf("event %s is %d times in the global log, want once", id, seen[id])
		}
	}
}

func testDuplicateEventID(t *testing.T, s suite) {
	t.Parallel()
	st := s.newStore(t)
	ctx := s.context(t)
	stream := streamName("dup")
	stored := newEvents(3, "test.happened.v1")
	mustAppend(t, ctx, st, stream, eventstore.NoStream, stored)
	other := streamName("dup-other")
	fresh := newEvents(1, "test.happened.v1")[0]

	tests := []struct {
		name     string
		stream   string
		expected int64
		events   []eventstore.EventData
	}{
		{"OtherStream", other, eventstore.NoStream, stored[:1]},
		{"SameStreamNextVersion", stream, 3, stored[:1]},
		{"SameStreamEarlierPosition", stream, eventstore.NoStream, stored[1:2]},
		{"PartlyStored", stream, 3, []eventstore.EventData{fresh, stored[0]}},
		{"StoredThenNew", stream, eventstore.AnyVersion, []eventstore.EventData{stored[2], fresh}},
		{"Reordered", stream, eventstore.AnyVersion, []eventstore.EventData{stored[1], stored[0]}},
		{"NotConsecutive", stream, eventstore.AnyVersion, []eventstore.EventData{stored[0], stored[2]}},
	}
	for _, tc := range tests {
		_, err := st.Append(ctx, tc.stream, tc.expected, tc.events)
		if !errors.Is(err, eventstore.ErrDuplicateEventID) {
			t.Errorf("%s: err = %v, want ErrDuplicateEventID", tc.name, err)
		}
	}
	if got := mustReadStream(t, ctx, st, stream, 1, 100); !equalInts(versions(got), seq(1, 3)) {
		t.Errorf("versions after refused duplicates = %v, want 1..3", versions(got))
	}
	if _, err := st.ReadStream(ctx, other, 1, 10); !errors.Is(err, eventstore.ErrStreamNotFound) {
		t.Errorf("read the stream a duplicate was refused from: err = %v, want ErrStreamNotFound", err)
	}
	if _, err := st.EventByID(ctx, fresh.ID); !errors.Is(err, eventstore.ErrEventNotFound) {
		t.Errorf("event of a refused append: err = %v, want ErrEventNotFound", err)
	}
}

func testInvalidAppend(t *testing.T, s suite) {
	t.Parallel()
	st := s.newStore(t)
	ctx := s.context(t)
	one := func(mut func(*eventstore.EventData)) []eventstore.EventData {
		events := newEvents(1, "test.happened.v1")
		mut(&events[0])
		return events
	}
	twice := newEvents(1, "test.happened.v1")
	twice = append(twice, twice[0])
	tests := []struct {
		name     string
		stream   string
		expected int64
		events   []eventstore.EventData
	}{
		{"EmptyStreamName", "", eventstore.NoStream, newEvents(1, "test.happened.v1")},
		{"NilEvents", streamName("invalid"), eventstore.NoStream, nil},
		{"NoEvents", streamName("invalid"), eventstore.NoStream, []eventstore.EventData{}},
		{"NoID", streamName("invalid"), eventstore.NoStream, one(func(e *eventstore.EventData) { e.ID = "" })},
		{"NoType", streamName("invalid"), eventstore.NoStream, one(func(e *eventstore.EventData) { e.Type = "" })},
		{"SameIDTwice", streamName("invalid"), eventstore.NoStream, twice},
		{"ExpectedBelowAny", streamName("invalid"), -2, newEvents(1, "test.happened.v1")},
	}
	for _, tc := range tests {
		_, err := st.Append(ctx, tc.stream, tc.expected, tc.events)
		if !errors.Is(err, eventstore.ErrInvalidAppend) {
			t.Errorf("%s: err = %v, want ErrInvalidAppend", tc.name, err)
		}
		if tc.stream == "" {
			continue
		}
		if _, err := st.ReadStream(ctx, tc.stream, 1, 10); !errors.Is(err, eventstore.ErrStreamNotFound) {
			t.Errorf("%s: read stream after the refused append: err = %v, want ErrStreamNotFound", tc.name, err)
		}
	}
}
