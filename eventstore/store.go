// Package eventstore defines the contract of the event log every backend implements: append with
// an expected version, read a stream, read the global log from a position and subscribe to it.
//
// The log is the only truth of the system (see the project's design notes): nothing else is
// written by a command, and every read model is derived from what this interface returns.
package eventstore

import (
	"context"
	"time"
)

// Expected versions with a special meaning. Any other expected version N >= 1 means "the stream's
// last event has version N". Stream versions start at 1.
const (
	// AnyVersion appends without a concurrency check.
	AnyVersion int64 = -1
	// NoStream requires that the stream has no event yet.
	NoStream int64 = 0
)

// Metadata is what the log records about why and by whom an event was written. Every field is
// optional for the store; the command layer fills all of them.
type Metadata struct {
	Actor         string `json:"actor,omitempty"`
	CommandID     string `json:"command_id,omitempty"`
	CorrelationID string `json:"correlation_id,omitempty"`
	CausationID   string `json:"causation_id,omitempty"`
	Reason        string `json:"reason,omitempty"`
	// RequestHash fingerprints the command that produced the event, so that a retried
	// idempotency key can be told apart from the same key reused for a different request.
	RequestHash string `json:"request_hash,omitempty"`
	// Headers holds further string metadata as one JSON object: the metadata of a Watermill
	// message that has no field above (see eventstore/wmstore). A string, not a map, so that
	// Metadata stays comparable and every backend stores it as it is.
	Headers string `json:"headers,omitempty"`
}

// EventData is an event to append.
type EventData struct {
	// ID is unique across the whole log (a UUID in text form). Appending an ID that is already
	// stored is either an idempotent retry (see Store.Append) or ErrDuplicateEventID.
	ID string
	// Type is the explicit, versioned event name, e.g. "contact.phase_changed.v1".
	Type string
	// Data is the event body as JSON.
	Data []byte
	// Metadata records actor, command and correlation.
	Metadata Metadata
	// OccurredAt is business time: when it happened in the world. Zero means "now".
	OccurredAt time.Time
}

// Event is a recorded event, as read back from the log.
type Event struct {
	ID       string
	Stream   string
	Version  int64 // position within the stream, from 1, without holes
	Position int64 // position in the global log, increasing in commit order
	Type     string
	Data     []byte
	Metadata Metadata
	// MetadataJSON is the metadata exactly as the store holds it: the bytes ChainHash hashes,
	// of which Metadata is the decoded view. Hashing a re-encoding of Metadata instead would
	// not give the stored bytes back for every input (json.Marshal writes an invalid UTF-8
	// byte as the six characters \ufffd, which decode to a rune that re-encodes as three
	// bytes). Backends fill it on append and on read; nil only in an event built in code.
	MetadataJSON []byte
	// OccurredAt is business time; RecordedAt is when the store accepted the event. Both are UTC
	// with microsecond precision.
	OccurredAt time.Time
	RecordedAt time.Time
	// PrevHash is the Hash of the previous event of the stream (empty for version 1); Hash chains
	// this event to it (see ChainHash).
	PrevHash []byte
	Hash     []byte
	// StoredType and StoredData are the type and data exactly as the store holds and hashes
	// them, set only when a codec (opening sealed personal data, upcasting an older version;
	// see eventstore/codec) gave Type and Data another reading. ChainHash and the audit hash
	// these, never the reading. Empty for an event as a backend returned it.
	StoredType string
	StoredData []byte
}

// Stored returns the type and data as stored and hashed: StoredType and StoredData when a
// codec set them, else Type and Data.
func (e Event) Stored() (typ string, data []byte) {
	if e.StoredType != "" {
		return e.StoredType, e.StoredData
	}
	return e.Type, e.Data
}

// AppendResult tells where an append landed.
type AppendResult struct {
	// Version is the stream version of the last appended event: the next expected version.
	Version int64
	// Position is the global position of the last appended event.
	Position int64
}

// Store is an event log. Implementations are safe for concurrent use.
//
// Slices returned by a Store belong to the caller.
type Store interface {
	// Append writes events at the end of stream, atomically: all of them or none.
	//
	// expected is AnyVersion, NoStream or the stream's current version. When it does not hold,
	// Append returns an error that matches ErrWrongExpectedVersion (a *VersionConflictError).
	//
	// Appending events whose IDs are all already stored, as the same consecutive events of
	// the same stream, is an idempotent retry: nothing is written and the result of the
	// original append is returned. Any other reuse of a stored ID returns ErrDuplicateEventID.
	// An empty events slice, an empty stream name or an event without ID or Type returns
	// ErrInvalidAppend.
	Append(ctx context.Context, stream string, expected int64, events []EventData) (AppendResult, error)

	// ReadStream returns up to limit events of stream with version >= from, in version order.
	// A stream with no event returns ErrStreamNotFound.
	ReadStream(ctx context.Context, stream string, from int64, limit int) ([]Event, error)

	// ReadAll returns up to limit events of the global log with position > after, in position
	// order. It never returns an event while an event with a lower position may still become
	// visible: a reader that resumes after the last position it saw misses nothing.
	ReadAll(ctx context.Context, after int64, limit int) ([]Event, error)

	// Subscribe delivers every event with position > after, in position order: first the
	// stored ones, then new ones as they are committed, until ctx is done or the
	// subscription is closed.
	Subscribe(ctx context.Context, after int64) (Subscription, error)

	// EventByID returns the stored event with the given ID, or ErrEventNotFound.
	EventByID(ctx context.Context, id string) (Event, error)

	// Close releases the store's resources. Open subscriptions end with ErrClosed.
	Close() error
}

// Subscription is a live feed of the global log.
type Subscription interface {
	// Events is closed when the subscription ends; Err then says why.
	Events() <-chan Event
	// Err is nil while the subscription runs and after it ended by its context or Close.
	Err() error
	// Close ends the subscription and waits for its goroutines to stop.
	Close() error
}

// Checkpoints stores the last processed global position of named consumers (projections,
// subscriber consumer groups) in the same database as the log.
type Checkpoints interface {
	// LoadCheckpoint returns the saved position of name, or 0 when none was saved.
	LoadCheckpoint(ctx context.Context, name string) (int64, error)
	// SaveCheckpoint saves the position of name.
	SaveCheckpoint(ctx context.Context, name string, position int64) error
}

// Heads is implemented by stores that tell their last committed position in one cheap
// query, whether or not ReadAll may return it yet (on PostgreSQL an earlier position may
// still commit, and ReadAll waits for it). Lag is measured against it, and a feed held back
// behind a long transaction shows as a head that readers do not reach.
type Heads interface {
	// LastPosition returns the highest committed position (0 for an empty log).
	LastPosition(ctx context.Context) (int64, error)
}

// HeadsOf is the Heads of store, or of the store it wraps (a store with an Unwrap method,
// such as the codec's, which changes events but not positions).
func HeadsOf(store Store) (Heads, bool) {
	for store != nil {
		if h, ok := store.(Heads); ok {
			return h, true
		}
		w, ok := store.(interface{ Unwrap() Store })
		if !ok {
			return nil, false
		}
		store = w.Unwrap()
	}
	return nil, false
}

// DiskSizer is a store that can tell the space its log takes on disk: the time-travel
// snapshots of the read models are kept within a multiple of it.
type DiskSizer interface {
	// DiskSize returns the bytes the store takes on disk: its files (SQLite) or its tables
	// with their indexes (PostgreSQL).
	DiskSize(ctx context.Context) (int64, error)
}

// DiskSizerOf is the DiskSizer of store, or of the store it wraps.
func DiskSizerOf(store Store) (DiskSizer, bool) {
	for store != nil {
		if d, ok := store.(DiskSizer); ok {
			return d, true
		}
		w, ok := store.(interface{ Unwrap() Store })
		if !ok {
			return nil, false
		}
		store = w.Unwrap()
	}
	return nil, false
}
