package sqlite_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore/sqlite"
)

// A subscription that never polls (its interval is an hour) is woken by the appends of its
// own Store: the writer wakes the subscribers after each commit, so that live projections
// do not wait for a poll.
func TestSubscribeWokenByOwnAppends(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "events.db"), sqlite.WithPollInterval(time.Hour))
	defer s.Close()
	sub, err := s.Subscribe(t.Context(), 0)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	defer sub.Close()
	for i := range 3 {
		res, err := s.Append(t.Context(), "s-1", int64(i), newEvents(1))
		if err != nil {
			t.Fatalf("append: %v", err)
		}
		select {
		case e := <-sub.Events():
			if e.Position != res.Position {
				t.Fatalf("delivered %d, want %d", e.Position, res.Position)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("append %d: no event delivered (the subscription polls every hour)", i)
		}
	}
}
