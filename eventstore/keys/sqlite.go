package keys

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"time"

	_ "modernc.org/sqlite" // the pure Go SQLite driver

	"github.com/eventcrm/crm/internal/sqlitefile"
)

// sqliteDB is a key store's database in a SQLite file of its own (the data directory's
// keys.db).
//
// The file is written with synchronous=FULL and secure_delete: a destroyed key is overwritten
// with zeros in the file, and the WAL, which may still hold the page as it was, is
// checkpointed and truncated right after. Keys stored under their subject's name concurrently
// are written in one transaction (group commit).
type sqliteDB struct {
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
func OpenSQLite(ctx context.Context, path string, opts ...Option) (*Store, error) {
	o := optionsOf(opts)
	q := url.Values{}
	pragmas := []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(FULL)", "secure_delete(1)"}
	if o.readOnly {
		pragmas = pragmas[:1]
		q.Set("mode", "ro")
	} else {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("create key store %s: %w", path, err)
		}
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("create key store %s: %w", path, err)
		}
	}
	for _, p := range pragmas {
		q.Add("_pragma", p)
	}
	db, err := sql.Open("sqlite", sqlitefile.DSN(path, q))
	if err != nil {
		return nil, fmt.Errorf("open key store %s: %w", path, err)
	}
	db.SetMaxOpenConns(4)
	for _, stmt := range sqliteSchema {
		if o.readOnly {
			break
		}
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("migrate key store %s: %w", path, err)
		}
	}
	s := &sqliteDB{db: db, pending: make(chan keyRequest, 1024), done: make(chan struct{})}
	go s.writeKeys()
	return newStore(s, o), nil
}

var sqliteSchema = []string{`CREATE TABLE IF NOT EXISTS subject_keys (
		subject TEXT PRIMARY KEY,
		key BLOB,
		created_at INTEGER NOT NULL,
		destroyed_at INTEGER)`,
	`CREATE TABLE IF NOT EXISTS pooled_keys (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		key BLOB,
		owner TEXT NOT NULL,
		subject TEXT,
		created_at INTEGER NOT NULL,
		bound_at INTEGER,
		destroyed_at INTEGER)`,
	`CREATE INDEX IF NOT EXISTS pooled_keys_subject ON pooled_keys (subject) WHERE subject IS NOT NULL`,
}

// writeKeys writes the keys asked for, as many as are waiting in one transaction.
func (s *sqliteDB) writeKeys() {
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

func (s *sqliteDB) insert(batch []keyRequest) error {
	return s.inTx(context.Background(), func(tx *sql.Tx) error {
		now := time.Now().UnixMicro()
		for _, r := range batch {
			if _, err := tx.Exec(`INSERT INTO subject_keys (subject, key, created_at) VALUES (?, ?, ?)
				ON CONFLICT (subject) DO NOTHING`, r.subject, r.key, now); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *sqliteDB) inTx(ctx context.Context, f func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if err := f(tx); err != nil {
		return err
	}
	return tx.Commit()
}

func (s *sqliteDB) insertSubjectKey(ctx context.Context, subject string, key []byte) error {
	reply := make(chan error, 1)
	select {
	case s.pending <- keyRequest{subject: subject, key: key, reply: reply}:
	case <-ctx.Done():
		return ctx.Err()
	}
	return <-reply
}

func (s *sqliteDB) subjectKey(ctx context.Context, subject string) ([]byte, error) {
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

func (s *sqliteDB) currentKey(ctx context.Context, subject string) (Key, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT key, destroyed_at IS NOT NULL, NULL FROM subject_keys WHERE subject = ?1
		UNION ALL
		SELECT * FROM (SELECT key, 0, id FROM pooled_keys WHERE subject = ?1 AND destroyed_at IS NULL ORDER BY id LIMIT 1)`, subject)
	if err != nil {
		return Key{}, fmt.Errorf("read key of %s: %w", subject, err)
	}
	defer rows.Close()
	var found []keyRow
	for rows.Next() {
		var (
			k  keyRow
			id sql.NullInt64
		)
		if err := rows.Scan(&k.key, &k.destroyed, &id); err != nil {
			return Key{}, fmt.Errorf("read key of %s: %w", subject, err)
		}
		k.id, k.pooled = id.Int64, id.Valid
		found = append(found, k)
	}
	if err := rows.Err(); err != nil {
		return Key{}, fmt.Errorf("read key of %s: %w", subject, err)
	}
	return currentOf(found)
}

func (s *sqliteDB) pooledKey(ctx context.Context, id string) (string, []byte, error) {
	var (
		subject sql.NullString
		key     []byte
	)
	err := s.db.QueryRowContext(ctx, `SELECT subject, key FROM pooled_keys WHERE id = ?`, id).Scan(&subject, &key)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", nil, ErrNoKey
	case err != nil:
		return "", nil, fmt.Errorf("read key %s: %w", id, err)
	}
	return subject.String, key, nil
}

// reserve inserts the keys in one statement (one parse, one flush for the batch).
func (s *sqliteDB) reserve(ctx context.Context, owner string, keys [][]byte) ([]string, error) {
	ids := make([]string, 0, len(keys))
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		now := time.Now().UnixMicro()
		q := make([]byte, 0, 64+len(keys)*10)
		q = append(q, "INSERT INTO pooled_keys (key, owner, created_at) VALUES "...)
		args := make([]any, 0, 3*len(keys))
		for i, k := range keys {
			if i > 0 {
				q = append(q, ',')
			}
			q = append(q, "(?, ?, ?)"...)
			args = append(args, k, owner, now)
		}
		rows, err := tx.QueryContext(ctx, string(append(q, " RETURNING id"...)), args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				return err
			}
			ids = append(ids, strconv.FormatInt(id, 10))
		}
		return rows.Err()
	})
	if err == nil && len(ids) != len(keys) {
		err = fmt.Errorf("made %d keys of %d", len(ids), len(keys))
	}
	return ids, err
}

// bind binds each key with one prepared statement.
func (s *sqliteDB) bind(ctx context.Context, bindings []binding) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		now := time.Now().UnixMicro()
		stmt, err := tx.PrepareContext(ctx, `UPDATE pooled_keys SET subject = ?, bound_at = ? WHERE id = ? AND subject IS NULL`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, b := range bindings {
			if _, err := stmt.ExecContext(ctx, b.subject, now, b.id); err != nil {
				return err
			}
		}
		// A subject destroyed before its binding was written: its key goes too.
		_, err = tx.ExecContext(ctx, `UPDATE pooled_keys SET key = NULL, destroyed_at = ?
			WHERE bound_at = ? AND destroyed_at IS NULL AND subject IN (SELECT subject FROM subject_keys WHERE destroyed_at IS NOT NULL)`, now, now)
		return err
	})
}

func (s *sqliteDB) release(ctx context.Context, owner string, ids []string) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `DELETE FROM pooled_keys WHERE id = ? AND owner = ? AND subject IS NULL`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, id := range ids {
			if _, err := stmt.ExecContext(ctx, id, owner); err != nil {
				return err
			}
		}
		return nil
	})
}

// destroy sets the keys to NULL, their bytes overwritten with zeros (secure_delete), and
// checkpoints and truncates the WAL.
func (s *sqliteDB) destroy(ctx context.Context, subject string, ids []string) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		now := time.Now().UnixMicro()
		if _, err := tx.ExecContext(ctx, `INSERT INTO subject_keys (subject, key, created_at, destroyed_at) VALUES (?, NULL, ?, ?)
			ON CONFLICT (subject) DO UPDATE SET key = NULL, destroyed_at = COALESCE(destroyed_at, excluded.destroyed_at)`,
			subject, now, now); err != nil {
			return err
		}
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, `UPDATE pooled_keys SET subject = ?, bound_at = COALESCE(bound_at, ?) WHERE id = ? AND subject IS NULL`,
				subject, now, id); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `UPDATE pooled_keys SET key = NULL, destroyed_at = COALESCE(destroyed_at, ?) WHERE subject = ?`, now, subject)
		return err
	})
	if err != nil {
		return err
	}
	// The WAL may hold the pages as they were: copy them back into the file and empty it.
	if _, err := s.db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

func (s *sqliteDB) close() error {
	close(s.pending)
	<-s.done
	return s.db.Close()
}
