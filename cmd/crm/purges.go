package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/eventcrm/crm/cmd/crm/internal/httpapi"
	"github.com/eventcrm/crm/projections"
)

// purgeLease is the lease under which one server of a deployment runs the purges.
const purgeLease = "erasure-purges"

// purgePoll is how often the purges are looked for (requested on another server, or left
// by a server that stopped) and their ends noticed.
const purgePoll = 2 * time.Second

// purgeQueue is the durable record of the purges that follow erasures, in the read-model
// database (the table erasure_purges), so that a purge cut short by a stop or a crash is
// finished at the next start, and every server of a PostgreSQL deployment answers the same
// state. One server at a time runs them, under a lease; every server empties its own caches
// when one ends.
type purgeQueue struct {
	db     *projections.DB
	purger *purger
	hold   func(ctx context.Context, name string, work func(ctx context.Context) error) error
	log    watermill.LoggerAdapter
	// dropCaches empties what this process keeps in memory that may hold erased data.
	dropCaches []func()
	// forget drops the keys of an erased contact that this process keeps in memory: the
	// erasure may have destroyed them on another server.
	forget func(contactID string)

	// dropped is the end (done_at) of the latest purge after which this process's caches
	// were emptied.
	dropped atomic.Int64

	wake chan struct{}
	wg   sync.WaitGroup
}

func newPurgeQueue(ctx context.Context, db *projections.DB, p *purger, hold func(context.Context, string, func(context.Context) error) error, log watermill.LoggerAdapter) (*purgeQueue, error) {
	q := &purgeQueue{db: db, purger: p, hold: hold, log: log, wake: make(chan struct{}, 1)}
	if _, err := db.SQL.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS erasure_purges (
		contact_id TEXT PRIMARY KEY,
		position BIGINT NOT NULL,
		state TEXT NOT NULL,
		error TEXT NOT NULL DEFAULT '',
		started_at BIGINT NOT NULL,
		done_at BIGINT,
		attempts INTEGER NOT NULL DEFAULT 0)`); err != nil {
		return nil, fmt.Errorf("create erasure_purges: %w", err)
	}
	return q, nil
}

// Request implements httpapi.Purges.
func (q *purgeQueue) Request(ctx context.Context, contactID string, position int64) error {
	if _, err := q.db.SQL.ExecContext(ctx, q.db.Dialect.Rebind(`INSERT INTO erasure_purges (contact_id, position, state, started_at)
		VALUES (?, ?, 'purging', ?) ON CONFLICT (contact_id) DO NOTHING`), contactID, position, time.Now().UnixMicro()); err != nil {
		return fmt.Errorf("record purge of %s: %w", contactID, err)
	}
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return nil
}

// State implements httpapi.Purges.
func (q *purgeQueue) State(ctx context.Context, contactID string) (httpapi.ErasureState, bool, error) {
	var (
		st      = httpapi.ErasureState{ContactID: contactID}
		started int64
		done    sql.NullInt64
	)
	err := q.db.SQL.QueryRowContext(ctx, q.db.Dialect.Rebind(`SELECT position, state, error, started_at, done_at
		FROM erasure_purges WHERE contact_id = ?`), contactID).Scan(&st.Position, &st.State, &st.Error, &started, &done)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return st, false, nil
	case err != nil:
		return st, false, fmt.Errorf("read purge of %s: %w", contactID, err)
	}
	st.StartedAt = time.UnixMicro(started).UTC()
	if done.Valid {
		st.DoneAt = time.UnixMicro(done.Int64).UTC()
	}
	if st.State == "done" {
		// Run, maybe, on another server: this one empties its caches before it says done,
		// lest an answer it kept from before the purge be given after.
		q.dropUpTo(done.Int64)
	}
	return st, true, nil
}

// start runs the purges (under the lease) and watches for their ends until the returned
// stop is called; stop waits for both. A purge cut short stays recorded as purging.
func (q *purgeQueue) start() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	q.wg.Add(2)
	go func() {
		defer q.wg.Done()
		for ctx.Err() == nil {
			err := q.hold(ctx, purgeLease, q.work)
			if ctx.Err() != nil {
				return
			}
			q.log.Error("Erasure purges stopped", err, nil)
			sleep(ctx, purgePoll)
		}
	}()
	go func() {
		defer q.wg.Done()
		q.watchEnds(ctx)
	}()
	return func() { cancel(); q.wg.Wait() }
}

// work runs the recorded purges, oldest first, while this server holds the lease. Those that
// failed are tried again once each time a server takes the lease (at its start).
func (q *purgeQueue) work(ctx context.Context) error {
	if _, err := q.db.SQL.ExecContext(ctx, `UPDATE erasure_purges SET state = 'purging' WHERE state = 'failed'`); err != nil {
		return fmt.Errorf("retry failed purges: %w", err)
	}
	for {
		var (
			id       string
			position int64
		)
		err := q.db.SQL.QueryRowContext(ctx, `SELECT contact_id, position FROM erasure_purges WHERE state = 'purging'
			ORDER BY position LIMIT 1`).Scan(&id, &position)
		if errors.Is(err, sql.ErrNoRows) {
			select {
			case <-q.wake:
			case <-time.After(purgePoll):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("next purge: %w", err)
		}
		if err := q.run(ctx, id, position); err != nil {
			return err
		}
	}
}

// run runs one purge and records how it ended; a purge cut short by ctx stays purging.
func (q *purgeQueue) run(ctx context.Context, id string, position int64) error {
	if _, err := q.db.SQL.ExecContext(ctx, q.db.Dialect.Rebind(`UPDATE erasure_purges SET attempts = attempts + 1 WHERE contact_id = ?`), id); err != nil {
		return fmt.Errorf("purge of %s: %w", id, err)
	}
	purgeErr := q.purger.Purge(ctx, id, position)
	if ctx.Err() != nil {
		return nil // the next holder of the lease runs it again
	}
	state, detail := "done", ""
	if purgeErr != nil {
		state, detail = "failed", purgeErr.Error()
		q.log.Error("Erasure purge failed", purgeErr, watermill.LogFields{"contact_id": id})
	}
	doneAt := time.Now().UnixMicro()
	if _, err := q.db.SQL.ExecContext(ctx, q.db.Dialect.Rebind(`UPDATE erasure_purges SET state = ?, error = ?, done_at = ?
		WHERE contact_id = ?`), state, detail, doneAt, id); err != nil {
		return fmt.Errorf("record end of purge of %s: %w", id, err)
	}
	q.dropUpTo(doneAt)
	return nil
}

// watchEnds forgets the keys of each contact erased, on this server or another, and empties
// this process's caches each time a purge ends.
func (q *purgeQueue) watchEnds(ctx context.Context) {
	forgotten := map[string]bool{}
	for first := true; ; first = false {
		if err := q.forgetErased(ctx, forgotten); err != nil && ctx.Err() == nil {
			q.log.Error("Erased contacts not read", err, nil)
		}
		var latest sql.NullInt64
		err := q.db.SQL.QueryRowContext(ctx, `SELECT max(done_at) FROM erasure_purges WHERE state = 'done'`).Scan(&latest)
		if err == nil {
			if first { // at start the caches are empty
				q.dropped.Store(latest.Int64)
			}
			q.dropUpTo(latest.Int64)
		}
		if !sleep(ctx, purgePoll) {
			return
		}
	}
}

// dropUpTo empties this process's caches unless they were emptied after the purge that
// ended at doneAt (microseconds) was recorded.
func (q *purgeQueue) dropUpTo(doneAt int64) {
	for {
		last := q.dropped.Load()
		if doneAt <= last {
			return
		}
		if q.dropped.CompareAndSwap(last, doneAt) {
			q.drop()
			return
		}
	}
}

// forgetErased forgets the keys of the contacts erased since the last call (those not in
// forgotten, which it adds them to). Erasures are rare: their count tells whether any is new.
func (q *purgeQueue) forgetErased(ctx context.Context, forgotten map[string]bool) error {
	if q.forget == nil {
		return nil
	}
	var n int
	if err := q.db.SQL.QueryRowContext(ctx, `SELECT count(*) FROM erasure_purges`).Scan(&n); err != nil {
		return fmt.Errorf("count erasures: %w", err)
	}
	if n == len(forgotten) {
		return nil
	}
	rows, err := q.db.SQL.QueryContext(ctx, `SELECT contact_id FROM erasure_purges`)
	if err != nil {
		return fmt.Errorf("read erasures: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return fmt.Errorf("read erasures: %w", err)
		}
		if !forgotten[id] {
			q.forget(id)
			forgotten[id] = true
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read erasures: %w", err)
	}
	return nil
}

func (q *purgeQueue) drop() {
	for _, f := range q.dropCaches {
		f()
	}
}

// sleep waits for d or the end of ctx; it reports whether ctx is still alive.
func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-time.After(d):
		return true
	case <-ctx.Done():
		return false
	}
}
