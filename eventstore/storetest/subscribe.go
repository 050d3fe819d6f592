package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
)

// next returns the next n events of stream that sub delivers, skipping other streams' events.
func (s suite) next(t *testing.T, sub eventstore.Subscription, stream string, n int) []eventstore.Event {
	t.Helper()
	timeout := time.NewTimer(s.timeout())
	defer timeout.Stop()
	var got []eventstore.Event
	for len(got) < n {
		select {
		case e, ok := <-sub.Events():
			if !ok {
				t.Fatalf("subscription ended after %d of %d events of %s: %v", len(got), n, stream, sub.Err())
			}
			if e.Stream == stream {
				got = append(got, e)
			}
		case <-timeout.C:
			t.Fatalf("received %d of %d events of %s in %v", len(got), n, stream, s.timeout())
		}
	}
	return got
}

// checkFeed checks that events are versions from..to of one stream, with increasing positions.
func checkFeed(t *testing.T, what string, events []eventstore.Event, from, to int64) {
	t.Helper()
	if !equalInts(versions(events), seq(from, to)) {
		t.Fatalf("%s: versions %v, want %v", what, versions(events), seq(from, to))
	}
	for i := 1; i < len(events); i++ {
		if events[i].Position <= events[i-1].Position {
			t.Fatalf("%s: position %d after %d", what, events[i].Position, events[i-1].Position)
		}
	}
}

// waitEnded waits until the Events channel of sub is closed, dropping what is still buffered.
func (s suite) waitEnded(t *testing.T, sub eventstore.Subscription) {
	t.Helper()
	timeout := time.NewTimer(s.timeout())
	defer timeout.Stop()
	for {
		select {
		case _, ok := <-sub.Events():
			if !ok {
				return
			}
		case <-timeout.C:
			t.Fatalf("subscription still open after %v", s.timeout())
		}
	}
}

func testSubscribeCatchUpThenLive(t *testing.T, s suite) {
	t.Parallel()
	st := s.newStore(t)
	ctx := s.context(t)
	stream := streamName("live")
	res := mustAppend(t, ctx, st, stream, eventstore.NoStream, newEvents(1, "test.happened.v1"))
	mustAppend(t, ctx, st, stream, 1, newEvents(2, "test.happened.v1"))

	sub, err := st.Subscribe(ctx, res.Position-1)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	defer sub.Close()
	checkFeed(t, "catch-up", s.next(t, sub, stream, 3), 1, 3)

	// Live: appended while the subscription waits, one by one and in a batch.
	var wg sync.WaitGroup
	wg.Go(func() {
		for v := int64(3); v < 6; v++ {
			if _, err := st.Append(ctx, stream, v, newEvents(1, "test.happened.v1")); err != nil {
				t.Errorf("append live event at %d: %v", v, err)
				return
			}
		}
		if _, err := st.Append(ctx, stream, 6, newEvents(3, "test.happened.v1")); err != nil {
			t.Errorf("append live batch: %v", err)
		}
	})
	live := s.next(t, sub, stream, 6)
	wg.Wait()
	checkFeed(t, "live", live, 4, 9)

	// A last event proves nothing was delivered twice in between.
	mustAppend(t, ctx, st, stream, 9, newEvents(1, "test.happened.v1"))
	checkFeed(t, "after the live events", s.next(t, sub, stream, 1), 10, 10)
	if err := sub.Err(); err != nil {
		t.Errorf("running subscription: err = %v", err)
	}
}

func testSubscribeResume(t *testing.T, s suite) {
	t.Parallel()
	st := s.newStore(t)
	ctx := s.context(t)
	stream := streamName("resume")
	res := mustAppend(t, ctx, st, stream, eventstore.NoStream, newEvents(1, "test.happened.v1"))
	mustAppend(t, ctx, st, stream, 1, newEvents(4, "test.happened.v1"))

	sub, err := st.Subscribe(ctx, res.Position-1)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	seen := s.next(t, sub, stream, 2)
	checkFeed(t, "first subscription", seen, 1, 2)
	if err := sub.Close(); err != nil {
		t.Fatalf("close subscription: %v", err)
	}
	s.waitEnded(t, sub)

	// The consumer saved the position of the last event it processed and restarts from it.
	checkpoint := seen[len(seen)-1].Position
	sub, err = st.Subscribe(ctx, checkpoint)
	if err != nil {
		t.Fatalf("resubscribe after %d: %v", checkpoint, err)
	}
	defer sub.Close()
	rest := s.next(t, sub, stream, 3)
	checkFeed(t, "resumed subscription", rest, 3, 5)
	if rest[0].Position <= checkpoint {
		t.Errorf("resumed subscription delivered position %d, not after %d", rest[0].Position, checkpoint)
	}
	mustAppend(t, ctx, st, stream, 5, newEvents(1, "test.happened.v1"))
	checkFeed(t, "after the stored events", s.next(t, sub, stream, 1), 6, 6)
}

func testSubscriptionEnds(t *testing.T, s suite) {
	t.Parallel()
	st := s.newStore(t)
	ctx := s.context(t)
	stream := streamName("sub-end")
	res := mustAppend(t, ctx, st, stream, eventstore.NoStream, newEvents(1, "test.happened.v1"))

	t.Run("ByContext", func(t *testing.T) {
		subCtx, cancel := context.WithCancel(ctx)
		sub, err := st.Subscribe(subCtx, res.Position-1)
		if err != nil {
			t.Fatalf("subscribe: %v", err)
		}
		defer sub.Close()
		s.next(t, sub, stream, 1)
		cancel()
		s.waitEnded(t, sub)
		if err := sub.Err(); err != nil {
			t.Errorf("subscription ended by its context: err = %v, want nil", err)
		}
	})
	t.Run("ByClose", func(t *testing.T) {
		sub, err := st.Subscribe(ctx, res.Position-1)
		if err != nil {
			t.Fatalf("subscribe: %v", err)
		}
		s.next(t, sub, stream, 1)
		if err := sub.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		s.waitEnded(t, sub)
		if err := sub.Err(); err != nil {
			t.Errorf("closed subscription: err = %v, want nil", err)
		}
	})
}

func testCloseEndsSubscriptions(t *testing.T, s suite) {
	t.Parallel()
	st := s.newStoreFn(t)
	var once sync.Once
	closeStore := func() error {
		var err error
		once.Do(func() { err = st.Close() })
		return err
	}
	t.Cleanup(func() { _ = closeStore() })
	ctx := s.context(t)
	stream := streamName("close")
	res := mustAppend(t, ctx, st, stream, eventstore.NoStream, newEvents(1, "test.happened.v1"))
	sub, err := st.Subscribe(ctx, res.Position-1)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	defer sub.Close()
	s.next(t, sub, stream, 1) // it runs and has caught up

	if err := closeStore(); err != nil {
		t.Fatalf("close store: %v", err)
	}
	s.waitEnded(t, sub)
	if err := sub.Err(); !errors.Is(err, eventstore.ErrClosed) {
		t.Errorf("subscription of a closed store: err = %v, want ErrClosed", err)
	}
	if _, err := st.Append(ctx, stream, 1, newEvents(1, "test.happened.v1")); !errors.Is(err, eventstore.ErrClosed) {
		t.Errorf("append to a closed store: err = %v, want ErrClosed", err)
	}
	if sub, err := st.Subscribe(ctx, 0); !errors.Is(err, eventstore.ErrClosed) {
		t.Errorf("subscribe to a closed store: err = %v, want ErrClosed", err)
		if sub != nil {
			_ = sub.Close()
		}
	}
}
