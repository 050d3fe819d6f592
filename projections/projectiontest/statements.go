package projectiontest

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/eventcrm/crm/projections"
)

// Statements are the statements sent to a PostgreSQL server, in order: each is one round
// trip (BEGIN and ROLLBACK included).
type Statements struct {
	mu   sync.Mutex
	sent []string
}

// Take returns the statements sent since the last Take, and forgets them.
func (s *Statements) Take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	sent := s.sent
	s.sent = nil
	return sent
}

func (s *Statements) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent = append(s.sent, data.SQL)
	return ctx
}

func (s *Statements) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// CountingStatements returns a read-model database on the schema of db (a Postgres one)
// whose statements are recorded, closed when t ends.
func CountingStatements(t testing.TB, db *projections.DB) (*projections.DB, *Statements) {
	t.Helper()
	var schema string
	if err := db.SQL.QueryRowContext(context.Background(), "SELECT current_schema()").Scan(&schema); err != nil {
		t.Fatalf("current schema: %v", err)
	}
	cfg, err := pgx.ParseConfig(PostgresURL())
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["search_path"] = schema
	s := &Statements{}
	cfg.Tracer = s
	counted := stdlib.OpenDB(*cfg)
	t.Cleanup(func() { _ = counted.Close() })
	return &projections.DB{SQL: counted, Dialect: projections.Postgres}, s
}
