package webhooks_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventcrm/crm/cmd/crm/internal/webhooks"
	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// countingStore is the real store, counting the global-log reads made through it (the
// store's own subscription reads inside the store, woken by appends, and is not counted).
type countingStore struct {
	eventstore.Store
	reads atomic.Int64
}

func (s *countingStore) ReadAll(ctx context.Context, after int64, limit int) ([]eventstore.Event, error) {
	s.reads.Add(1)
	return s.Store.ReadAll(ctx, after, limit)
}

func (s *countingStore) Unwrap() eventstore.Store { return s.Store }

// An idle worker waits for an append rather than polling: over a quiet second it reads
// neither the log nor its tables (the old worker read both every 100 ms: about 30 statements
// and reads a second), and an append still reaches the receiver although the safety-net poll
// is an hour away.
func TestIdleWorkerWaitsForAppends(t *testing.T) {
	projectiontest.ForEachBackend(t, func(t *testing.T, inner eventstore.Store, db *projections.DB) {
		ctx := context.Background()
		store := &countingStore{Store: inner}
		rcv := newReceiver(t, func(int) string { return "" })
		cfg := with(deps(t, inner, db), webhooks.Config{AllowPrivate: true, Timeout: 5 * time.Second, PollInterval: time.Hour})
		cfg.Store = store
		svc, err := webhooks.New(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		sub, err := svc.Create(ctx, admin, webhooks.CreateRequest{URL: rcv.srv.URL, EventTypes: []string{"*"}})
		if err != nil {
			t.Fatal(err)
		}
		rcv.mu.Lock()
		rcv.secret = sub.Secret
		rcv.mu.Unlock()
		cmds := commands.NewHandler(store)
		run(t, svc)
		first := contacts(t, cmds, 1)
		projectiontest.WaitUntil(t, time.Minute, "the first events delivered", func() bool { return len(rcv.positions()) == len(first) })

		// Let the worker settle into waiting, then count a quiet second.
		time.Sleep(200 * time.Millisecond)
		reads, statements := store.reads.Load(), webhooks.Statements(svc)
		time.Sleep(time.Second)
		if n := store.reads.Load() - reads; n != 0 {
			t.Errorf("an idle worker read the log %d times in a quiet second, want 0", n)
		}
		if n := webhooks.Statements(svc) - statements; n != 0 {
			t.Errorf("an idle worker ran %d statements in a quiet second, want 0", n)
		}

		more := contacts(t, cmds, 1)
		projectiontest.WaitUntil(t, time.Minute, "an append delivered without polling", func() bool {
			return len(rcv.positions()) == len(first)+len(more)
		})
	})
}
