package esdb

import (
	"context"
	"errors"
	"fmt"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/eventcrm/crm/eventstore"
)

// translateError maps an error of the EventStoreDB client to the errors of package eventstore.
// The result wraps both the eventstore error and the original one, so errors.Is matches the
// former and errors.As(err, &*esdb.Error) still finds the latter. The client's esdb.FromError
// does not unwrap (and reports ok only for nil), hence errors.As and the error code.
//
// When ctx is done the result also matches ctx's error: a cancelled call otherwise fails with
// whatever gRPC makes of the cancellation.
func translateError(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var esdbErr *esdbclient.Error
	if errors.As(err, &esdbErr) {
		if target := errorForCode(esdbErr.Code()); target != nil && !errors.Is(err, target) {
			err = fmt.Errorf("%w: %w", target, err)
		}
	}
	if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		err = fmt.Errorf("%w: %w", ctxErr, err)
	}
	return err
}

// errorForCode is the eventstore (or context) error an EventStoreDB error code means, or nil
// when the code has no counterpart.
func errorForCode(code esdbclient.ErrorCode) error {
	switch code {
	case esdbclient.ErrorCodeWrongExpectedVersion:
		return eventstore.ErrWrongExpectedVersion
	case esdbclient.ErrorCodeResourceNotFound, esdbclient.ErrorCodeStreamDeleted:
		return eventstore.ErrStreamNotFound
	case esdbclient.ErrorCodeConnectionClosed:
		return eventstore.ErrClosed
	case esdbclient.ErrorCodeDeadlineExceeded:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

// retryable reports whether a subscription that failed with err may succeed by subscribing
// again. A dropped subscription reports the raw gRPC error, not an *esdb.Error: it counts as
// retryable, and the next subscribe call says whether the failure is permanent.
func retryable(err error) bool {
	var esdbErr *esdbclient.Error
	if !errors.As(err, &esdbErr) {
		return !errors.Is(err, eventstore.ErrClosed)
	}
	return transientCode(esdbErr.Code())
}

// transientCode reports whether an EventStoreDB error code describes a passing condition: a
// node restarting or unreachable, a leader election, a timeout or an unclassified gRPC failure.
func transientCode(code esdbclient.ErrorCode) bool {
	switch code {
	case esdbclient.ErrorUnavailable,
		esdbclient.ErrorAborted,
		esdbclient.ErrorCodeNotLeader,
		esdbclient.ErrorCodeDeadlineExceeded,
		esdbclient.ErrorCodeUnknown:
		return true
	default:
		return false
	}
}
