package esdb

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"testing"
	"time"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/eventcrm/crm/eventstore"
)

func TestExpectedRevision(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		expected int64
		want     esdbclient.ExpectedRevision
		wantErr  error
	}{
		{"any", eventstore.AnyVersion, esdbclient.Any{}, nil},
		{"no stream", eventstore.NoStream, esdbclient.NoStream{}, nil},
		{"version 1 is revision 0", 1, esdbclient.Revision(0), nil},
		{"version 2 is revision 1", 2, esdbclient.Revision(1), nil},
		{"large version", math.MaxInt64, esdbclient.Revision(math.MaxInt64 - 1), nil},
		{"below any", -2, nil, eventstore.ErrInvalidAppend},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := expectedRevision(tt.expected)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("expectedRevision(%d) error = %v, want %v", tt.expected, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("expectedRevision(%d) = %#v, want %#v", tt.expected, got, tt.want)
			}
		})
	}
}

func TestRevisionToVersion(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		rev     uint64
		want    int64
		wantErr bool
	}{
		{"first event", 0, 1, false},
		{"second event", 1, 2, false},
		{"largest", math.MaxInt64 - 1, math.MaxInt64, false},
		{"overflow", math.MaxInt64, 0, true},
		{"no revision", math.MaxUint64, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := revisionToVersion(tt.rev)
			if (err != nil) != tt.wantErr {
				t.Fatalf("revisionToVersion(%d) error = %v, want error %v", tt.rev, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("revisionToVersion(%d) = %d, want %d", tt.rev, got, tt.want)
			}
		})
	}
}

// Mapping a version to a revision and back is the identity.
func TestRevisionRoundTrip(t *testing.T) {
	t.Parallel()
	for _, v := range []int64{1, 2, 3, 1000, math.MaxInt64} {
		rev, err := expectedRevision(v)
		if err != nil {
			t.Fatal(err)
		}
		got, err := revisionToVersion(rev.(esdbclient.StreamRevision).Value)
		if err != nil || got != v {
			t.Errorf("version %d -> %v -> %d, %v", v, rev, got, err)
		}
	}
}

func TestReadFrom(t *testing.T) {
	t.Parallel()
	tests := []struct {
		from int64
		want esdbclient.StreamPosition
	}{
		{-1, esdbclient.Start{}},
		{0, esdbclient.Start{}},
		{1, esdbclient.Start{}},
		{2, esdbclient.Revision(1)},
		{10, esdbclient.Revision(9)},
	}
	for _, tt := range tests {
		if got := readFrom(tt.from); got != tt.want {
			t.Errorf("readFrom(%d) = %#v, want %#v", tt.from, got, tt.want)
		}
	}
}

func TestPositionOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		pos    esdbclient.Position
		want   int64
		wantOK bool
	}{
		{"commit position", esdbclient.Position{Commit: 137783, Prepare: 137783}, 137783, true},
		{"commit wins over prepare", esdbclient.Position{Commit: 500, Prepare: 420}, 500, true},
		{"largest", esdbclient.Position{Commit: math.MaxInt64, Prepare: math.MaxInt64}, math.MaxInt64, true},
		{"not reported on stream reads of old servers", esdbclient.Position{Commit: math.MaxUint64, Prepare: math.MaxUint64}, 0, false},
		{"beyond int64", esdbclient.Position{Commit: math.MaxInt64 + 1}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := positionOf(tt.pos)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("positionOf(%+v) = %d, %v, want %d, %v", tt.pos, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestInternalEvent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		stream, eventType string
		want              bool
	}{
		{"contact-1", "contact.created.v1", false},
		{"contact-1", "$>", true},
		{"contact-1", "$metadata", true},
		{"$$contact-1", "$metadata", true},
		{"$ce-contact", "contact.created.v1", true},
		{"$stats-127.0.0.1:2113", "$statsCollected", true},
		{"crm-eventid-0f6c8a7e-3c1b-4f7e-9a52-6d1e8b2c4a90", claimEventType, true},
		{"crm-eventid-x", "anything", true},
		{"crm-contact-1", "contact.created.v1", false},
	}
	for _, tt := range tests {
		if got := internalEvent(tt.stream, tt.eventType); got != tt.want {
			t.Errorf("internalEvent(%q, %q) = %v, want %v", tt.stream, tt.eventType, got, tt.want)
		}
	}
	if reservedStream("contact-1") || !reservedStream("$all") || !reservedStream(claimStreamPrefix+"x") {
		t.Error("reservedStream disagrees with its contract")
	}
}

func TestEventUUID(t *testing.T) {
	t.Parallel()
	const canonical = "5a1e3c4d-2b6f-4a8e-9c0d-1e2f3a4b5c6d"
	tests := []struct {
		name          string
		id            string
		wantCanonical bool
	}{
		{"canonical", canonical, true},
		{"upper case", "5A1E3C4D-2B6F-4A8E-9C0D-1E2F3A4B5C6D", false},
		{"braces", "{" + canonical + "}", false},
		{"urn", "urn:uuid:" + canonical, false},
		{"no hyphens", "5a1e3c4d2b6f4a8e9c0d1e2f3a4b5c6d", false},
		{"not a uuid", "event-1", false},
	}
	seen := map[uuid.UUID]string{}
	for _, tt := range tests {
		got, isCanonical := eventUUID(tt.id)
		if isCanonical != tt.wantCanonical {
			t.Errorf("eventUUID(%q) canonical = %v, want %v", tt.id, isCanonical, tt.wantCanonical)
		}
		if isCanonical && got.String() != tt.id {
			t.Errorf("eventUUID(%q) = %s, want the id itself", tt.id, got)
		}
		if again, _ := eventUUID(tt.id); again != got {
			t.Errorf("eventUUID(%q) is not deterministic: %s then %s", tt.id, got, again)
		}
		if other, dup := seen[got]; dup {
			t.Errorf("eventUUID(%q) = eventUUID(%q) = %s", tt.id, other, got)
		}
		seen[got] = tt.id
	}
}

func testEvent(id string) eventstore.Event {
	occurred := time.Date(2024, 3, 1, 9, 30, 0, 123456000, time.UTC)
	recorded := time.Date(2024, 3, 1, 9, 30, 1, 654321000, time.UTC)
	return buildEvents("contact-42", head{version: 6, hash: bytes.Repeat([]byte{0xab}, 32)}, recorded, []eventstore.EventData{{
		ID:   id,
		Type: "contact.phase_changed.v1",
		Data: []byte(`{"phase":"customer"}`),
		Metadata: eventstore.Metadata{
			Actor:         "user-7",
			CommandID:     "cmd-1",
			CorrelationID: "corr-1",
			CausationID:   "cause-1",
			Reason:        "signed",
			RequestHash:   "rh",
		},
		OccurredAt: occurred,
	}})[0]
}

// recordedFrom is what EventStoreDB hands back for data appended at revision rev.
func recordedFrom(stream string, rev uint64, pos esdbclient.Position, d esdbclient.EventData) *esdbclient.RecordedEvent {
	contentType := "application/octet-stream"
	if d.ContentType == esdbclient.ContentTypeJson {
		contentType = "application/json"
	}
	return &esdbclient.RecordedEvent{
		EventID:      d.EventID,
		EventType:    d.EventType,
		ContentType:  contentType,
		StreamID:     stream,
		EventNumber:  rev,
		Position:     pos,
		CreatedDate:  time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), // never used for our events
		Data:         d.Data,
		UserMetadata: d.Metadata,
	}
}

func TestEventRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		id   string
	}{
		{"uuid id", "5a1e3c4d-2b6f-4a8e-9c0d-1e2f3a4b5c6d"},
		{"other id", "evt-42"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			want := testEvent(tt.id)
			want.Position = 11629380
			data, err := toEventData(want)
			if err != nil {
				t.Fatal(err)
			}
			if u, _ := eventUUID(tt.id); data.EventID != u {
				t.Errorf("event id %s, want %s", data.EventID, u)
			}
			if data.EventType != want.Type || data.ContentType != esdbclient.ContentTypeJson || !bytes.Equal(data.Data, want.Data) {
				t.Errorf("event data = %+v", data)
			}
			got, err := fromRecorded(recordedFrom(want.Stream, 6, esdbclient.Position{Commit: 11629380, Prepare: 11629380}, data))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

// The user metadata JSON is what other tools and old events see: its field names are frozen.
func TestUserMetadataJSON(t *testing.T) {
	t.Parallel()
	e := testEvent("evt-42")
	e.PrevHash = []byte{0x01, 0x02}
	e.Hash = []byte{0xfe, 0xff}
	data, err := toEventData(e)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"actor":"user-7","command_id":"cmd-1","correlation_id":"corr-1","causation_id":"cause-1",` +
		`"reason":"signed","request_hash":"rh","occurred_at":"2024-03-01T09:30:00.123456Z",` +
		`"recorded_at":"2024-03-01T09:30:01.654321Z","version":7,"prev_hash":"0102","hash":"feff","event_id":"evt-42"}`
	if string(data.Metadata) != want {
		t.Errorf("metadata JSON\n got %s\nwant %s", data.Metadata, want)
	}

	first := buildEvents("s", head{}, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), []eventstore.EventData{{ID: "5a1e3c4d-2b6f-4a8e-9c0d-1e2f3a4b5c6d", Type: "t"}})[0]
	first.Hash = []byte{0x0a}
	data, err = toEventData(first)
	if err != nil {
		t.Fatal(err)
	}
	const wantFirst = `{"occurred_at":"2024-01-01T00:00:00Z","recorded_at":"2024-01-01T00:00:00Z","version":1,"hash":"0a"}`
	if string(data.Metadata) != wantFirst {
		t.Errorf("metadata JSON of a first event with a UUID id\n got %s\nwant %s", data.Metadata, wantFirst)
	}
}

func TestToEventDataContentType(t *testing.T) {
	t.Parallel()
	tests := []struct {
		data []byte
		want esdbclient.ContentType
	}{
		{[]byte(`{"a":1}`), esdbclient.ContentTypeJson},
		{[]byte(`[]`), esdbclient.ContentTypeJson},
		{[]byte(`not json`), esdbclient.ContentTypeBinary},
		{nil, esdbclient.ContentTypeBinary},
	}
	for _, tt := range tests {
		e := testEvent("evt")
		e.Data = tt.data
		d, err := toEventData(e)
		if err != nil {
			t.Fatal(err)
		}
		if d.ContentType != tt.want {
			t.Errorf("content type of %q = %v, want %v", tt.data, d.ContentType, tt.want)
		}
	}
}

func TestFromRecordedForeignEvent(t *testing.T) {
	t.Parallel()
	id := uuid.MustParse("5a1e3c4d-2b6f-4a8e-9c0d-1e2f3a4b5c6d")
	created := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	rec := &esdbclient.RecordedEvent{
		EventID: id, EventType: "imported.v1", StreamID: "contact-1", EventNumber: 0,
		Position:    esdbclient.Position{Commit: math.MaxUint64, Prepare: math.MaxUint64},
		CreatedDate: created, Data: []byte(`{}`),
	}
	got, err := fromRecorded(rec)
	if err != nil {
		t.Fatal(err)
	}
	want := eventstore.Event{
		ID: id.String(), Stream: "contact-1", Version: 1, Position: 0, Type: "imported.v1", Data: []byte(`{}`),
		OccurredAt: eventstore.NormalizeTime(created), RecordedAt: eventstore.NormalizeTime(created),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("foreign event:\n got %+v\nwant %+v", got, want)
	}
	// Without hashes, the chain reports it.
	if err := eventstore.NewChainVerifier().Check(got); !errors.Is(err, eventstore.ErrBrokenChain) {
		t.Errorf("chain check of a foreign event = %v, want ErrBrokenChain", err)
	}
}

func TestFromRecordedBadMetadata(t *testing.T) {
	t.Parallel()
	for name, meta := range map[string]string{
		"not json":       `{"actor":`,
		"wrong type":     `{"version":"seven"}`,
		"bad hash":       `{"hash":"zz"}`,
		"bad prev hash":  `{"hash":"00","prev_hash":"0"}`,
		"bad occurrence": `{"occurred_at":"yesterday"}`,
	} {
		rec := &esdbclient.RecordedEvent{EventID: uuid.New(), EventType: "t", StreamID: "s", UserMetadata: []byte(meta)}
		if _, err := fromRecorded(rec); err == nil {
			t.Errorf("%s: fromRecorded accepted metadata %s", name, meta)
		}
	}
	rec := &esdbclient.RecordedEvent{EventID: uuid.New(), EventType: "t", StreamID: "s", EventNumber: math.MaxUint64}
	if _, err := fromRecorded(rec); err == nil {
		t.Error("fromRecorded accepted revision 2^64-1")
	}
}

// On read, the stream revision wins over the version in the metadata, and hash verification
// catches an event that moved.
func TestFromRecordedMovedEvent(t *testing.T) {
	t.Parallel()
	e := testEvent("evt-1")
	data, err := toEventData(e)
	if err != nil {
		t.Fatal(err)
	}
	got, err := fromRecorded(recordedFrom(e.Stream, 9, esdbclient.Position{Commit: 1, Prepare: 1}, data))
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 10 {
		t.Errorf("version = %d, want the revision's 10", got.Version)
	}
	if bytes.Equal(eventstore.ChainHash(got.PrevHash, got), got.Hash) {
		t.Error("hash still verifies for a moved event")
	}
}

func TestBuildEvents(t *testing.T) {
	t.Parallel()
	recorded := time.Date(2024, 3, 1, 9, 30, 1, 654321999, time.FixedZone("CET", 3600))
	occurred := time.Date(2023, 12, 24, 18, 0, 0, 0, time.UTC)
	in := []eventstore.EventData{
		{ID: "a", Type: "t.v1", Data: []byte(`{"n":1}`), OccurredAt: occurred},
		{ID: "b", Type: "t.v1", Data: []byte(`{"n":2}`)},
		{ID: "c", Type: "t.v1", Data: []byte(`{"n":3}`)},
	}
	v := eventstore.NewChainVerifier()
	first := buildEvents("s", head{}, recorded, in[:1])
	rest := buildEvents("s", head{version: 1, hash: first[0].Hash}, recorded, in[1:])
	for i, e := range append(first, rest...) {
		if err := v.Check(e); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if e.Version != int64(i+1) || e.Stream != "s" || e.ID != in[i].ID {
			t.Errorf("event %d = %+v", i, e)
		}
		if want := eventstore.NormalizeTime(recorded); !e.RecordedAt.Equal(want) || e.RecordedAt.Location() != time.UTC {
			t.Errorf("event %d recorded at %v, want %v", i, e.RecordedAt, want)
		}
	}
	if first[0].PrevHash != nil {
		t.Errorf("first event prev hash = %x, want none", first[0].PrevHash)
	}
	if !first[0].OccurredAt.Equal(occurred) {
		t.Errorf("occurred at %v, want %v", first[0].OccurredAt, occurred)
	}
	if !rest[0].OccurredAt.Equal(rest[0].RecordedAt) {
		t.Errorf("zero occurred at became %v, want the recorded time %v", rest[0].OccurredAt, rest[0].RecordedAt)
	}
	// Append's slices are its own.
	in[1].Data[0] = 'X'
	if rest[0].Data[0] == 'X' {
		t.Error("event data aliases the caller's slice")
	}
}

func TestClaimJSON(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(claim{Stream: "contact-1", Version: 3})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"stream":"contact-1","version":3}`; got != want {
		t.Errorf("claim JSON = %s, want %s", got, want)
	}
}

func TestAllPositionsAfter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		after int64
		want  []esdbclient.AllPosition
	}{
		{-5, []esdbclient.AllPosition{esdbclient.Start{}}},
		{0, []esdbclient.AllPosition{esdbclient.Start{}}},
		{1, []esdbclient.AllPosition{esdbclient.Position{Commit: 1, Prepare: 1}, esdbclient.Position{Commit: 2, Prepare: 2}}},
		{11629379, []esdbclient.AllPosition{
			esdbclient.Position{Commit: 11629379, Prepare: 11629379},
			esdbclient.Position{Commit: 11629380, Prepare: 11629380},
		}},
	}
	for _, tt := range tests {
		if got := allPositionsAfter(tt.after); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("allPositionsAfter(%d) = %#v, want %#v", tt.after, got, tt.want)
		}
	}
	// The position of an event maps back to itself first, and position-1 to it second.
	for _, p := range []esdbclient.Position{{Commit: 42, Prepare: 42}, {Commit: 987654321, Prepare: 987654321}} {
		pos, ok := positionOf(p)
		if !ok {
			t.Fatalf("positionOf(%+v) not ok", p)
		}
		if got := allPositionsAfter(pos)[0]; got != p {
			t.Errorf("position %+v -> %d -> %#v first", p, pos, got)
		}
		if got := allPositionsAfter(pos - 1)[1]; got != p {
			t.Errorf("position %+v -> %d-1 -> %#v second", p, pos, got)
		}
	}
}

func TestCursorAccept(t *testing.T) {
	t.Parallel()
	e := testEvent("5a1e3c4d-2b6f-4a8e-9c0d-1e2f3a4b5c6d")
	data, err := toEventData(e)
	if err != nil {
		t.Fatal(err)
	}
	at := func(stream, eventType string, pos uint64) *esdbclient.RecordedEvent {
		rec := recordedFrom(stream, 6, esdbclient.Position{Commit: pos, Prepare: pos}, data)
		rec.EventType = eventType
		return rec
	}
	c := cursor{floor: 100}
	steps := []struct {
		name    string
		rec     *esdbclient.RecordedEvent
		want    bool
		wantErr bool
	}{
		{"at the floor", at("contact-42", e.Type, 100), false, false},
		{"below the floor", at("contact-42", e.Type, 50), false, false},
		{"system event", at("$stats-node", "$statsCollected", 150), false, false},
		{"link", at("contact-42", "$>", 160), false, false},
		{"event id index", at(claimStreamPrefix+"x", claimEventType, 170), false, false},
		{"event after the floor", at("contact-42", e.Type, 200), true, false},
		{"same position again", at("contact-42", e.Type, 200), false, false},
		{"no position", at("contact-42", e.Type, math.MaxUint64), false, true},
	}
	for _, st := range steps {
		got, ok, err := c.accept(st.rec)
		if (err != nil) != st.wantErr || ok != st.want {
			t.Fatalf("%s: accept = %v, %v; want %v, error %v", st.name, ok, err, st.want, st.wantErr)
		}
		if ok && (got.Position != 200 || got.ID != e.ID) {
			t.Errorf("%s: event %+v", st.name, got)
		}
	}
	if c.floor != 200 {
		t.Errorf("floor = %d, want 200", c.floor)
	}
}
