package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/eventcrm/crm/eventstore"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 5 * time.Second
	// notifyGap is the least time between two pg_notify calls of the pump: under load one
	// notification stands for many appends, and other processes poll anyway.
	notifyGap = 10 * time.Millisecond
)

// Subscribe implements eventstore.Store. The subscription reads the log with ReadAll, so it
// never skips an event that commits late, and it survives a lost connection or a restart of
// PostgreSQL: reads are retried with backoff until they succeed or the subscription ends.
func (s *Store) Subscribe(ctx context.Context, after int64) (eventstore.Subscription, error) {
	if s.closed.Load() {
		return nil, eventstore.ErrClosed
	}
	s.startListener()
	return s.subs.Start(ctx, func(ctx context.Context) (eventstore.Subscription, error) {
		return eventstore.PollSubscribe(ctx, s.readRetrying, after, eventstore.PollConfig{
			Wake:     s.wake.Wait,
			Interval: s.opts.pollInterval,
		}), nil
	})
}

// readRetrying is ReadAll for subscriptions: it waits out transient failures.
func (s *Store) readRetrying(ctx context.Context, after int64, limit int) ([]eventstore.Event, error) {
	backoff := minBackoff
	for {
		events, err := s.ReadAll(ctx, after, limit)
		if err == nil || !transient(err) || ctx.Err() != nil {
			return events, err
		}
		if err := sleep(ctx, backoff); err != nil {
			return nil, err
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// transient reports whether err is the kind of failure that goes away by itself: a lost or
// refused connection, a server shutting down or starting up, too many connections. Errors
// the server answered otherwise (a missing table, a permission) are not.
func transient(err error) bool {
	if errors.Is(err, eventstore.ErrClosed) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"), // connection exception
			strings.HasPrefix(pgErr.Code, "53"),  // insufficient resources
			strings.HasPrefix(pgErr.Code, "57P"), // shutdown, crash, cannot connect now
			pgErr.Code == "40001", pgErr.Code == "40P01":
			return true
		}
		return false
	}
	// Not a server's answer: the connection failed, or could not be made.
	return true
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// startListener starts the LISTEN connection once, with the first subscription: a Store that
// only writes does not hold it.
func (s *Store) startListener() {
	s.listenMu.Lock()
	defer s.listenMu.Unlock()
	if s.listening || s.closed.Load() {
		return
	}
	s.listening = true
	s.bgWG.Go(s.listen)
}

// listen holds a dedicated connection that LISTENs on the store's channel and wakes the
// subscriptions on every notification. When the connection fails it reconnects with backoff;
// the subscriptions poll meanwhile, and are woken once it listens again, for what was
// committed while nobody listened.
func (s *Store) listen() {
	ctx := s.bg
	backoff := minBackoff
	for ctx.Err() == nil {
		if s.listenOnce(ctx) {
			backoff = minBackoff
		}
		if sleep(ctx, backoff) != nil {
			return
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// listenOnce listens until the connection fails or ctx ends. It reports whether it got to
// listen at all.
func (s *Store) listenOnce(ctx context.Context) bool {
	conn, err := pgx.ConnectConfig(ctx, s.listenCfg)
	if err != nil {
		return false
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(closeCtx) // the connection is discarded either way
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		return false
	}
	s.wake.Notify()
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return true
		}
		s.wake.Notify()
	}
}

// requestNotify asks the pump for a pg_notify; requests made while one is pending merge.
func (s *Store) requestNotify() {
	select {
	case s.notifyCh <- struct{}{}:
	default:
	}
}

// notifyPump sends the notifications that wake other processes' subscriptions. It runs
// after the appends committed, not inside their transactions: a transaction that notifies
// holds a cluster-wide lock through its commit, WAL flush included, which would serialize
// concurrent appends and undo group commit.
func (s *Store) notifyPump() {
	ctx := s.bg
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.notifyCh:
		}
		// A failed notification is not retried: the subscriptions it was for poll.
		_, _ = s.pool.Exec(ctx, "SELECT pg_notify($1, '')", s.channel)
		if sleep(ctx, notifyGap) != nil {
			return
		}
	}
}

// LoadCheckpoint implements eventstore.Checkpoints.
func (s *Store) LoadCheckpoint(ctx context.Context, name string) (int64, error) {
	if s.closed.Load() {
		return 0, eventstore.ErrClosed
	}
	var pos int64
	err := s.pool.QueryRow(ctx, "SELECT position FROM checkpoints WHERE name = $1", name).Scan(&pos)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("load checkpoint %s: %w", name, s.closedErr(err))
	}
	return pos, nil
}

// SaveCheckpoint implements eventstore.Checkpoints. A position may move back (a rebuild).
func (s *Store) SaveCheckpoint(ctx context.Context, name string, position int64) error {
	if s.closed.Load() {
		return eventstore.ErrClosed
	}
	return s.closedErr(SaveCheckpointTx(ctx, s.pool, name, position))
}

// SaveCheckpointTx saves a checkpoint with db, typically the transaction that also applies the
// events up to position to a read model, so that a redelivered event is a no-op. db's
// search_path must lead to the store's schema, as the connections of Store.Pool do.
func SaveCheckpointTx(ctx context.Context, db interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}, name string, position int64) error {
	_, err := db.Exec(ctx, `INSERT INTO checkpoints (name, position) VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, updated_at = now()`, name, position)
	if err != nil {
		return fmt.Errorf("save checkpoint %s: %w", name, err)
	}
	return nil
}
