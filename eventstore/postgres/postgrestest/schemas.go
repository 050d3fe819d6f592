package postgrestest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// tablesPerDrop bounds the tables one DROP takes locks on. Dropping a schema in one statement
// locks every table, index and TOAST table in it at once: a schema of read models and
// time-travel sets holds hundreds, and with other tests working next to it the server's
// shared lock table (max_locks_per_transaction x max_connections entries, 6,400 by default)
// runs out ("out of shared memory").
const tablesPerDrop = 8

// DropSchemas drops schemas with everything in them, a few tables per transaction and the
// schema last. A server that is busy (too many clients, lock table full, a deadlock with a
// test still closing) is asked again until ctx ends.
func DropSchemas(ctx context.Context, url string, schemas ...string) error {
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		err := dropSchemas(ctx, url, schemas)
		if err == nil || !busy(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (gave up: %v)", err, ctx.Err())
		case <-time.After(wait):
		}
	}
}

// DropWhenDone drops schemas when t ends (after the cleanups registered later, such as
// closing the pools that use them), and reports a failure to drop as an error of t.
func DropWhenDone(t testing.TB, url string, schemas ...string) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := DropSchemas(ctx, url, schemas...); err != nil {
			t.Errorf("drop schemas %v: %v", schemas, err)
		}
	})
}

func dropSchemas(ctx context.Context, url string, schemas []string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())
	for _, schema := range schemas {
		rows, err := conn.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = $1`, schema)
		if err != nil {
			return fmt.Errorf("tables of %s: %w", schema, err)
		}
		tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("tables of %s: %w", schema, err)
		}
		for len(tables) > 0 {
			n := min(tablesPerDrop, len(tables))
			names := ""
			for i, table := range tables[:n] {
				if i > 0 {
					names += ", "
				}
				names += pgx.Identifier{schema, table}.Sanitize()
			}
			if _, err := conn.Exec(ctx, "DROP TABLE IF EXISTS "+names+" CASCADE"); err != nil {
				return fmt.Errorf("drop tables of %s: %w", schema, err)
			}
			tables = tables[n:]
		}
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			return fmt.Errorf("drop schema %s: %w", schema, err)
		}
	}
	return nil
}

// busy tells whether err is the server being short of something for a while, not a mistake.
func busy(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "53300", // too_many_connections
		"53200", // out_of_memory: the shared lock table is full
		"40P01", // deadlock_detected
		"55P03", // lock_not_available
		"57P03": // cannot_connect_now
		return true
	}
	return false
}
