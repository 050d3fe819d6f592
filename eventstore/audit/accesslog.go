package audit

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"
)

// AccessLog is the append-only record of who read the audit trail: each auditor read of a
// history, a checkpoint or a proof. It lives in a SQLite file of its own, not in the event
// log: a read recorded as an event would be a write on every read, go to every projection and
// process manager, and grow the very tree being read, so that no checkpoint could ever be
// current; it would also put access records under the log's retention and erasure rules, and
// a read-only or EventStoreDB log could not hold them at all.
//
// Rows cannot be updated or deleted through SQLite (triggers refuse), and each entry chains
// the hash of the previous one, so an edit made to the file by other means breaks the chain
// (see Verify).
//
// On PostgreSQL (OpenPostgresAccessLog) the log is a table of the store's schema that every
// server of the store appends to and lists, and the same triggers refuse changes.
type AccessLog struct {
	db *sql.DB
	d  *dialect   // nil: a SQLite file
	mu sync.Mutex // one append at a time in this process: each chains to the previous
}

// Access is one recorded read.
type Access struct {
	Seq       int64     `json:"seq"`
	At        time.Time `json:"at"`
	Actor     string    `json:"actor"`
	Role      string    `json:"role"`
	RequestID string    `json:"request_id"`
	Method    string    `json:"method"`
	Path      string    `json:"path"`
	Query     string    `json:"query,omitempty"`
	Status    int       `json:"status"`
	// What names what was read: a stream, a checkpoint's size and root, an event.
	What     string `json:"what,omitempty"`
	PrevHash Hash   `json:"prev_hash"`
	Hash     Hash   `json:"hash"`
}

// OpenAccessLog opens (creating it if needed) the access log in the SQLite file at path.
func OpenAccessLog(ctx context.Context, path string) (*AccessLog, error) {
	db, err := openSQLite(ctx, path, `
		CREATE TABLE IF NOT EXISTS access_log (
			seq        INTEGER PRIMARY KEY,
			at         INTEGER NOT NULL, -- unix microseconds, UTC
			actor      TEXT    NOT NULL,
			role       TEXT    NOT NULL,
			request_id TEXT    NOT NULL,
			method     TEXT    NOT NULL,
			path       TEXT    NOT NULL,
			query      TEXT    NOT NULL,
			status     INTEGER NOT NULL,
			what       TEXT    NOT NULL,
			prev_hash  BLOB    NOT NULL,
			hash       BLOB    NOT NULL
		);
		CREATE TRIGGER IF NOT EXISTS access_log_no_update BEFORE UPDATE ON access_log
		BEGIN SELECT RAISE(ABORT, 'the access log is append-only'); END;
		CREATE TRIGGER IF NOT EXISTS access_log_no_delete BEFORE DELETE ON access_log
		BEGIN SELECT RAISE(ABORT, 'the access log is append-only'); END;`)
	if err != nil {
		return nil, fmt.Errorf("open access log %s: %w", path, err)
	}
	return &AccessLog{db: db}, nil
}

// Close closes the access log's file.
func (l *AccessLog) Close() error { return l.db.Close() }

// accessHash chains an entry to the previous one, over every field, each length-prefixed.
func accessHash(prev Hash, a Access) Hash {
	h := sha256.New()
	h.Write(prev[:])
	var n [8]byte
	num := func(v int64) {
		binary.BigEndian.PutUint64(n[:], uint64(v))
		h.Write(n[:])
	}
	for _, v := range []int64{a.Seq, a.At.UnixMicro(), int64(a.Status)} {
		num(v)
	}
	for _, s := range []string{a.Actor, a.Role, a.RequestID, a.Method, a.Path, a.Query, a.What} {
		num(int64(len(s)))
		h.Write([]byte(s))
	}
	var out Hash
	h.Sum(out[:0])
	return out
}

// Record appends a read and returns it as stored (with its sequence number and hashes).
// At is set to now when zero.
func (l *AccessLog) Record(ctx context.Context, a Access) (Access, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if a.At.IsZero() {
		a.At = time.Now()
	}
	a.At = a.At.UTC().Truncate(time.Microsecond)
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return Access{}, fmt.Errorf("record access: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if l.d != nil && l.d.pg {
		// One append at a time among servers too; readers are not held up.
		if _, err := tx.ExecContext(ctx, "LOCK TABLE audit_access_log IN SHARE ROW EXCLUSIVE MODE"); err != nil {
			return Access{}, fmt.Errorf("record access: %w", err)
		}
	}
	var prev []byte
	err = tx.QueryRowContext(ctx, l.d.q("SELECT seq, hash FROM access_log ORDER BY seq DESC LIMIT 1")).Scan(&a.Seq, &prev)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		a.Seq, a.PrevHash = 1, Hash{}
	case err != nil:
		return Access{}, fmt.Errorf("record access: %w", err)
	default:
		a.Seq++
		if a.PrevHash, err = hashOf(prev); err != nil {
			return Access{}, fmt.Errorf("record access: %w", err)
		}
	}
	a.Hash = accessHash(a.PrevHash, a)
	if _, err := tx.ExecContext(ctx, l.d.q(`INSERT INTO access_log (seq, at, actor, role, request_id, method, path, query, status, what, prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`), a.Seq, a.At.UnixMicro(), a.Actor, a.Role, a.RequestID, a.Method,
		a.Path, a.Query, a.Status, a.What, a.PrevHash[:], a.Hash[:]); err != nil {
		return Access{}, fmt.Errorf("record access: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return Access{}, fmt.Errorf("record access: %w", err)
	}
	return a, nil
}

// List returns up to limit entries with seq > after, oldest first.
func (l *AccessLog) List(ctx context.Context, after int64, limit int) ([]Access, error) {
	rows, err := l.db.QueryContext(ctx, l.d.q(`SELECT seq, at, actor, role, request_id, method, path, query, status, what, prev_hash, hash
		FROM access_log WHERE seq > ? ORDER BY seq LIMIT ?`), after, limit)
	if err != nil {
		return nil, fmt.Errorf("list accesses: %w", err)
	}
	defer rows.Close()
	out := []Access{}
	for rows.Next() {
		var (
			a          Access
			at         int64
			prev, hash []byte
		)
		if err := rows.Scan(&a.Seq, &at, &a.Actor, &a.Role, &a.RequestID, &a.Method, &a.Path, &a.Query, &a.Status,
			&a.What, &prev, &hash); err != nil {
			return nil, fmt.Errorf("list accesses: %w", err)
		}
		a.At = time.UnixMicro(at).UTC()
		if a.PrevHash, err = hashOf(prev); err != nil {
			return nil, fmt.Errorf("list accesses: seq %d: %w", a.Seq, err)
		}
		if a.Hash, err = hashOf(hash); err != nil {
			return nil, fmt.Errorf("list accesses: seq %d: %w", a.Seq, err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list accesses: %w", err)
	}
	return out, nil
}

// Verify checks the whole access log's chain and returns the number of entries; a broken
// link is ErrLogAltered naming the first entry that does not verify.
func (l *AccessLog) Verify(ctx context.Context) (int64, error) {
	var (
		prev  Hash
		after int64
	)
	for {
		entries, err := l.List(ctx, after, 1000)
		if err != nil {
			return after, err
		}
		for _, a := range entries {
			if a.Seq != after+1 || a.PrevHash != prev || accessHash(prev, a) != a.Hash {
				return after, fmt.Errorf("access log entry %d does not verify: %w", a.Seq, ErrLogAltered)
			}
			prev, after = a.Hash, a.Seq
		}
		if len(entries) < 1000 {
			return after, nil
		}
	}
}
