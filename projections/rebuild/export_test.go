package rebuild

import (
	"context"
	"time"
)

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
