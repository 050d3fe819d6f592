package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eventcrm/crm/eventstore/keys"
	"github.com/eventcrm/crm/eventstore/postgres"
)

// target is a store the server runs on, made for one run and removed after it.
type target struct {
	backend string // "sqlite" or "postgres"
	dataDir string // CRM_DATA_DIR: the SQLite store, the audit files, the server's log
	store   string // CRM_STORE, empty for the SQLite store of dataDir
	schema  string // the PostgreSQL schema of the store, empty on SQLite
	drop    func(ctx context.Context) error
}

// release drops t after a run, or, with --keep, says where it is kept.
func (t target) release(ctx context.Context, o options, log io.Writer) error {
	if !o.keep {
		return t.drop(ctx)
	}
	if t.schema != "" {
		fmt.Fprintf(log, "crmload: kept the store in schema %s, its read models in %s_readmodels and its keys in %s_keys (drop them with DROP SCHEMA … CASCADE)\n",
			t.schema, t.schema, t.schema)
		return nil
	}
	fmt.Fprintf(log, "crmload: kept the store and its read models in %s\n", t.dataDir)
	return nil
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

// copySQLite copies the store file and the key store beside it (keys.db: without it the
// sealed personal data of the log cannot be read), each with its write-ahead log when one
// is beside it.
func copySQLite(src, dir string) error {
	for _, f := range [][2]string{{src, "crm.db"}, {filepath.Join(filepath.Dir(src), "keys.db"), "keys.db"}} {
		if _, err := os.Stat(f[0]); err != nil && f[1] == "keys.db" {
			continue // a log written before personal data was sealed
		}
		if err := copyFile(filepath.Join(dir, f[1]), f[0]); err != nil {
			return err
		}
		if _, err := os.Stat(f[0] + "-wal"); err == nil {
			if err := copyFile(filepath.Join(dir, f[1]+"-wal"), f[0]+"-wal"); err != nil {
				return err
			}
		}
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
			"DROP SCHEMA IF EXISTS "+pgx.Identifier{schema + "_readmodels"}.Sanitize()+" CASCADE",
			"DROP SCHEMA IF EXISTS "+pgx.Identifier{schema + "_keys"}.Sanitize()+" CASCADE")
	}
	return target{backend: "postgres", dataDir: dir, store: u.String(), schema: schema, drop: drop}, nil
}

// copyPostgres creates the store's tables in schema dst, as the store itself does, and copies
// the log and the stream heads of schema src into them.
func copyPostgres(ctx context.Context, dbURL, src, dst string) error {
	st, err := postgres.Open(ctx, dbURL, postgres.WithSchema(dst))
	if err != nil {
		return fmt.Errorf("create schema %s: %w", dst, err)
	}
	st.Close()
	k, err := keys.OpenPostgres(ctx, dbURL, dst+"_keys")
	if err != nil {
		return fmt.Errorf("create schema %s_keys: %w", dst, err)
	}
	_ = k.Close()
	s, d := pgx.Identifier{src}.Sanitize(), pgx.Identifier{dst}.Sanitize()
	// The key store beside the log, without which its sealed personal data cannot be read.
	copyKeys := "INSERT INTO " + pgx.Identifier{dst + "_keys", "subject_keys"}.Sanitize() +
		" SELECT * FROM " + pgx.Identifier{src + "_keys", "subject_keys"}.Sanitize()
	var present bool
	if err := queryPostgres(ctx, dbURL, "SELECT to_regclass($1) IS NOT NULL", &present, src+"_keys.subject_keys"); err != nil {
		return err
	}
	if !present {
		copyKeys = "SELECT 1" // a log written before personal data was sealed
	}
	// Keys made ahead of need, named by id in the sealed boxes (a key store of an older
	// version has none).
	copyPooled := "INSERT INTO " + pgx.Identifier{dst + "_keys", "pooled_keys"}.Sanitize() +
		" SELECT * FROM " + pgx.Identifier{src + "_keys", "pooled_keys"}.Sanitize()
	if err := queryPostgres(ctx, dbURL, "SELECT to_regclass($1) IS NOT NULL", &present, src+"_keys.pooled_keys"); err != nil {
		return err
	}
	pooledSeq := "SELECT 1"
	if present {
		t := pgx.Identifier{dst + "_keys", "pooled_keys"}.Sanitize()
		pooledSeq = "SELECT setval(pg_get_serial_sequence('" + strings.ReplaceAll(t, "'", "''") + "', 'id'), (SELECT coalesce(max(id), 0) + 1 FROM " + t + "), false)"
	} else {
		copyPooled = "SELECT 1"
	}
	return execPostgres(ctx, dbURL,
		"BEGIN",
		copyKeys,
		copyPooled,
		pooledSeq,
		"INSERT INTO "+d+".events SELECT * FROM "+s+".events ORDER BY position",
		"INSERT INTO "+d+".streams SELECT * FROM "+s+".streams",
		"SELECT setval('"+strings.ReplaceAll(d, "'", "''")+".events_position_seq', (SELECT max(position) FROM "+d+".events))",
		"COMMIT",
		"ANALYZE "+d+".events",
		"ANALYZE "+d+".streams")
}

// queryPostgres scans the one value query answers.
func queryPostgres(ctx context.Context, dbURL, query string, dst any, args ...any) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("connect to postgres: %w", err)
	}
	defer conn.Close(context.Background())
	return conn.QueryRow(ctx, query, args...).Scan(dst)
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
