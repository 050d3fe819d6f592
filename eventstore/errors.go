package eventstore

import (
	"errors"
	"fmt"
)

// Errors returned by Store implementations. Match them with errors.Is.
var (
	// ErrWrongExpectedVersion: the stream's version is not the expected one.
	ErrWrongExpectedVersion = errors.New("wrong expected version")
	// ErrStreamNotFound: the stream has no event.
	ErrStreamNotFound = errors.New("stream not found")
	// ErrEventNotFound: no event has that ID.
	ErrEventNotFound = errors.New("event not found")
	// ErrDuplicateEventID: an event ID is already stored and the append is not an exact retry.
	ErrDuplicateEventID = errors.New("duplicate event id")
	// ErrInvalidAppend: the append itself is malformed (no events, no stream, no ID or type).
	ErrInvalidAppend = errors.New("invalid append")
	// ErrClosed: the store or subscription is closed.
	ErrClosed = errors.New("event store closed")
	// ErrBrokenChain: a stream's hash chain does not verify (see ChainError).
	ErrBrokenChain = errors.New("broken hash chain")
)

// VersionConflictError reports a failed expected-version check.
type VersionConflictError struct {
	Stream   string
	Expected int64
	Actual   int64 // the stream's current version, 0 when it does not exist
}

func (e *VersionConflictError) Error() string {
	return fmt.Sprintf("stream %q: expected version %s, actual %d: %v",
		e.Stream, FormatExpected(e.Expected), e.Actual, ErrWrongExpectedVersion)
}

// Unwrap makes errors.Is(err, ErrWrongExpectedVersion) hold.
func (e *VersionConflictError) Unwrap() error { return ErrWrongExpectedVersion }

// FormatExpected names an expected version for messages.
func FormatExpected(expected int64) string {
	switch expected {
	case AnyVersion:
		return "any"
	case NoStream:
		return "no-stream"
	default:
		return fmt.Sprintf("%d", expected)
	}
}

// CheckExpected returns a *VersionConflictError unless a stream at version actual satisfies
// expected. Backends that check versions in Go use it so the rule lives in one place.
func CheckExpected(stream string, expected, actual int64) error {
	if expected == AnyVersion || expected == actual {
		return nil
	}
	return &VersionConflictError{Stream: stream, Expected: expected, Actual: actual}
}

// ValidateAppend checks the parts of an append every backend refuses the same way.
func ValidateAppend(stream string, expected int64, events []EventData) error {
	switch {
	case stream == "":
		return fmt.Errorf("empty stream name: %w", ErrInvalidAppend)
	case len(events) == 0:
		return fmt.Errorf("stream %q: no events: %w", stream, ErrInvalidAppend)
	case expected < AnyVersion:
		return fmt.Errorf("stream %q: expected version %d: %w", stream, expected, ErrInvalidAppend)
	}
	seen := make(map[string]struct{}, len(events))
	for i, e := range events {
		if e.ID == "" || e.Type == "" {
			return fmt.Errorf("stream %q: event %d has no id or type: %w", stream, i, ErrInvalidAppend)
		}
		if _, dup := seen[e.ID]; dup {
			return fmt.Errorf("stream %q: event id %s twice in one append: %w", stream, e.ID, ErrInvalidAppend)
		}
		seen[e.ID] = struct{}{}
	}
	return nil
}
