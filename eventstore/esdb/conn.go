package esdb

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"go.uber.org/zap"

	"github.com/eventcrm/crm/eventstore"
)

// Quirks of EventStore-Client-Go v4 that shape this file:
//   - A client whose discovery fails (maxDiscoverAttempts in a row) closes itself for good: its
//     later calls fail with ErrorCodeConnectionClosed. The store then starts a new client.
//   - Finding a connection ignores the call's context, and a call that raced with that failed
//     discovery blocks forever on the client's internal channel. So every call runs in its own
//     goroutine, and the caller waits for it, for its context, or (with a grace period) for
//     the client to give up, whichever comes first.
//   - Closing a client while a call waits on that channel panics the call's goroutine. So Close
//     waits for the calls in flight, and a client that gave up is never closed.

// errConnectionLost reports a call on a client that gave up discovery. The store has started
// a new client: trying again may succeed.
var errConnectionLost = errors.New("connection to EventStoreDB lost")

// conn is one client and the calls in flight on it.
type conn struct {
	client *esdbclient.Client
	calls  sync.WaitGroup

	deadOnce sync.Once
	dead     chan struct{} // closed when the client gave up discovery
}

func newConn(conf *esdbclient.Configuration) (*conn, error) {
	client, err := esdbclient.NewClient(conf)
	if err != nil {
		return nil, err
	}
	return &conn{client: client, dead: make(chan struct{})}, nil
}

func (c *conn) markDead() { c.deadOnce.Do(func() { close(c.dead) }) }

// close closes the client once its calls are done, or leaves it when it gave up meanwhile.
func (c *conn) close() error {
	callsDone := make(chan struct{})
	go func() {
		c.calls.Wait()
		close(callsDone)
	}()
	select {
	case <-callsDone:
		return c.client.Close()
	case <-c.dead:
		return nil
	}
}

// clientGaveUp reports whether err comes from a client that closed itself after a failed
// discovery: the failure itself, or any later call.
func clientGaveUp(err error) bool {
	var esdbErr *esdbclient.Error
	if !errors.As(err, &esdbErr) {
		return false
	}
	if esdbErr.Code() == esdbclient.ErrorCodeConnectionClosed {
		return true
	}
	inner := esdbErr.Err()
	return inner != nil && strings.HasPrefix(inner.Error(), "maximum discovery attempt count reached")
}

// do runs f with the current client and translates its error (translateError). It returns
// when f does, when ctx ends, or shortly after the client gave up; f's results may only be
// used when do returns nil. f must be done with the client when it returns.
func (s *Store) do(ctx context.Context, f func(ctx context.Context, client *esdbclient.Client) error) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return eventstore.ErrClosed
	}
	c := s.conn
	c.calls.Add(1)
	s.mu.Unlock()

	done := make(chan error, 1)
	go func() {
		defer c.calls.Done()
		err := f(ctx, c.client)
		if clientGaveUp(err) {
			c.markDead()
			if s.replace(c) {
				err = fmt.Errorf("%w (a new client takes over): %v", errConnectionLost, err)
			}
		}
		done <- translateError(ctx, err)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-c.dead:
	}
	// The client gave up while f ran: f may be waiting on it forever, or about to fail.
	grace := time.NewTimer(deadClientGrace)
	defer grace.Stop()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-grace.C:
		return fmt.Errorf("%w: the call waits on a client that gave up", errConnectionLost)
	}
}

// deadClientGrace is how long a call on a client that gave up may still take to return.
const deadClientGrace = 2 * time.Second

// replace starts a new client in place of dead, unless the store is closed. It reports whether
// the store is still open.
func (s *Store) replace(dead *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.conn != dead {
		return true
	}
	c, err := newConn(s.conf)
	if err != nil { // the configuration was valid when the store opened: cannot happen
		s.cfg.logger.Error("esdb: start a new client", zap.Error(err))
		return true
	}
	s.cfg.logger.Warn("esdb: client gave up discovery, started a new one")
	s.conn = c
	return true
}
