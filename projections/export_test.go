package projections

import (
	"context"
	"time"

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

// ErrCrash, returned by a rebuild's AfterBatch hook, stops it as a crash would: its lock
// stays held until the lease ends.
var ErrCrash = errCrash

// AfterBatch makes a rebuild call f after each committed batch with the checkpoint of its
// first set; an error stops it there.
func AfterBatch(cfg *RebuildConfig, f func(position int64) error) { cfg.afterBatch = f }

// PauseBeforeDrops makes a rebuild call f instead of sleeping before it drops the replaced
// sets.
func PauseBeforeDrops(cfg *RebuildConfig, f func(ctx context.Context, d time.Duration) error) {
	cfg.pause = f
}
