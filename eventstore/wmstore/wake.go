package wmstore

import (
	"context"
	"errors"
	"math"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/eventcrm/crm/eventstore"
)

// streamWaker wakes the stream subscriptions of a Subscriber when their stream changes. One
// Store.Subscribe from the end of the log tells it which streams got events, and it wakes the
// subscriptions of those streams only: a busy stream does not make the readers of every other
// stream query the store.
type streamWaker struct {
	store  eventstore.Store
	logger watermill.LoggerAdapter
	retry  time.Duration

	mu      sync.Mutex
	streams map[string]*waiters
	stop    context.CancelFunc // nil until started
	done    chan struct{}
}

type waiters struct {
	n    *eventstore.Notifier
	refs int
}

func newStreamWaker(store eventstore.Store, logger watermill.LoggerAdapter, retry time.Duration) *streamWaker {
	return &streamWaker{store: store, logger: logger, retry: retry, streams: make(map[string]*waiters)}
}

// start subscribes to the log from its current end, once; later calls return at once. It must
// have returned before a stream subscription first reads, so that every append after that
// read reaches the waker. ctx bounds the start; the waker runs under life, until stop.
func (w *streamWaker) start(ctx, life context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stop != nil {
		return nil
	}
	end, err := lastPosition(ctx, w.store)
	if err != nil {
		return err
	}
	life, stop := context.WithCancel(life)
	sub, err := w.store.Subscribe(life, end)
	if err != nil {
		stop()
		return err
	}
	w.stop, w.done = stop, make(chan struct{})
	go w.run(life, sub, end)
	return nil
}

// close stops the waker and waits for it.
func (w *streamWaker) close() {
	w.mu.Lock()
	stop, done := w.stop, w.done
	w.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
}

// register returns the wake-up channel source of stream, and the function that unregisters it.
func (w *streamWaker) register(stream string) (wait func() <-chan struct{}, release func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ws := w.streams[stream]
	if ws == nil {
		ws = &waiters{n: eventstore.NewNotifier()}
		w.streams[stream] = ws
	}
	ws.refs++
	return ws.n.Wait, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if ws.refs--; ws.refs == 0 {
			delete(w.streams, stream)
		}
	}
}

func (w *streamWaker) run(ctx context.Context, sub eventstore.Subscription, after int64) {
	defer close(w.done)
	// A subscription that stops being woken falls back to polling: wake everyone when the
	// feed breaks, so nobody waits for a whole poll interval.
	defer w.wakeAll()
	pending := make(map[string]struct{})
	for {
		w.forward(sub, &after, pending)
		err := sub.Err()
		_ = sub.Close() // it has ended; Close only waits for its goroutine
		if ctx.Err() != nil || err == nil || errors.Is(err, eventstore.ErrClosed) {
			return
		}
		w.logger.Error("Stream wake-ups failed, subscribing again", err, watermill.LogFields{"after": after})
		w.wakeAll()
		for {
			if !sleep(ctx, w.retry) {
				return
			}
			if sub, err = w.store.Subscribe(ctx, after); err == nil {
				break
			}
			if errors.Is(err, eventstore.ErrClosed) {
				return
			}
			w.logger.Error("Stream wake-ups failed, subscribing again", err, watermill.LogFields{"after": after})
		}
	}
}

// forward wakes the streams of the events of sub until it ends. It gathers what is already
// buffered first, so that a burst of events of one stream costs one wake-up.
func (w *streamWaker) forward(sub eventstore.Subscription, after *int64, pending map[string]struct{}) {
	events := sub.Events()
	for e := range events {
		pending[e.Stream] = struct{}{}
		*after = e.Position
	gather:
		for len(pending) < 1024 {
			select {
			case e, ok := <-events:
				if !ok {
					break gather
				}
				pending[e.Stream] = struct{}{}
				*after = e.Position
			default:
				break gather
			}
		}
		w.mu.Lock()
		for stream := range pending {
			if ws := w.streams[stream]; ws != nil {
				ws.n.Notify()
			}
		}
		w.mu.Unlock()
		clear(pending)
	}
}

func (w *streamWaker) wakeAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ws := range w.streams {
		ws.n.Notify()
	}
}

// lastPosition returns the position of the last event of the log that ReadAll returns (0 for
// an empty log): the store has no call for it, so it gallops and bisects with one-event reads,
// about 2·log2(position) index lookups. Every event that becomes visible later has a higher
// position, as ReadAll promises.
func lastPosition(ctx context.Context, store eventstore.Store) (int64, error) {
	// first returns the position of the first event after the given one, if any.
	first := func(after int64) (int64, bool, error) {
		events, err := store.ReadAll(ctx, after, 1)
		if err != nil || len(events) == 0 {
			return 0, false, err
		}
		return events[0].Position, true, nil
	}
	lo, found, err := first(0)
	if err != nil || !found {
		return 0, err
	}
	// Invariant from here: an event at lo, none after hi.
	var hi int64
	for {
		if lo > math.MaxInt64/2 {
			hi = math.MaxInt64
			break
		}
		p, found, err := first(2 * lo)
		if err != nil {
			return 0, err
		}
		if !found {
			hi = 2 * lo
			break
		}
		lo = p
	}
	for lo < hi {
		mid := lo + (hi-lo)/2
		p, found, err := first(mid)
		if err != nil {
			return 0, err
		}
		if found {
			lo = p
		} else {
			hi = mid
		}
	}
	return lo, nil
}

// sleep waits for d and reports whether ctx is still alive.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
