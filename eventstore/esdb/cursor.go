package esdb

import (
	"context"
	"errors"
	"fmt"
	"io"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/eventcrm/crm/eventstore"
)

// cursor walks $all after a global position.
//
// EventStoreDB reads $all from the exact position of a record: a position inside a record is
// an error. A reader resumes after the position of an event it saw, which is a record's
// position; but any int64 is a valid "after" (position-1, say), so the first read tries the
// positions allPositionsAfter names and, when none is a record's, looks for the last record at
// or before after (readable from the end of the log, so that slow path costs what follows
// after). Later reads start at the last record read, which is always valid.
type cursor struct {
	// floor is the highest position handed out or passed over: events at or below it are
	// not returned.
	floor int64
	// from is where the next read starts, inclusive: the position of the last record read.
	// Nil until a read returned a record.
	from esdbclient.AllPosition
}

// allPositionsAfter maps the position a reader resumes after back to the EventStoreDB positions
// a read of what follows may start from, inclusive, most likely first: after itself (the
// position of the last event the reader saw, which the read skips), then after+1 (the position
// of the next event, when after is one before it). Position 0 or less is the start of $all.
// Our events are never in explicit transactions, so their commit and prepare positions are
// equal.
func allPositionsAfter(after int64) []esdbclient.AllPosition {
	if after <= 0 {
		return []esdbclient.AllPosition{esdbclient.Start{}}
	}
	return []esdbclient.AllPosition{
		esdbclient.Position{Commit: uint64(after), Prepare: uint64(after)},
		esdbclient.Position{Commit: uint64(after) + 1, Prepare: uint64(after) + 1},
	}
}

// accept decides whether a record read after the cursor's floor is an event of the global log
// and maps it. It raises the floor to the event's position.
func (c *cursor) accept(rec *esdbclient.RecordedEvent) (eventstore.Event, bool, error) {
	if internalEvent(rec.StreamID, rec.EventType) {
		return eventstore.Event{}, false, nil
	}
	pos, ok := positionOf(rec.Position)
	if !ok {
		return eventstore.Event{}, false, fmt.Errorf("event %s of %q: no $all position", rec.EventID, rec.StreamID)
	}
	if pos <= c.floor {
		return eventstore.Event{}, false, nil
	}
	e, err := fromRecorded(rec)
	if err != nil {
		return eventstore.Event{}, false, err
	}
	c.floor = pos
	return e, true, nil
}

// readPage reads up to count records of $all from the cursor and hands every event of the
// global log to add until add returns false. It returns the number of records read.
func (s *Store) readPage(ctx context.Context, c *cursor, count uint64, add func(eventstore.Event) bool) (uint64, error) {
	if c.from != nil {
		return s.readPageFrom(ctx, c, c.from, count, add)
	}
	// A candidate is a record's position when reading from it returns a record: EventStoreDB
	// fails a read from inside a record, or may find nothing there.
	var errs []error
	for _, from := range allPositionsAfter(c.floor) {
		n, err := s.readPageFrom(ctx, c, from, count, add)
		if err == nil && (n > 0 || from == esdbclient.AllPosition(esdbclient.Start{})) {
			return n, nil
		}
		if ctx.Err() != nil || errors.Is(err, eventstore.ErrClosed) || c.from != nil {
			return n, err // failed after it found a record: the cursor is settled
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	from, err := s.recordAtOrBefore(ctx, c.floor)
	if err != nil {
		return 0, fmt.Errorf("find a record at or before %d: %w", c.floor, errors.Join(append(errs, err)...))
	}
	return s.readPageFrom(ctx, c, from, count, add)
}

func (s *Store) readPageFrom(ctx context.Context, c *cursor, from esdbclient.AllPosition, count uint64, add func(eventstore.Event) bool) (n uint64, err error) {
	err = s.do(ctx, func(ctx context.Context, client *esdbclient.Client) error {
		rs, err := client.ReadAll(ctx, esdbclient.ReadAllOptions{From: from}, count)
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
			n++
			rec := re.OriginalEvent()
			if rec == nil {
				continue
			}
			c.from = rec.Position
			e, ok, err := c.accept(rec)
			if err != nil {
				return err
			}
			if ok && !add(e) {
				return nil
			}
		}
	})
	return n, err
}

// recordAtOrBefore returns the position of the last record of $all at or before pos, or the
// start of $all when there is none, reading backwards from the end.
func (s *Store) recordAtOrBefore(ctx context.Context, pos int64) (esdbclient.AllPosition, error) {
	const page = 4096
	var from esdbclient.AllPosition = esdbclient.End{}
	for {
		var found *esdbclient.Position
		var n, last = 0, esdbclient.Position{}
		err := s.do(ctx, func(ctx context.Context, client *esdbclient.Client) error {
			rs, err := client.ReadAll(ctx, esdbclient.ReadAllOptions{Direction: esdbclient.Backwards, From: from}, page)
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
				n++
				rec := re.OriginalEvent()
				if rec == nil {
					continue
				}
				last = rec.Position
				if p, ok := positionOf(rec.Position); ok && p <= pos {
					found = &last
					return nil
				}
			}
		})
		switch {
		case err != nil:
			return nil, err
		case found != nil:
			return *found, nil
		case n < page:
			return esdbclient.Start{}, nil
		}
		from = last
	}
}
