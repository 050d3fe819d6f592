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
