package keys

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Postgres is a key store in a PostgreSQL schema of its own, apart from the event store's.
type Postgres struct {
	pool  *pgxpool.Pool
	table string
}

// OpenPostgres opens (creating them) the schema and table of the key store at url.
func OpenPostgres(ctx context.Context, url, schema string) (*Postgres, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("open key store: %w", err)
	}
	cfg.MaxConns = 2 // a key is read once per subject and cached; new keys are few
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second // pgx's default waits forever
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open key store: %w", err)
	}
	s := pgx.Identifier{schema}.Sanitize()
	table := pgx.Identifier{schema, "subject_keys"}.Sanitize()
	if _, err := pool.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+s); err != nil {
		pool.Close()
		return nil, fmt.Errorf("create key store schema %s: %w", schema, err)
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+table+` (
		subject text PRIMARY KEY,
		key bytea,
		created_at timestamptz NOT NULL,
		destroyed_at timestamptz)`); err != nil {
		pool.Close()
		return nil, fmt.Errorf("migrate key store %s: %w", schema, err)
	}
	return &Postgres{pool: pool, table: table}, nil
}

// Key implements Keys.
func (p *Postgres) Key(ctx context.Context, subject string) ([]byte, error) {
	k, err := p.Lookup(ctx, subject)
	if !errors.Is(err, ErrNoKey) {
		return k, err
	}
	fresh, err := newKey()
	if err != nil {
		return nil, err
	}
	if _, err := p.pool.Exec(ctx, `INSERT INTO `+p.table+` (subject, key, created_at) VALUES ($1, $2, $3)
		ON CONFLICT (subject) DO NOTHING`, subject, fresh, time.Now()); err != nil {
		return nil, fmt.Errorf("store key of %s: %w", subject, err)
	}
	return p.Lookup(ctx, subject)
}

// Lookup implements Keys.
func (p *Postgres) Lookup(ctx context.Context, subject string) ([]byte, error) {
	var (
		key       []byte
		destroyed *time.Time
	)
	err := p.pool.QueryRow(ctx, `SELECT key, destroyed_at FROM `+p.table+` WHERE subject = $1`, subject).Scan(&key, &destroyed)
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

// Destroy implements Keys. The row keeps that the key was destroyed; the old row version is
// removed by a VACUUM of the table right after, so no query sees it again (see the decision
// record for what PostgreSQL may keep in its files until it reuses the space).
func (p *Postgres) Destroy(ctx context.Context, subject string) error {
	now := time.Now()
	if _, err := p.pool.Exec(ctx, `INSERT INTO `+p.table+` (subject, key, created_at, destroyed_at) VALUES ($1, NULL, $2, $2)
		ON CONFLICT (subject) DO UPDATE SET key = NULL, destroyed_at = COALESCE(`+p.table+`.destroyed_at, excluded.destroyed_at)`,
		subject, now); err != nil {
		return fmt.Errorf("destroy key of %s: %w", subject, err)
	}
	if _, err := p.pool.Exec(ctx, `VACUUM `+p.table); err != nil {
		return fmt.Errorf("vacuum key store after destroying the key of %s: %w", subject, err)
	}
	return nil
}

// Close implements Keys.
func (p *Postgres) Close() error {
	p.pool.Close()
	return nil
}
