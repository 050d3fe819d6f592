package projections

import (
	"context"
	"fmt"
)

// ChangesTable counts, per table set, the changes of its tables that do not move its
// checkpoint (a parked event applied by a retry). With the checkpoint it is the state every
// server sharing the database sees of a set: an answer a server keeps for one state is
// dropped when another server changes the set.
const ChangesTable = "projection_changes"

// BumpChanges counts one change of set t in tx, the transaction that made it.
func BumpChanges(ctx context.Context, tx *Tx, t Tables) error {
	if _, err := tx.Exec(ctx, `INSERT INTO `+ChangesTable+` (set_name, changes) VALUES (?, 1)
		ON CONFLICT (set_name) DO UPDATE SET changes = `+ChangesTable+`.changes + 1`, t.Prefix()); err != nil {
		return fmt.Errorf("count change of %s: %w", t.Prefix(), err)
	}
	return nil
}

// SetState is what the database says of a table set.
type SetState struct {
	// Checkpoint is the position of the last event applied to the set.
	Checkpoint int64
	// Changes counts the changes that did not move the checkpoint (see ChangesTable).
	Changes int64
	// Parked counts its parked events.
	Parked int64
}

// SetStates reads the state of every table set with a checkpoint, by set name, in one read
// transaction: a server that does not apply a set follows it so.
func (db *DB) SetStates(ctx context.Context) (map[string]SetState, error) {
	states := map[string]SetState{}
	rows, err := db.SQL.QueryContext(ctx, `SELECT c.set_name, c.position, coalesce(g.changes, 0),
		(SELECT count(*) FROM `+ParkedTable+` p WHERE p.table_set = c.set_name)
		FROM `+CheckpointsTable+` c LEFT JOIN `+ChangesTable+` g ON g.set_name = c.set_name`)
	if err != nil {
		return nil, fmt.Errorf("read table-set states: %w", closedAs(err))
	}
	defer rows.Close()
	for rows.Next() {
		var (
			name string
			s    SetState
		)
		if err := rows.Scan(&name, &s.Checkpoint, &s.Changes, &s.Parked); err != nil {
			return nil, fmt.Errorf("read table-set states: %w", err)
		}
		states[name] = s
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read table-set states: %w", err)
	}
	return states, nil
}

// ParkedStreams counts, in tx, the parked events of set t in each of streams that has any.
// The live runner reads it after taking the set's lock, so whichever server applies the
// set parks a later event of a stream behind an earlier parked one.
func ParkedStreams(ctx context.Context, tx *Tx, t Tables, streams []string) (map[string]int, error) {
	parked := map[string]int{}
	if len(streams) == 0 {
		return parked, nil
	}
	cond, arg, err := tx.Dialect().InKeys("stream", streams)
	if err != nil {
		return nil, err
	}
	rows, err := tx.Query(ctx, `SELECT stream, count(*) FROM `+ParkedTable+` WHERE table_set = ? AND `+cond+` GROUP BY stream`, t.Prefix(), arg)
	if err != nil {
		return nil, fmt.Errorf("parked streams of %s: %w", t.Prefix(), err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			stream string
			n      int
		)
		if err := rows.Scan(&stream, &n); err != nil {
			return nil, fmt.Errorf("parked streams of %s: %w", t.Prefix(), err)
		}
		parked[stream] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("parked streams of %s: %w", t.Prefix(), err)
	}
	return parked, nil
}

// ParkedInStream counts the parked events of stream in set t.
func (db *DB) ParkedInStream(ctx context.Context, t Tables, stream string) (int, error) {
	var n int
	if err := db.SQL.QueryRowContext(ctx, db.Dialect.Rebind(`SELECT count(*) FROM `+ParkedTable+` WHERE table_set = ? AND stream = ?`),
		t.Prefix(), stream).Scan(&n); err != nil {
		return 0, fmt.Errorf("parked events of %s in %s: %w", stream, t.Prefix(), err)
	}
	return n, nil
}

// DropLockTimeout bounds how long dropping a table waits for the transactions reading it
// (Features.BoundedLockWait): the drop fails and is tried again later.
const DropLockTimeout = "5s"

// dropTable drops table name, in a transaction of its own that waits for locks no longer
// than the dialect bounds it.
func (db *DB) dropTable(ctx context.Context, name string) error {
	bound := db.Dialect.Features().BoundedLockWait
	if bound == "" {
		if _, err := db.SQL.ExecContext(ctx, `DROP TABLE IF EXISTS `+name); err != nil {
			return fmt.Errorf("drop %s: %w", name, err)
		}
		return nil
	}
	tx, err := db.SQL.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("drop %s: %w", name, err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	for _, q := range []string{bound, `DROP TABLE IF EXISTS ` + name} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("drop %s: %w", name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("drop %s: %w", name, err)
	}
	return nil
}
