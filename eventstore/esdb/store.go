package esdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/eventcrm/crm/eventstore"
)

// Store is an eventstore.Store on EventStoreDB / KurrentDB. It is safe for concurrent use.
type Store struct {
	cfg  config
	conf *esdbclient.Configuration

	mu     sync.Mutex
	closed bool
	conn   *conn
	subs   map[*subscription]struct{}
}

var _ eventstore.Store = (*Store)(nil)

// pingStream is read by Open to check the connection; it never holds events.
const pingStream = claimStreamPrefix + "ping"

// Open connects to the EventStoreDB named by an esdb:// (or esdb+discover://) connection string,
// e.g. "esdb://localhost:2113?tls=false", and checks that it answers.
func Open(ctx context.Context, connection string, opts ...Option) (*Store, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, fmt.Errorf("open esdb store: %w", err)
	}
	s, err := newStore(connection, cfg)
	if err != nil {
		return nil, fmt.Errorf("open esdb store: %w", err)
	}
	if _, err := s.last(ctx, pingStream); err != nil {
		return nil, errors.Join(fmt.Errorf("open esdb store: %w", err), s.Close())
	}
	return s, nil
}

// newStore makes a Store without talking to the server.
func newStore(connection string, cfg config) (*Store, error) {
	conf, err := parseURL(connection, cfg.logger)
	if err != nil {
		return nil, err
	}
	c, err := newConn(conf)
	if err != nil {
		return nil, err
	}
	return &Store{cfg: cfg, conf: conf, conn: c, subs: make(map[*subscription]struct{})}, nil
}

// Close ends open subscriptions (with ErrClosed), waits for the calls in flight and closes the
// connection.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	subs := make([]*subscription, 0, len(s.subs))
	for sub := range s.subs {
		subs = append(subs, sub)
	}
	c := s.conn
	s.mu.Unlock()
	for _, sub := range subs {
		sub.cancel(eventstore.ErrClosed)
		<-sub.done
	}
	return c.close()
}

func (s *Store) checkOpen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return eventstore.ErrClosed
	}
	return nil
}

// Append implements eventstore.Store. It reads the stream's last event for the hash chain, then
// appends at that exact revision, so a concurrent writer makes it fail (or, with AnyVersion,
// start again) instead of forking the chain. Event ids are claimed first (see claim.go).
//
// Streams whose name starts with "$" or "crm-eventid-" are refused with ErrInvalidAppend.
func (s *Store) Append(ctx context.Context, stream string, expected int64, events []eventstore.EventData) (eventstore.AppendResult, error) {
	if err := s.checkOpen(); err != nil {
		return eventstore.AppendResult{}, err
	}
	if err := eventstore.ValidateAppend(stream, expected, events); err != nil {
		return eventstore.AppendResult{}, err
	}
	if reservedStream(stream) {
		return eventstore.AppendResult{}, fmt.Errorf("stream %q: reserved name: %w", stream, eventstore.ErrInvalidAppend)
	}
	ids := make([]uuid.UUID, len(events))
	for i, e := range events {
		ids[i], _ = eventUUID(e.ID)
	}
	recordedAt := s.cfg.now()
	if res, done, err := s.retried(ctx, stream, expected, events); err != nil || done {
		return res, err
	}
	for attempt := 0; ; attempt++ {
		h, err := s.head(ctx, stream)
		if err != nil {
			return eventstore.AppendResult{}, fmt.Errorf("append to %q: %w", stream, err)
		}
		if err := eventstore.CheckExpected(stream, expected, h.version); err != nil {
			return eventstore.AppendResult{}, err
		}
		records := buildEvents(stream, h, recordedAt, events)
		data := make([]esdbclient.EventData, len(records))
		for i, e := range records {
			if data[i], err = toEventData(e); err != nil {
				return eventstore.AppendResult{}, fmt.Errorf("append to %q: %w", stream, err)
			}
		}
		if err := s.claimAll(ctx, stream, h.version+1, events, ids); err != nil {
			return eventstore.AppendResult{}, fmt.Errorf("append to %q: %w", stream, err)
		}
		at, err := expectedRevision(h.version)
		if err != nil {
			return eventstore.AppendResult{}, fmt.Errorf("append to %q: %w", stream, err)
		}
		var wr *esdbclient.WriteResult
		err = s.do(ctx, func(ctx context.Context, client *esdbclient.Client) (err error) {
			wr, err = client.AppendToStream(ctx, stream, esdbclient.AppendToStreamOptions{ExpectedRevision: at}, data...)
			return err
		})
		if err == nil {
			pos, _ := positionOf(esdbclient.Position{Commit: wr.CommitPosition, Prepare: wr.PreparePosition})
			return eventstore.AppendResult{Version: records[len(records)-1].Version, Position: pos}, nil
		}
		// The claims need no release: the slots they name are filled by the winner, which
		// makes them dead (see classifyClaim).
		if !errors.Is(err, eventstore.ErrWrongExpectedVersion) {
			return eventstore.AppendResult{}, fmt.Errorf("append to %q: %w", stream, err)
		}
		// The winner may have been this very append, sent twice at once.
		if res, done, err := s.retried(ctx, stream, expected, events); err != nil || done {
			return res, err
		}
		if expected != eventstore.AnyVersion || attempt >= s.cfg.appendRetries {
			return eventstore.AppendResult{}, s.conflict(ctx, stream, expected, h.version)
		}
	}
}

// conflict builds the error of a lost expected-version check with the stream's current version.
func (s *Store) conflict(ctx context.Context, stream string, expected, seen int64) error {
	actual := seen
	if h, err := s.head(ctx, stream); err == nil {
		actual = h.version
	}
	return &eventstore.VersionConflictError{Stream: stream, Expected: expected, Actual: actual}
}

// retried recognises an idempotent retry: every event id is already stored, as consecutive
// events of stream, starting right after expected unless that is AnyVersion. Any other stored
// first id is ErrDuplicateEventID. done reports that Append has its answer (res or err).
func (s *Store) retried(ctx context.Context, stream string, expected int64, events []eventstore.EventData) (res eventstore.AppendResult, done bool, err error) {
	first, err := s.storedAt(ctx, events[0].ID)
	if err != nil || first == nil {
		return eventstore.AppendResult{}, err != nil, wrapAppend(stream, err)
	}
	duplicate := fmt.Errorf("append to %q: event id %s is stored as %q version %d: %w",
		stream, events[0].ID, first.Stream, first.Version, eventstore.ErrDuplicateEventID)
	if first.Stream != stream || (expected != eventstore.AnyVersion && first.Version != expected+1) {
		return eventstore.AppendResult{}, true, duplicate
	}
	stored, err := s.read(ctx, stream, esdbclient.ReadStreamOptions{From: readFrom(first.Version)}, uint64(len(events)))
	if err != nil {
		return eventstore.AppendResult{}, true, wrapAppend(stream, err)
	}
	if len(stored) != len(events) {
		return eventstore.AppendResult{}, true, duplicate
	}
	for i, e := range stored {
		if e.ID != events[i].ID {
			return eventstore.AppendResult{}, true, duplicate
		}
	}
	last := stored[len(stored)-1]
	return eventstore.AppendResult{Version: last.Version, Position: last.Position}, true, nil
}

func wrapAppend(stream string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("append to %q: %w", stream, err)
}

// head reads the last event of stream.
func (s *Store) head(ctx context.Context, stream string) (head, error) {
	last, err := s.last(ctx, stream)
	if err != nil || last == nil {
		return head{}, err
	}
	return head{version: last.Version, hash: last.Hash}, nil
}

// last returns the last event of stream, nil when it has none.
func (s *Store) last(ctx context.Context, stream string) (*eventstore.Event, error) {
	events, err := s.read(ctx, stream, esdbclient.ReadStreamOptions{Direction: esdbclient.Backwards, From: esdbclient.End{}}, 1)
	switch {
	case errors.Is(err, eventstore.ErrStreamNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("read last event of %q: %w", stream, err)
	case len(events) == 0:
		return nil, nil
	}
	return &events[0], nil
}

// eventAt returns the event of stream at version, nil when there is none.
func (s *Store) eventAt(ctx context.Context, stream string, version int64) (*eventstore.Event, error) {
	if version < 1 {
		return nil, nil
	}
	events, err := s.read(ctx, stream, esdbclient.ReadStreamOptions{From: readFrom(version)}, 1)
	if errors.Is(err, eventstore.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %q version %d: %w", stream, version, err)
	}
	if len(events) == 0 || events[0].Version != version {
		return nil, nil
	}
	return &events[0], nil
}

// read reads up to count events of stream. A stream without events is ErrStreamNotFound.
func (s *Store) read(ctx context.Context, stream string, opts esdbclient.ReadStreamOptions, count uint64) ([]eventstore.Event, error) {
	var out []eventstore.Event
	err := s.do(ctx, func(ctx context.Context, client *esdbclient.Client) error {
		rs, err := client.ReadStream(ctx, stream, opts, count)
		if err != nil {
			return err
		}
		defer rs.Close()
		for {
			re, err := rs.Recv()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			rec := re.OriginalEvent()
			if rec == nil {
				continue
			}
			e, err := fromRecorded(rec)
			if err != nil {
				return err
			}
			out = append(out, e)
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ReadStream implements eventstore.Store. limit <= 0 reads to the end of the stream.
//
// The events' Position is 0 on servers older than 22.6, which do not report the $all position
// on stream reads.
func (s *Store) ReadStream(ctx context.Context, stream string, from int64, limit int) ([]eventstore.Event, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	if stream == "" || reservedStream(stream) {
		return nil, fmt.Errorf("read stream %q: %w", stream, eventstore.ErrStreamNotFound)
	}
	events, err := s.read(ctx, stream, esdbclient.ReadStreamOptions{From: readFrom(from)}, readCount(limit))
	if err != nil {
		return nil, fmt.Errorf("read stream %q: %w", stream, err)
	}
	return events, nil
}

// readCount is the count of a read for a limit; limit <= 0 means no limit (the server takes
// the count as a signed 64-bit number).
func readCount(limit int) uint64 {
	if limit <= 0 {
		return math.MaxInt64
	}
	return uint64(limit)
}

// ReadAll implements eventstore.Store over $all, leaving out system events and the event id
// index (the client has no server-side filter for reads). limit <= 0 reads to the end.
//
// $all is the transaction log itself: an event is visible once committed, in commit order, so
// no event with a lower position can appear later.
func (s *Store) ReadAll(ctx context.Context, after int64, limit int) ([]eventstore.Event, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	want := readCount(limit)
	var out []eventstore.Event
	add := func(e eventstore.Event) bool {
		out = append(out, e)
		return uint64(len(out)) < want
	}
	c := cursor{floor: after}
	for uint64(len(out)) < want {
		// Ask for more than is missing: index and system records are skipped, and a page
		// starts with the record it starts from.
		count := min(max(2*(want-uint64(len(out)))+1, 64), 4096)
		n, err := s.readPage(ctx, &c, count, add)
		if err != nil {
			return nil, fmt.Errorf("read $all after %d: %w", after, err)
		}
		if n < count {
			break
		}
	}
	return out, nil
}

// EventByID implements eventstore.Store through the event id index.
func (s *Store) EventByID(ctx context.Context, id string) (eventstore.Event, error) {
	if err := s.checkOpen(); err != nil {
		return eventstore.Event{}, err
	}
	e, err := s.storedAt(ctx, id)
	if err != nil {
		return eventstore.Event{}, fmt.Errorf("event %s: %w", id, err)
	}
	if e == nil {
		return eventstore.Event{}, fmt.Errorf("event %s: %w", id, eventstore.ErrEventNotFound)
	}
	return *e, nil
}
