package sqlite

import (
	"context"
	"database/sql"
	"time"
)

// walCheckpointer copies the WAL back into the database file on its own connection, so that
// the writer's commits do not pay for it: with SQLite's automatic checkpoint, every thousandth
// commit would stall all the appends of its group for a copy and two fsyncs.
type walCheckpointer struct {
	db   *sql.DB
	kick chan struct{}
	stop chan struct{}
	done chan struct{}
	// pause is the least time between checkpoints, so that a busy log is copied in large
	// runs rather than after every commit.
	pause time.Duration
}

// walBackstopPages is the writer's own automatic checkpoint threshold, only reached when the
// background checkpoints cannot keep up (a reader holding an old snapshot, say).
const walBackstopPages = 20_000

func newWALCheckpointer(db *sql.DB) *walCheckpointer {
	c := &walCheckpointer{
		db:    db,
		kick:  make(chan struct{}, 1),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
		pause: 50 * time.Millisecond,
	}
	go c.run()
	return c
}

// committed tells the checkpointer that the WAL has grown. It never blocks.
func (c *walCheckpointer) committed() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *walCheckpointer) run() {
	defer close(c.done)
	pause := time.NewTimer(0)
	defer pause.Stop()
	for {
		select {
		case <-c.kick:
		case <-c.stop:
			return
		}
		// PASSIVE never waits for the writer or readers; what it cannot copy now is copied
		// next time. An error (the file busy, say) is retried the same way.
		_, _ = c.db.ExecContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)")
		pause.Reset(c.pause)
		select {
		case <-pause.C:
		case <-c.stop:
			return
		}
	}
}

func (c *walCheckpointer) close() {
	close(c.stop)
	<-c.done
}
