package keys

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// postgresDB is a key store's database in a PostgreSQL schema of its own, apart from the
// event store's.
type postgresDB struct {
	pool          *pgxpool.Pool
	subjects, ids string // the tables subject_keys and pooled_keys
}

// OpenPostgres opens (creating them) the schema and tables of the key store at url.
func OpenPostgres(ctx context.Context, url, schema string, opts ...Option) (*Store, error) {
	o := optionsOf(opts)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("open key store: %w", err)
	}
	// Keys are read once per subject and cached; new ones are made in batches: four connections
	// do, fewer when the URL's pool_max_conns asks for fewer.
	cfg.MaxConns = min(cfg.MaxConns, 4)
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second // pgx's default waits forever
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open key store: %w", err)
	}
	p := &postgresDB{pool: pool, subjects: pgx.Identifier{schema, "subject_keys"}.Sanitize(),
		ids: pgx.Identifier{schema, "pooled_keys"}.Sanitize()}
	for _, stmt := range []string{
		`CREATE SCHEMA IF NOT EXISTS ` + pgx.Identifier{schema}.Sanitize(),
		`CREATE TABLE IF NOT EXISTS ` + p.subjects + ` (
			subject text PRIMARY KEY,
			key bytea,
			created_at timestamptz NOT NULL,
			destroyed_at timestamptz)`,
		`CREATE TABLE IF NOT EXISTS ` + p.ids + ` (
			id bigserial PRIMARY KEY,
			key bytea,
			owner text NOT NULL,
			subject text,
			created_at timestamptz NOT NULL,
			bound_at timestamptz,
			destroyed_at timestamptz)`,
		`CREATE INDEX IF NOT EXISTS pooled_keys_subject ON ` + p.ids + ` (subject) WHERE subject IS NOT NULL`,
	} {
		if o.readOnly {
			break
		}
		if _, err := pool.Exec(ctx, stmt); err != nil {
			pool.Close()
			return nil, fmt.Errorf("migrate key store %s: %w", schema, err)
		}
	}
	return newStore(p, o), nil
}

func (p *postgresDB) insertSubjectKey(ctx context.Context, subject string, key []byte) error {
	_, err := p.pool.Exec(ctx, `INSERT INTO `+p.subjects+` (subject, key, created_at) VALUES ($1, $2, $3)
		ON CONFLICT (subject) DO NOTHING`, subject, key, time.Now())
	return err
}

func (p *postgresDB) subjectKey(ctx context.Context, subject string) ([]byte, error) {
	var (
		key       []byte
		destroyed *time.Time
	)
	err := p.pool.QueryRow(ctx, `SELECT key, destroyed_at FROM `+p.subjects+` WHERE subject = $1`, subject).Scan(&key, &destroyed)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, ErrNoKey
	case err != nil:
		return nil, fmt.Errorf("read key of %s: %w", subject, err)
	case destroyed != nil:
		return nil, ErrDestroyed
	}
	return key, nil
}

func (p *postgresDB) currentKey(ctx context.Context, subject string) (Key, error) {
	rows, err := p.pool.Query(ctx, `SELECT key, destroyed_at IS NOT NULL, NULL::bigint FROM `+p.subjects+` WHERE subject = $1
		UNION ALL
		(SELECT key, false, id FROM `+p.ids+` WHERE subject = $1 AND destroyed_at IS NULL ORDER BY id LIMIT 1)`, subject)
	if err != nil {
		return Key{}, fmt.Errorf("read key of %s: %w", subject, err)
	}
	found, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (keyRow, error) {
		var (
			k  keyRow
			id *int64
		)
		err := r.Scan(&k.key, &k.destroyed, &id)
		if id != nil {
			k.id, k.pooled = *id, true
		}
		return k, err
	})
	if err != nil {
		return Key{}, fmt.Errorf("read key of %s: %w", subject, err)
	}
	return currentOf(found)
}

func (p *postgresDB) pooledKey(ctx context.Context, id string) (string, []byte, error) {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return "", nil, ErrNoKey
	}
	var (
		subject *string
		key     []byte
	)
	err = p.pool.QueryRow(ctx, `SELECT subject, key FROM `+p.ids+` WHERE id = $1`, n).Scan(&subject, &key)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return "", nil, ErrNoKey
	case err != nil:
		return "", nil, fmt.Errorf("read key %s: %w", id, err)
	case subject == nil:
		return "", key, nil
	}
	return *subject, key, nil
}

func (p *postgresDB) reserve(ctx context.Context, owner string, keys [][]byte) ([]string, error) {
	rows, err := p.pool.Query(ctx, `INSERT INTO `+p.ids+` (key, owner, created_at)
		SELECT k, $2, $3 FROM unnest($1::bytea[]) WITH ORDINALITY AS t(k, n) ORDER BY n RETURNING id`, keys, owner, time.Now())
	if err != nil {
		return nil, err
	}
	ids, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var id int64
		err := r.Scan(&id)
		return strconv.FormatInt(id, 10), err
	})
	if err != nil {
		return nil, err
	}
	if len(ids) != len(keys) {
		return nil, fmt.Errorf("made %d keys of %d", len(ids), len(keys))
	}
	return ids, nil
}

func (p *postgresDB) bind(ctx context.Context, bindings []binding) error {
	ids, subjects, err := splitBindings(bindings)
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE `+p.ids+` k SET subject = b.subject, bound_at = $3
			FROM unnest($1::bigint[], $2::text[]) AS b(id, subject) WHERE k.id = b.id AND k.subject IS NULL`, ids, subjects, time.Now()); err != nil {
			return err
		}
		// A subject destroyed before its binding was written: its key goes too. (destroy
		// locks the table against this transaction, so one of the two sees the other.)
		_, err := tx.Exec(ctx, `UPDATE `+p.ids+` k SET key = NULL, destroyed_at = now()
			FROM `+p.subjects+` s WHERE k.id = ANY($1) AND k.destroyed_at IS NULL AND s.subject = k.subject AND s.destroyed_at IS NOT NULL`, ids)
		return err
	})
}

func splitBindings(bindings []binding) ([]int64, []string, error) {
	ids, subjects := make([]int64, len(bindings)), make([]string, len(bindings))
	for i, b := range bindings {
		n, err := strconv.ParseInt(b.id, 10, 64)
		if err != nil {
			return nil, nil, fmt.Errorf("key id %q: %w", b.id, err)
		}
		ids[i], subjects[i] = n, b.subject
	}
	return ids, subjects, nil
}

func parseIDs(ids []string) ([]int64, error) {
	out := make([]int64, len(ids))
	for i, id := range ids {
		n, err := strconv.ParseInt(id, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("key id %q: %w", id, err)
		}
		out[i] = n
	}
	return out, nil
}

func (p *postgresDB) release(ctx context.Context, owner string, ids []string) error {
	n, err := parseIDs(ids)
	if err != nil {
		return err
	}
	_, err = p.pool.Exec(ctx, `DELETE FROM `+p.ids+` WHERE id = ANY($1) AND owner = $2 AND subject IS NULL`, n, owner)
	return err
}

// destroy keeps in the rows that the keys were destroyed; the old row versions are removed
// by a VACUUM of the tables right after, so no query sees them again (see the decision
// record for what PostgreSQL may keep in its files until it reuses the space).
func (p *postgresDB) destroy(ctx context.Context, subject string, ids []string) error {
	n, err := parseIDs(ids)
	if err != nil {
		return err
	}
	err = pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		// Waits for the bindings being written, and makes later ones see the mark.
		if _, err := tx.Exec(ctx, `LOCK TABLE `+p.ids+` IN SHARE ROW EXCLUSIVE MODE`); err != nil {
			return err
		}
		now := time.Now()
		if _, err := tx.Exec(ctx, `INSERT INTO `+p.subjects+` (subject, key, created_at, destroyed_at) VALUES ($1, NULL, $2, $2)
			ON CONFLICT (subject) DO UPDATE SET key = NULL, destroyed_at = COALESCE(`+p.subjects+`.destroyed_at, excluded.destroyed_at)`,
			subject, now); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE `+p.ids+` SET subject = $1, bound_at = COALESCE(bound_at, $2)
			WHERE id = ANY($3) AND subject IS NULL`, subject, now, n); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE `+p.ids+` SET key = NULL, destroyed_at = COALESCE(destroyed_at, $2) WHERE subject = $1`, subject, now)
		return err
	})
	if err != nil {
		return err
	}
	for _, table := range []string{p.subjects, p.ids} {
		if _, err := p.pool.Exec(ctx, `VACUUM `+table); err != nil {
			return fmt.Errorf("vacuum %s: %w", table, err)
		}
	}
	return nil
}

func (p *postgresDB) close() error {
	p.pool.Close()
	return nil
}
