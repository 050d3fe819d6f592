package esdb

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/eventcrm/crm/eventstore"
)

// expectedRevision maps an expected version of package eventstore to an EventStoreDB expected
// revision. Versions count events from 1, revisions from 0: version N is revision N-1.
func expectedRevision(expected int64) (esdbclient.ExpectedRevision, error) {
	switch {
	case expected == eventstore.AnyVersion:
		return esdbclient.Any{}, nil
	case expected == eventstore.NoStream:
		return esdbclient.NoStream{}, nil
	case expected >= 1:
		return esdbclient.Revision(uint64(expected - 1)), nil
	default:
		return nil, fmt.Errorf("expected version %d: %w", expected, eventstore.ErrInvalidAppend)
	}
}

// revisionToVersion is the inverse of expectedRevision for a stored event: the event at
// revision rev has version rev+1.
func revisionToVersion(rev uint64) (int64, error) {
	if rev >= math.MaxInt64 {
		return 0, fmt.Errorf("stream revision %d does not fit a version", rev)
	}
	return int64(rev) + 1, nil
}

// readFrom maps the first version a stream read wants to where EventStoreDB starts reading.
func readFrom(from int64) esdbclient.StreamPosition {
	if from <= 1 {
		return esdbclient.Start{}
	}
	return esdbclient.Revision(uint64(from - 1))
}

// positionOf maps an EventStoreDB log position to a global position: its commit position.
//
// Commit positions are byte offsets in the transaction log: increasing in commit order but not
// dense. Events appended through gRPC (never in an explicit transaction) have commit position ==
// prepare position, one per event, so the commit position alone identifies an event in $all.
// ok is false when the server reported no position: stream reads on servers older than 22.6
// report 2^64-1. allPositionsAfter maps back.
func positionOf(p esdbclient.Position) (pos int64, ok bool) {
	if p.Commit > math.MaxInt64 {
		return 0, false
	}
	return int64(p.Commit), true
}

// claimStreamPrefix names the streams of the event id index (see claim.go).
const claimStreamPrefix = "crm-eventid-"

// reservedStream reports whether stream is not for events of this project: system streams of
// EventStoreDB and the event id index.
func reservedStream(stream string) bool {
	return strings.HasPrefix(stream, "$") || strings.HasPrefix(stream, claimStreamPrefix)
}

// internalEvent reports whether a record of $all is left out of the global log: system events
// (type or stream starting with "$", links included) and the event id index.
func internalEvent(stream, eventType string) bool {
	return strings.HasPrefix(eventType, "$") || reservedStream(stream)
}

// eventIDNamespace derives event UUIDs from IDs that are not canonical UUIDs (uuid version 5).
const eventIDNamespace = "0f6c8a7e-3c1b-4f7e-9a52-6d1e8b2c4a90"

// eventUUID maps an event ID to the UUID EventStoreDB stores. A canonical UUID (lower-case,
// hyphenated) is used as is; any other string gets a name-based UUID and canonical reports
// false, so that the original text is kept in the event's metadata.
func eventUUID(id string) (u uuid.UUID, canonical bool) {
	if u, err := uuid.Parse(id); err == nil && u.String() == id {
		return u, true
	}
	return uuid.NewSHA1(uuid.MustParse(eventIDNamespace), []byte(id)), false
}

// userMetadata is the user metadata JSON of an event in EventStoreDB: the event's Metadata plus
// what the log records about it, so that times and the hash chain survive a round trip.
type userMetadata struct {
	eventstore.Metadata
	OccurredAt time.Time `json:"occurred_at"`
	RecordedAt time.Time `json:"recorded_at"`
	// Version duplicates the stream revision for readers of raw EventStoreDB data; on read the
	// revision wins, and an event moved to another revision fails hash verification.
	Version  int64  `json:"version"`
	PrevHash string `json:"prev_hash,omitempty"` // hex
	Hash     string `json:"hash"`                // hex
	// EventID is the original ID when it is not a canonical UUID.
	EventID string `json:"event_id,omitempty"`
}

// toEventData maps a recorded event (stream, version, times and hashes decided by Append) to
// what EventStoreDB stores. Data that is not JSON is stored as binary.
func toEventData(e eventstore.Event) (esdbclient.EventData, error) {
	id, canonical := eventUUID(e.ID)
	md := userMetadata{
		Metadata:   e.Metadata,
		OccurredAt: e.OccurredAt,
		RecordedAt: e.RecordedAt,
		Version:    e.Version,
		PrevHash:   hex.EncodeToString(e.PrevHash),
		Hash:       hex.EncodeToString(e.Hash),
	}
	if !canonical {
		md.EventID = e.ID
	}
	meta, err := json.Marshal(md)
	if err != nil {
		return esdbclient.EventData{}, fmt.Errorf("event %s: encode metadata: %w", e.ID, err)
	}
	contentType := esdbclient.ContentTypeBinary
	if json.Valid(e.Data) {
		contentType = esdbclient.ContentTypeJson
	}
	return esdbclient.EventData{
		EventID:     id,
		EventType:   e.Type,
		ContentType: contentType,
		Data:        bytes.Clone(e.Data),
		Metadata:    meta,
	}, nil
}

// fromRecorded maps an event read from EventStoreDB back. Its Position is 0 when the server
// reported none (see positionOf). An event without user metadata was written by another tool:
// it gets the server's creation time and no hashes, so chain verification reports it.
func fromRecorded(r *esdbclient.RecordedEvent) (eventstore.Event, error) {
	version, err := revisionToVersion(r.EventNumber)
	if err != nil {
		return eventstore.Event{}, fmt.Errorf("event %s of stream %q: %w", r.EventID, r.StreamID, err)
	}
	e := eventstore.Event{
		ID:      r.EventID.String(),
		Stream:  r.StreamID,
		Version: version,
		Type:    r.EventType,
		Data:    bytes.Clone(r.Data),
	}
	if pos, ok := positionOf(r.Position); ok {
		e.Position = pos
	}
	if len(r.UserMetadata) == 0 {
		e.RecordedAt = eventstore.NormalizeTime(r.CreatedDate)
		e.OccurredAt = e.RecordedAt
		return e, nil
	}
	var md userMetadata
	if err := json.Unmarshal(r.UserMetadata, &md); err != nil {
		return eventstore.Event{}, fmt.Errorf("event %s of stream %q: decode metadata: %w", r.EventID, r.StreamID, err)
	}
	if e.PrevHash, err = decodeHash(md.PrevHash); err != nil {
		return eventstore.Event{}, fmt.Errorf("event %s of stream %q: prev_hash: %w", r.EventID, r.StreamID, err)
	}
	if e.Hash, err = decodeHash(md.Hash); err != nil {
		return eventstore.Event{}, fmt.Errorf("event %s of stream %q: hash: %w", r.EventID, r.StreamID, err)
	}
	if md.EventID != "" {
		e.ID = md.EventID
	}
	// The hashed metadata bytes are not kept apart from the user metadata: they are the
	// encoding of its decoded fields, which gives back what Append hashed (see storedMetadata).
	e.Metadata = md.Metadata
	e.MetadataJSON = eventstore.EncodeMetadata(md.Metadata)
	e.OccurredAt = md.OccurredAt.UTC()
	e.RecordedAt = md.RecordedAt.UTC()
	return e, nil
}

func decodeHash(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	return hex.DecodeString(s)
}

// head is the last event of a stream as Append needs it; the zero value is a stream without
// events.
type head struct {
	version int64
	hash    []byte
}

// buildEvents decides everything Append records about events appended after h: versions,
// times and the hash chain. Only the global position is left to the server.
func buildEvents(stream string, h head, recordedAt time.Time, events []eventstore.EventData) []eventstore.Event {
	recordedAt = eventstore.NormalizeTime(recordedAt)
	out := make([]eventstore.Event, len(events))
	prev := h.hash
	for i, d := range events {
		occurredAt := d.OccurredAt
		if occurredAt.IsZero() {
			occurredAt = recordedAt
		}
		meta, metaJSON := storedMetadata(d.Metadata)
		e := eventstore.Event{
			ID:           d.ID,
			Stream:       stream,
			Version:      h.version + 1 + int64(i),
			Type:         d.Type,
			Data:         bytes.Clone(d.Data),
			Metadata:     meta,
			MetadataJSON: metaJSON,
			OccurredAt:   eventstore.NormalizeTime(occurredAt),
			RecordedAt:   recordedAt,
			PrevHash:     prev,
		}
		e.Hash = eventstore.ChainHash(prev, e)
		prev = e.Hash
		out[i] = e
	}
	return out
}

// storedMetadata returns the metadata as EventStoreDB will give it back and the bytes its
// hash covers. The metadata travels inside the event's user metadata and is re-encoded on
// read, which gives back the bytes encoded here only for valid UTF-8: json.Marshal writes an
// invalid byte as \ufffd, which decodes to U+FFFD and re-encodes as its three bytes. Such
// metadata is therefore stored and hashed as what it decodes to.
func storedMetadata(m eventstore.Metadata) (eventstore.Metadata, []byte) {
	raw := eventstore.EncodeMetadata(m)
	if validUTF8(m) {
		return m, raw
	}
	var decoded eventstore.Metadata
	if err := json.Unmarshal(raw, &decoded); err != nil { // json.Marshal's output always decodes
		panic(fmt.Sprintf("decode metadata: %v", err))
	}
	return decoded, eventstore.EncodeMetadata(decoded)
}

func validUTF8(m eventstore.Metadata) bool {
	for _, s := range []string{m.Actor, m.CommandID, m.CorrelationID, m.CausationID, m.Reason, m.RequestHash, m.Headers} {
		if !utf8.ValidString(s) {
			return false
		}
	}
	return true
}
