package wmstore

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/eventcrm/crm/eventstore"
	"github.com/google/uuid"
)

// AllTopic is the topic of the whole log, in global position order. It cannot be published to.
const AllTopic = "$all"

// Metadata keys of the messages a Subscriber delivers. The store assigns the values of the
// first group; Publish ignores them. Publish maps the second group to the event's type,
// business time and eventstore.Metadata. Any other metadata of a published message is kept
// in eventstore.Metadata.Headers and delivered back as it was.
const (
	KeyEventID    = "event_id"
	KeyStream     = "stream"
	KeyVersion    = "version"
	KeyPosition   = "position"
	KeyRecordedAt = "recorded_at" // RFC 3339, UTC, microseconds
	KeyPrevHash   = "prev_hash"   // hex
	KeyHash       = "hash"        // hex
	// KeyMessageUUID is the UUID of a published message whose event got a derived ID (see
	// DerivedEventID); the delivered message has it as UUID again.
	KeyMessageUUID = "message_uuid"
	// KeyHeaders holds Metadata.Headers verbatim when it is not a JSON object of strings
	// (written by something else than Publish), so that nothing is lost.
	KeyHeaders = "headers"

	KeyType       = "type"
	KeyOccurredAt = "occurred_at" // RFC 3339
	KeyActor      = "actor"
	KeyCommandID  = "command_id"
	// KeyCorrelationID is Watermill's own key, so that the correlation middleware carries it
	// from a consumed event to the messages a handler produces.
	KeyCorrelationID = middleware.CorrelationIDMetadataKey
	KeyCausationID   = "causation_id"
	KeyReason        = "reason"
	KeyRequestHash   = "request_hash"
)

// DefaultEventType is the event type of a published message without KeyType metadata,
// unless PublisherConfig.DefaultType says otherwise.
const DefaultEventType = "watermill.message.v1"

// timeLayout keeps every digit the store records (microseconds), and sorts as text.
const timeLayout = "2006-01-02T15:04:05.000000Z07:00"

// storeAssigned tells the keys whose values the store assigns: Publish does not take them
// from a message, and they are not headers.
func storeAssigned(key string) bool {
	switch key {
	case KeyEventID, KeyStream, KeyVersion, KeyPosition, KeyRecordedAt, KeyPrevHash, KeyHash,
		KeyMessageUUID, KeyHeaders:
		return true
	}
	return false
}

// metadataField returns the eventstore.Metadata field that key maps to, or nil.
func metadataField(m *eventstore.Metadata, key string) *string {
	switch key {
	case KeyActor:
		return &m.Actor
	case KeyCommandID:
		return &m.CommandID
	case KeyCorrelationID:
		return &m.CorrelationID
	case KeyCausationID:
		return &m.CausationID
	case KeyReason:
		return &m.Reason
	case KeyRequestHash:
		return &m.RequestHash
	}
	return nil
}

// NewMessage returns the message a Subscriber delivers for e. Its context is not set.
// The payload is e.Data, not a copy.
func NewMessage(e eventstore.Event) *message.Message {
	msgUUID := e.ID
	md := make(message.Metadata, 16)
	if h := e.Metadata.Headers; h != "" {
		var headers map[string]string
		if err := json.Unmarshal([]byte(h), &headers); err != nil {
			md[KeyHeaders] = h
		}
		for k, v := range headers {
			if k == KeyMessageUUID {
				msgUUID = v
				continue
			}
			md[k] = v
		}
	}
	md[KeyEventID] = e.ID
	md[KeyStream] = e.Stream
	md[KeyVersion] = strconv.FormatInt(e.Version, 10)
	md[KeyPosition] = strconv.FormatInt(e.Position, 10)
	md[KeyType] = e.Type
	md[KeyOccurredAt] = e.OccurredAt.UTC().Format(timeLayout)
	md[KeyRecordedAt] = e.RecordedAt.UTC().Format(timeLayout)
	if len(e.PrevHash) > 0 {
		md[KeyPrevHash] = hex.EncodeToString(e.PrevHash)
	}
	if len(e.Hash) > 0 {
		md[KeyHash] = hex.EncodeToString(e.Hash)
	}
	meta := e.Metadata
	for _, k := range []string{KeyActor, KeyCommandID, KeyCorrelationID, KeyCausationID, KeyReason, KeyRequestHash} {
		if v := *metadataField(&meta, k); v != "" {
			md[k] = v
		}
	}
	msg := message.NewMessage(msgUUID, e.Data)
	msg.Metadata = md
	return msg
}

// EventFromMessage returns the event a Subscriber delivered as msg. Data is msg.Payload, not
// a copy. Metadata.Headers is rebuilt from the message's other metadata: when a middleware
// changed it, the event no longer matches its Hash.
//
// It fails when msg lacks a recorded field or has one that does not parse: msg was not
// delivered by a Subscriber.
func EventFromMessage(msg *message.Message) (eventstore.Event, error) {
	md := msg.Metadata
	e := eventstore.Event{
		ID:     md.Get(KeyEventID),
		Stream: md.Get(KeyStream),
		Type:   md.Get(KeyType),
		Data:   msg.Payload,
	}
	if e.ID == "" {
		e.ID = msg.UUID
	}
	var errs []error
	required := func(key string) string {
		v, ok := md[key]
		if !ok || v == "" {
			errs = append(errs, fmt.Errorf("no %s", key))
		}
		return v
	}
	number := func(key string) int64 {
		v := required(key)
		if v == "" {
			return 0
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		}
		return n
	}
	instant := func(key string) time.Time {
		v := required(key)
		if v == "" {
			return time.Time{}
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		}
		return t.UTC()
	}
	bytes := func(key string) []byte {
		v, ok := md[key]
		if !ok {
			return nil
		}
		b, err := hex.DecodeString(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		}
		return b
	}
	required(KeyStream)
	required(KeyType)
	e.Version = number(KeyVersion)
	e.Position = number(KeyPosition)
	e.OccurredAt = instant(KeyOccurredAt)
	e.RecordedAt = instant(KeyRecordedAt)
	e.PrevHash = bytes(KeyPrevHash)
	e.Hash = bytes(KeyHash)
	headers := splitMetadata(md, &e.Metadata)
	if raw, ok := md[KeyHeaders]; ok {
		e.Metadata.Headers = raw
	} else {
		if msg.UUID != e.ID {
			headers[KeyMessageUUID] = msg.UUID
		}
		var err error
		if e.Metadata.Headers, err = encodeHeaders(headers); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return eventstore.Event{}, fmt.Errorf("event of message %s: %w", msg.UUID, err)
	}
	return e, nil
}

// splitMetadata copies the metadata fields of md into m and returns the headers: the keys
// that are neither fields, nor the type or business time, nor assigned by the store.
func splitMetadata(md message.Metadata, m *eventstore.Metadata) map[string]string {
	headers := make(map[string]string)
	for k, v := range md {
		if f := metadataField(m, k); f != nil {
			*f = v
			continue
		}
		if k == KeyType || k == KeyOccurredAt || storeAssigned(k) {
			continue
		}
		headers[k] = v
	}
	return headers
}

// encodeHeaders returns headers as a JSON object with sorted keys, or "" when there is none.
func encodeHeaders(headers map[string]string) (string, error) {
	if len(headers) == 0 {
		return "", nil
	}
	b, err := json.Marshal(headers)
	if err != nil {
		return "", fmt.Errorf("headers: %w", err)
	}
	return string(b), nil
}

// eventData maps a message to publish onto the event to append, with the message UUID as
// event ID.
func eventData(msg *message.Message, defaultType string) (eventstore.EventData, error) {
	e := eventstore.EventData{ID: msg.UUID, Type: msg.Metadata.Get(KeyType), Data: msg.Payload}
	if e.Type == "" {
		e.Type = defaultType
	}
	if v := msg.Metadata.Get(KeyOccurredAt); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return eventstore.EventData{}, fmt.Errorf("message %s: %s: %w", msg.UUID, KeyOccurredAt, err)
		}
		e.OccurredAt = t
	}
	var err error
	if e.Metadata.Headers, err = encodeHeaders(splitMetadata(msg.Metadata, &e.Metadata)); err != nil {
		return eventstore.EventData{}, fmt.Errorf("message %s: %w", msg.UUID, err)
	}
	return e, nil
}

// DerivedEventID is the event ID of the message msgUUID published to stream when msgUUID is
// already the ID of an event of another stream: a name-based (SHA-1) UUID of both, so that
// publishing the message again is still an idempotent retry.
func DerivedEventID(stream, msgUUID string) string {
	return uuid.NewSHA1(idNamespace(), []byte(stream+"\x00"+msgUUID)).String()
}

// idNamespace is the UUID namespace of derived event IDs. Changing it changes every derived
// ID, and with it the idempotence of retries across the change.
func idNamespace() uuid.UUID {
	return uuid.UUID{0x6b, 0x1f, 0x3c, 0x52, 0x9a, 0x0e, 0x4d, 0x21, 0x8c, 0x47, 0x2e, 0x95, 0xd0, 0x13, 0x7a, 0xb8}
}

// withDerivedID returns e with the derived ID of stream, keeping the message UUID as header.
func withDerivedID(e eventstore.EventData, stream string) (eventstore.EventData, error) {
	headers := make(map[string]string)
	if e.Metadata.Headers != "" {
		if err := json.Unmarshal([]byte(e.Metadata.Headers), &headers); err != nil {
			return e, fmt.Errorf("message %s: headers: %w", e.ID, err)
		}
	}
	headers[KeyMessageUUID] = e.ID
	h, err := encodeHeaders(headers)
	if err != nil {
		return e, fmt.Errorf("message %s: %w", e.ID, err)
	}
	e.Metadata.Headers = h
	e.ID = DerivedEventID(stream, e.ID)
	return e, nil
}
