package esdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/eventcrm/crm/eventstore"
)

// The event id index. EventStoreDB only deduplicates event ids on a best-effort cache, and it
// cannot append to two streams atomically. So each event id owns a small stream
// "crm-eventid-<uuid>" whose last event, a claim, names the slot (stream, version) the id is
// written to. Append claims every id before it appends the events, with an expected revision
// on the claim stream, so two writers never both own an id. A claim is only a promise: the
// id is stored when the claimed slot holds an event with that id. See classifyClaim for what
// a claim left behind by a failed or crashed append means.

const (
	claimEventType = "crm.event_id_claimed.v1"
	// claimAttempts bounds the rounds of a claim contended by other writers.
	claimAttempts = 8
)

// claim is the data of a claim event. An empty Stream releases the id.
type claim struct {
	Stream  string `json:"stream"`
	Version int64  `json:"version"`
}

func claimStream(id uuid.UUID) string { return claimStreamPrefix + id.String() }

// claimStatus is what a claim means to an append that wants to write the id at a given slot.
type claimStatus int

const (
	// claimFree: no claim, or a released one. The id can be claimed.
	claimFree claimStatus = iota
	// claimStored: the claimed slot holds the id. The id is taken.
	claimStored
	// claimOurs: the claim names the very slot the append writes, which is still empty: it was
	// left by an earlier attempt of the same append (or a concurrent identical one, which the
	// stream's expected revision then decides).
	claimOurs
	// claimDead: the claimed slot holds another event. The claimer's append, which expected the
	// slot to be free, failed or will fail: the id can be claimed again.
	claimDead
	// claimPending: the claimed slot is still empty and is not ours. The claimer may still
	// write it, so the id is taken until that slot is filled.
	claimPending
)

func (s claimStatus) String() string {
	switch s {
	case claimFree:
		return "free"
	case claimStored:
		return "stored"
	case claimOurs:
		return "ours"
	case claimDead:
		return "dead"
	case claimPending:
		return "pending"
	default:
		return fmt.Sprintf("claimStatus(%d)", int(s))
	}
}

// classifyClaim decides what claim c on event id means for an append that wants to write id
// at (stream, version). c is nil when the id was never claimed; atSlot is the event found at
// the slot c names, nil when that slot is empty.
func classifyClaim(c *claim, id string, stream string, version int64, atSlot *eventstore.Event) claimStatus {
	switch {
	case c == nil || c.Stream == "":
		return claimFree
	case atSlot != nil && atSlot.ID == id:
		return claimStored
	case atSlot != nil:
		return claimDead
	case c.Stream == stream && c.Version == version:
		return claimOurs
	default:
		return claimPending
	}
}

// heldClaim is a claim this append wrote or reused, and the claim stream's revision after it.
type heldClaim struct {
	id       uuid.UUID
	revision uint64
}

// lookupClaim returns the current claim on id (nil when there is none), the revision of the
// claim stream (meaningful when found) and the event at the claimed slot (nil when empty).
func (s *Store) lookupClaim(ctx context.Context, id uuid.UUID) (c *claim, revision uint64, atSlot *eventstore.Event, err error) {
	last, err := s.last(ctx, claimStream(id))
	if err != nil || last == nil {
		return nil, 0, nil, err
	}
	c = new(claim)
	if err := json.Unmarshal(last.Data, c); err != nil {
		return nil, 0, nil, fmt.Errorf("decode claim on event id %s: %w", id, err)
	}
	revision = uint64(last.Version - 1)
	if c.Stream == "" {
		return c, revision, nil, nil
	}
	atSlot, err = s.eventAt(ctx, c.Stream, c.Version)
	return c, revision, atSlot, err
}

// claimAll claims ids for the slots (stream, first), (stream, first+1), ... On failure it
// releases what it claimed and returns ErrDuplicateEventID when an id is taken.
func (s *Store) claimAll(ctx context.Context, stream string, first int64, events []eventstore.EventData, ids []uuid.UUID) error {
	held := make([]heldClaim, 0, len(ids))
	for i, id := range ids {
		rev, err := s.claimOne(ctx, id, events[i].ID, stream, first+int64(i))
		if err != nil {
			return errors.Join(err, s.release(ctx, held))
		}
		held = append(held, heldClaim{id: id, revision: rev})
	}
	return nil
}

// claimOne claims id for (stream, version) and returns the claim stream's revision. It first
// writes as if the id were new, which it nearly always is, and looks at the claim in its way
// only when that fails.
func (s *Store) claimOne(ctx context.Context, id uuid.UUID, textID, stream string, version int64) (uint64, error) {
	var expected esdbclient.ExpectedRevision = esdbclient.NoStream{}
	for range claimAttempts {
		rev, err := s.writeClaim(ctx, id, claim{Stream: stream, Version: version}, expected)
		if err == nil {
			return rev, nil
		}
		if !errors.Is(err, eventstore.ErrWrongExpectedVersion) {
			return 0, err
		}
		c, rev, atSlot, err := s.lookupClaim(ctx, id)
		if err != nil {
			return 0, err
		}
		switch status := classifyClaim(c, textID, stream, version, atSlot); status {
		case claimOurs:
			return rev, nil
		case claimStored, claimPending:
			return 0, fmt.Errorf("event id %s: claimed by stream %q version %d (%s): %w",
				textID, c.Stream, c.Version, status, eventstore.ErrDuplicateEventID)
		case claimFree, claimDead:
			expected = esdbclient.NoStream{}
			if c != nil {
				expected = esdbclient.Revision(rev)
			}
		}
	}
	return 0, fmt.Errorf("event id %s: claim contended %d times: %w", textID, claimAttempts, eventstore.ErrDuplicateEventID)
}

// release gives up claims of an append that is abandoned before its events were appended, so
// that the ids are not held until their slots fill. A claim taken over meanwhile is left alone.
func (s *Store) release(ctx context.Context, held []heldClaim) error {
	var errs []error
	for _, h := range held {
		_, err := s.writeClaim(ctx, h.id, claim{}, esdbclient.Revision(h.revision))
		if err != nil && !errors.Is(err, eventstore.ErrWrongExpectedVersion) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Store) writeClaim(ctx context.Context, id uuid.UUID, c claim, expected esdbclient.ExpectedRevision) (uint64, error) {
	data, err := json.Marshal(c)
	if err != nil {
		return 0, fmt.Errorf("encode claim on event id %s: %w", id, err)
	}
	var res *esdbclient.WriteResult
	err = s.do(ctx, func(ctx context.Context, client *esdbclient.Client) (err error) {
		res, err = client.AppendToStream(ctx, claimStream(id), esdbclient.AppendToStreamOptions{ExpectedRevision: expected},
			esdbclient.EventData{EventID: uuid.New(), EventType: claimEventType, ContentType: esdbclient.ContentTypeJson, Data: data})
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("claim event id %s: %w", id, err)
	}
	// The client names the revision of the last written event NextExpectedVersion.
	return res.NextExpectedVersion, nil
}

// storedAt returns the slot of an event id when it is stored, or nil.
func (s *Store) storedAt(ctx context.Context, textID string) (*eventstore.Event, error) {
	id, _ := eventUUID(textID)
	c, _, atSlot, err := s.lookupClaim(ctx, id)
	if err != nil {
		return nil, err
	}
	if classifyClaim(c, textID, "", 0, atSlot) != claimStored {
		return nil, nil
	}
	return atSlot, nil
}
