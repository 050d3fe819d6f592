package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eventcrm/crm/eventstore/postgres"
)

// target is a store the server runs on, made for one run and removed after it.
type target struct {
	backend string // "sqlite" or "postgres"
	dataDir string // CRM_DATA_DIR: the SQLite store, the audit files, the server's log
	store   string // CRM_STORE, empty for the SQLite store of dataDir
	drop    func(ctx context.Context) error
}

// seededTarget copies the seeded store, so that the writers of a run never change it: the
// SQLite file into a data directory of work, the PostgreSQL schema into a fresh schema.
// Read models are not copied: the server builds them from the log at start, as after a
// deployment on a new read-model database.
func seededTarget(ctx context.Context, o options, work string) (target, error) {
	dir := filepath.Join(work, "seeded")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return target{}, fmt.Errorf("data directory: %w", err)
	}
	if o.sqlite != "" {
		return target{backend: "sqlite", dataDir: dir, drop: noDrop}, copySQLite(o.sqlite, dir)
	}
	schema, err := freshSchema()
	if err != nil {
		return target{}, err
	}
	t, err := postgresTarget(o.postgres, schema, dir)
	if err != nil {
		return target{}, err
	}
	if err := copyPostgres(ctx, o.postgres, o.schema, schema); err != nil {
		return t, errors.Join(err, t.drop(ctx))
	}
	return t, nil
}

// emptyTarget is a store with no events, of the same backend.
func emptyTarget(o options, work string) (target, error) {
	dir := filepath.Join(work, "empty")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return target{}, fmt.Errorf("data directory: %w", err)
	}
	if o.sqlite != "" {
		return target{backend: "sqlite", dataDir: dir, drop: noDrop}, nil
	}
	schema, err := freshSchema()
	if err != nil {
		return target{}, err
	}
	return postgresTarget(o.postgres, schema, dir)
}

func noDrop(context.Context) error { return nil }

// copySQLite copies the store file, and its write-ahead log when one is beside it.
func copySQLite(src, dir string) error {
	if err := copyFile(filepath.Join(dir, "crm.db"), src); err != nil {
		return err
	}
	if _, err := os.Stat(src + "-wal"); err == nil {
		return copyFile(filepath.Join(dir, "crm.db-wal"), src+"-wal")
	}
	return nil
}

func freshSchema() (string, error) {
	tok, err := randomToken()
	if err != nil {
		return "", err
	}
	return "crmload_" + tok[:12], nil
}

// postgresTarget is the store in schema of the database at dbURL; its drop removes the
// schema and the read-model schema the server creates beside it.
func postgresTarget(dbURL, schema, dir string) (target, error) {
	u, err := url.Parse(dbURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return target{}, fmt.Errorf("--postgres %q: want a postgres:// URL", dbURL)
	}
	q := u.Query()
	q.Set("schema", schema)
	u.RawQuery = q.Encode()
	drop := func(ctx context.Context) error {
		return execPostgres(ctx, dbURL,
			"DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE",
			"DROP SCHEMA IF EXISTS "+pgx.Identifier{schema + "_readmodels"}.Sanitize()+" CASCADE")
	}
	return target{backend: "postgres", dataDir: dir, store: u.String(), drop: drop}, nil
}

// copyPostgres creates the store's tables in schema dst, as the store itself does, and copies
// the log and the stream heads of schema src into them.
func copyPostgres(ctx context.Context, dbURL, src, dst string) error {
	st, err := postgres.Open(ctx, dbURL, postgres.WithSchema(dst))
	if err != nil {
		return fmt.Errorf("create schema %s: %w", dst, err)
	}
	st.Close()
	s, d := pgx.Identifier{src}.Sanitize(), pgx.Identifier{dst}.Sanitize()
	return execPostgres(ctx, dbURL,
		"BEGIN",
		"INSERT INTO "+d+".events SELECT * FROM "+s+".events ORDER BY position",
		"INSERT INTO "+d+".streams SELECT * FROM "+s+".streams",
		"SELECT setval('"+strings.ReplaceAll(d, "'", "''")+".events_position_seq', (SELECT max(position) FROM "+d+".events))",
		"COMMIT",
		"ANALYZE "+d+".events",
		"ANALYZE "+d+".streams")
}

// execPostgres runs statements one after the other on one connection.
func execPostgres(ctx context.Context, dbURL string, statements ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("connect to postgres: %w", err)
	}
	defer conn.Close(context.Background())
	for _, stmt := range statements {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("%s: %w", strings.Fields(stmt)[0], err)
		}
	}
	return nil
}
