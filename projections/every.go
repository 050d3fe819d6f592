package projections

import (
	"context"
	"time"
)

// Every calls do every d until ctx ends or do returns false. The first call is d after the
// start.
func Every(ctx context.Context, d time.Duration, do func() bool) {
	tick := time.NewTicker(d)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if !do() {
			return
		}
	}
}
