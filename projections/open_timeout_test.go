package projections_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore/postgres/postgrestest"
	"github.com/eventcrm/crm/projections"
)

// Opening read models on a server that never answers fails on its own, saying it timed out;
// the caller's deadline is only the test's guard against a hang.
func TestOpenPostgresGivesUpOnAServerThatNeverAnswers(t *testing.T) {
	t.Parallel()
	addr := postgrestest.SilentServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db, err := projections.OpenPostgres(ctx, "postgres://postgres@"+addr+"/postgres?sslmode=disable", "")
	if err == nil {
		db.SQL.Close()
		t.Fatal("OpenPostgres succeeded against a server that never answers")
	}
	if ctx.Err() != nil {
		t.Fatalf("OpenPostgres waited for the caller's deadline: %v", err)
	}
	if !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("error %q does not say it timed out", err)
	}
}
