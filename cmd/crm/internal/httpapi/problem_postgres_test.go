package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/eventcrm/crm/projections/projectiontest"
)

// PostgreSQL refusing a connection for want of capacity is 503, and the problem tells the
// client nothing of the connection: pgx's error names the database and the user it logged in
// as. A role allowed no connection is refused as a full server refuses one (53300).
func TestDatabaseOutOfCapacityTellsNothingOfTheConnection(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	admin, err := pgconn.Connect(ctx, projectiontest.PostgresURL())
	if err != nil {
		t.Fatalf("connect to postgres at %s (set CRM_TEST_POSTGRES_URL): %v", projectiontest.PostgresURL(), err)
	}
	t.Cleanup(func() { _ = admin.Close(context.Background()) })
	role := fmt.Sprintf("httpapi_full_%d", admin.PID())
	if err := admin.Exec(ctx, "CREATE ROLE "+role+" LOGIN CONNECTION LIMIT 0").Close(); err != nil {
		t.Fatalf("create role: %v", err)
	}
	t.Cleanup(func() { _ = admin.Exec(context.Background(), "DROP ROLE "+role).Close() })

	u, err := url.Parse(projectiontest.PostgresURL())
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	conn, err := pgconn.Connect(ctx, u.String())
	if err == nil {
		_ = conn.Close(ctx)
		t.Fatalf("connected as %s, allowed no connection", role)
	}
	p, logged := problemFor(fmt.Errorf("load contact-7: %w", err))
	if p.Status != http.StatusServiceUnavailable || p.retryAfter == 0 || logged {
		t.Fatalf("problemFor(%v) = %d, Retry-After %d, logged %v; want 503 with Retry-After, not logged", err, p.Status, p.retryAfter, logged)
	}
	for _, secret := range []string{role, "user=", "database=", u.Host} {
		if strings.Contains(p.Detail, secret) {
			t.Errorf("the detail %q tells the client %q", p.Detail, secret)
		}
	}
}
