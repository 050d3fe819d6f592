package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eventcrm/crm/eventstore/postgres/postgrestest"
)

// Open gives up on a server that never answers, on its own, with an error that says so; the
// caller's deadline is only the test's guard against a hang.
func TestOpenGivesUpOnAServerThatNeverAnswers(t *testing.T) {
	t.Parallel()
	addr := postgrestest.SilentServer(t)
	tests := []struct {
		name string
		url  string
		opts []Option
	}{
		{"URL without connect_timeout", "postgres://postgres@" + addr + "/postgres?sslmode=disable", nil},
		{"URL without sslmode", "postgres://postgres@" + addr + "/postgres", nil},
		{"keyword/value string", "host=127.0.0.1 port=" + addr[strings.LastIndex(addr, ":")+1:] + " user=postgres sslmode=disable", nil},
		{"shorter connect timeout", "postgres://postgres@" + addr + "/postgres?sslmode=disable", []Option{WithConnectTimeout(time.Second)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			s, err := Open(ctx, tc.url, tc.opts...)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded against a server that never answers")
			}
			if ctx.Err() != nil {
				t.Fatalf("Open waited for the caller's deadline: %v", err)
			}
			if !strings.Contains(err.Error(), "timeout") {
				t.Fatalf("error %q does not say it timed out", err)
			}
		})
	}
}

// Open gives up when its migration cannot go on: here another session holds the migration
// lock of the schema and never lets go.
func TestOpenGivesUpWhenTheMigrationWaitsTooLong(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	holder, err := pgx.Connect(ctx, testURL())
	if err != nil {
		t.Fatalf("connect (set CRM_TEST_POSTGRES_URL): %v", err)
	}
	defer holder.Close(context.Background())
	if _, err := holder.Exec(ctx, "SELECT pg_advisory_lock($1, hashtext($2))", migrationLockKey, schema); err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, testURL(), WithSchema(schema), WithOpenTimeout(2*time.Second))
	if err == nil {
		s.Close()
		t.Fatal("Open succeeded while the migration lock was held")
	}
	if ctx.Err() != nil {
		t.Fatalf("Open waited for the caller's deadline: %v", err)
	}
	if !strings.Contains(err.Error(), "no answer within 2s") {
		t.Fatalf("error %q does not say Open ran out of time", err)
	}
}
