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
// The file uses a rollback journal, not a WAL, with synchronous=FULL and secure_delete: a
// destroyed key is overwritten with zeros in the file, the journal that held its page is
// deleted at commit, and no WAL file keeps an old copy of the page.
type SQLite struct {
	db *sql.DB
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
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(DELETE)", "synchronous(FULL)", "secure_delete(1)"} {
		q.Add("_pragma", p)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open key store %s: %w", path, err)
	}
	db.SetMaxOpenConns(1) // one writer; reads are a primary-key lookup
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS subject_keys (
		subject TEXT PRIMARY KEY,
		key BLOB,
		created_at INTEGER NOT NULL,
		destroyed_at INTEGER)`); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("migrate key store %s: %w", path, err)
	}
	return &SQLite{db: db}, nil
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
	// Another caller may have made one meanwhile: keep the first, read it back.
	if _, err := s.db.ExecContext(ctx, `INSERT INTO subject_keys (subject, key, created_at) VALUES (?, ?, ?)
		ON CONFLICT (subject) DO NOTHING`, subject, fresh, time.Now().UnixMicro()); err != nil {
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

// Destroy implements Keys: the key is overwritten in place with zeros, then set to NULL.
func (s *SQLite) Destroy(ctx context.Context, subject string) error {
	now := time.Now().UnixMicro()
	if _, err := s.db.ExecContext(ctx, `INSERT INTO subject_keys (subject, key, created_at, destroyed_at) VALUES (?, NULL, ?, ?)
		ON CONFLICT (subject) DO UPDATE SET key = NULL, destroyed_at = COALESCE(destroyed_at, excluded.destroyed_at)`,
		subject, now, now); err != nil {
		return fmt.Errorf("destroy key of %s: %w", subject, err)
	}
	return nil
}

// Close implements Keys.
func (s *SQLite) Close() error { return s.db.Close() }
