package httpapi

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/eventcrm/crm/eventstore"
)

// appendFailureWindow is how long a failed append keeps health at 503 when no append
// succeeded since: long enough to span the gaps between commands of a quiet server, short
// enough that one failure long ago does not keep it down when nobody writes.
const appendFailureWindow = time.Minute

// AppendWatch is the store the commands append through, watched so that GET /healthz can tell
// a store that still answers reads but can no longer write (a full disk, a read-only file, a
// PostgreSQL that refuses inserts) from a healthy one. Reads alone do not show it, and
// appending an event just to probe would put a fact that never happened in the log.
type AppendWatch struct {
	eventstore.Store

	mu       sync.Mutex
	failure  error     // the last append the store could not write, nil once one succeeded
	failedAt time.Time // when
}

// WatchAppends wraps store; the commands append through the result, and Config.Appends
// hands it to health.
func WatchAppends(store eventstore.Store) *AppendWatch {
	return &AppendWatch{Store: store}
}

// Append appends to the store and records how it went.
func (w *AppendWatch) Append(ctx context.Context, stream string, expected int64, events []eventstore.EventData) (eventstore.AppendResult, error) {
	res, err := w.Store.Append(ctx, stream, expected, events)
	switch {
	case err == nil:
		w.set(nil)
	case storageFailure(ctx, err):
		w.set(err)
	}
	return res, err
}

func (w *AppendWatch) set(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.failure, w.failedAt = err, time.Now()
}

// recentFailure returns the last append failure, with its age, when no append succeeded
// since and it happened within appendFailureWindow; else nil.
func (w *AppendWatch) recentFailure() (time.Duration, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	age := time.Since(w.failedAt)
	if w.failure == nil || age > appendFailureWindow {
		return 0, nil
	}
	return age, w.failure
}

// storageFailure tells an append the store could not write from one it refused by its
// contract (a version conflict, a duplicate id, a malformed append) or one its caller gave
// up on: only the first says anything about the store's health.
func storageFailure(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	for _, refusal := range []error{eventstore.ErrWrongExpectedVersion, eventstore.ErrDuplicateEventID,
		eventstore.ErrInvalidAppend, context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, refusal) {
			return false
		}
	}
	return true
}
