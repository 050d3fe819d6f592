package runtime

import (
	"context"

	"github.com/eventcrm/crm/eventstore"
)

// InjectFaults makes r call before inside every apply transaction after each applied event,
// and after once a transaction committed, before its events are acknowledged.
func InjectFaults(r *Runner, before func(ctx context.Context, e eventstore.Event) error, after func(ctx context.Context, events []eventstore.Event) error) {
	r.faults = faults{beforeCommit: before, afterCommit: after}
}

// InCatchUp tells whether ctx is the runner's catch-up (reading the log directly) rather
// than the live handler.
func InCatchUp(ctx context.Context) bool { return ctx.Value(catchUpKey{}) != nil }

// OnBuiltCommit makes r call built after each commit of a catch-up built in place, with the
// checkpoint it reached.
func OnBuiltCommit(r *Runner, built func(checkpoint int64)) { r.faults.built = built }
