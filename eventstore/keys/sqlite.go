package keys

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"time"

	_ "modernc.org/sqlite" // the pure Go SQLite driver
)

// SQLite is a key store in a SQLite file of its own (the data directory's keys.db).
//
// The file is written with synchronous=FULL and secure_delete: a destroyed key is overwritten
// with zeros in the file, and the WAL, which may still hold the page as it was, is
// checkpointed and truncated right after. New keys made concurrently are written in one
// transaction (one flush to disk for all of them: group commit), as a key is made for every
// new contact.
type SQLite struct {
	db      *sql.DB
	pending chan keyRequest
	done    chan struct{}
}

type keyRequest struct {
	subject string
	key     []byte
	reply   chan error
}

// OpenSQLite opens (creating it, mode 0600) the key store in the file at path.
func OpenSQLite(ctx context.Context, path string) (*SQLite, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create key store %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("create key store %s: %w", path, err)
	}
	q := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(FULL)", "secure_delete(1)"} {
		q.Add("_pragma", p)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open key store %s: %w", path, err)
	}
	db.SetMaxOpenConns(4)
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS subject_keys (
		subject TEXT PRIMARY KEY,
		key BLOB,
		created_at INTEGER NOT NULL,
		destroyed_at INTEGER)`); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("migrate key store %s: %w", path, err)
	}
	s := &SQLite{db: db, pending: make(chan keyRequest, 1024), done: make(chan struct{})}
	go s.writeKeys()
	return s, nil
}

// writeKeys writes the keys asked for, as many as are waiting in one transaction.
func (s *SQLite) writeKeys() {
	defer close(s.done)
	for first := range s.pending {
		batch := []keyRequest{first}
	collect:
		for len(batch) < 512 {
			select {
			case r, ok := <-s.pending:
				if !ok {
					break collect
				}
				batch = append(batch, r)
			default:
				break collect
			}
		}
		err := s.insert(batch)
		for _, r := range batch {
			r.reply <- err
		}
	}
}

func (s *SQLite) insert(batch []keyRequest) error {
	tx, err := s.db.Begin()
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	now := time.Now().UnixMicro()
	for _, r := range batch {
		if _, err := tx.Exec(`INSERT INTO subject_keys (subject, key, created_at) VALUES (?, ?, ?)
			ON CONFLICT (subject) DO NOTHING`, r.subject, r.key, now); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// Key implements Keys.
func (s *SQLite) Key(ctx context.Context, subject string) ([]byte, error) {
	k, err := s.Lookup(ctx, subject)
	if !errors.Is(err, ErrNoKey) {
		return k, err
	}
	fresh, err := newKey()
	if err != nil {
		return nil, err
	}
	// Another caller may have made one meanwhile: the first is kept, and read back.
	reply := make(chan error, 1)
	select {
	case s.pending <- keyRequest{subject: subject, key: fresh, reply: reply}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if err := <-reply; err != nil {
		return nil, fmt.Errorf("store key of %s: %w", subject, err)
	}
	return s.Lookup(ctx, subject)
}

// Lookup implements Keys.
func (s *SQLite) Lookup(ctx context.Context, subject string) ([]byte, error) {
	var (
		key       []byte
		destroyed sql.NullInt64
	)
	err := s.db.QueryRowContext(ctx, `SELECT key, destroyed_at FROM subject_keys WHERE subject = ?`, subject).Scan(&key, &destroyed)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, ErrNoKey
	case err != nil:
		return nil, fmt.Errorf("read key of %s: %w", subject, err)
	case destroyed.Valid:
		return nil, ErrDestroyed
	}
	return key, nil
}

// Destroy implements Keys: the key is set to NULL, its bytes overwritten with zeros
// (secure_delete), and the WAL checkpointed and truncated.
func (s *SQLite) Destroy(ctx context.Context, subject string) error {
	now := time.Now().UnixMicro()
	if _, err := s.db.ExecContext(ctx, `INSERT INTO subject_keys (subject, key, created_at, destroyed_at) VALUES (?, NULL, ?, ?)
		ON CONFLICT (subject) DO UPDATE SET key = NULL, destroyed_at = COALESCE(destroyed_at, excluded.destroyed_at)`,
		subject, now, now); err != nil {
		return fmt.Errorf("destroy key of %s: %w", subject, err)
	}
	// The WAL may hold the page as it was: copy it back into the file and empty it.
	if _, err := s.db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return fmt.Errorf("destroy key of %s: checkpoint: %w", subject, err)
	}
	return nil
}

// Close implements Keys.
func (s *SQLite) Close() error {
	close(s.pending)
	<-s.done
	return s.db.Close()
}
