package projections

import (
	"context"
	"time"

	"github.com/eventcrm/crm/eventstore"
)

// LogHead returns the last position of the log (0 when empty) with a few reads of one
// event: it gallops to a position with nothing after it, then bisects. Positions need not
// be dense.
func LogHead(ctx context.Context, store eventstore.Store) (int64, error) {
	after := func(pos int64) (int64, bool, error) {
		events, err := store.ReadAll(ctx, pos, 1)
		if err != nil || len(events) == 0 {
			return 0, false, err
		}
		return events[0].Position, true, nil
	}
	// lo is 0 or an existing position; nothing follows hi.
	var lo, hi int64
	for step := int64(1024); ; step *= 2 {
		next, ok, err := after(lo + step)
		if err != nil {
			return 0, err
		}
		if !ok {
			hi = lo + step
			break
		}
		lo = next
	}
	for lo < hi {
		mid := lo + (hi-lo)/2
		next, ok, err := after(mid)
		if err != nil {
			return 0, err
		}
		if ok {
			lo = next
		} else {
			hi = mid
		}
	}
	return lo, nil
}

// Sleep waits d, or less when ctx ends first (then it returns ctx.Err()).
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
