package audit_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/audit"
	"github.com/eventcrm/crm/eventstore/postgres"
)

// server is what one `crm serve` of a PostgreSQL deployment keeps of the audit: its own pool,
// the tree and the access log in the store's schema, and the deployment's key.
type server struct {
	ledger *audit.Ledger
	tree   *audit.Tree
	access *audit.AccessLog
}

func openServer(t *testing.T, s *postgres.Store, signer *audit.Signer) server {
	t.Helper()
	ctx := context.Background()
	tree, err := audit.OpenPostgresTree(ctx, s.Pool(), audit.WithTileHeight(2))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tree.Close() })
	if err := tree.ClaimKey(ctx, signer.Public()); err != nil {
		t.Fatal(err)
	}
	access, err := audit.OpenPostgresAccessLog(ctx, s.Pool())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { access.Close() })
	ledger, err := audit.NewLedger(audit.LedgerConfig{Tree: tree, Feed: audit.StoreSource(s), Source: audit.PostgresSource(s.Pool()), Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	return server{ledger: ledger, tree: tree, access: access}
}

// Servers of one PostgreSQL store keep one tree, one set of signed checkpoints and one access
// log: each answers the checkpoint the other signed, byte for byte, and lists the reads
// recorded by the other, in one chain.
func TestServersOfOneStoreShareTheAuditTrail(t *testing.T) {
	ctx := context.Background()
	first := openPostgres(t)
	var schema string
	if err := first.Pool().QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		t.Fatal(err)
	}
	second, err := postgres.Open(ctx, postgresURL(), postgres.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	signer := newSigner(t)
	// Opened together, as servers starting at once: the tables are created once.
	var (
		servers [2]server
		wg      sync.WaitGroup
	)
	for i, s := range []*postgres.Store{first, second} {
		wg.Go(func() { servers[i] = openServer(t, s, signer) })
	}
	wg.Wait()
	a, b := servers[0], servers[1]

	buildLog(t, first, 11)
	cpA, err := a.ledger.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond) // a later signing would carry a later timestamp
	cpB, err := b.ledger.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cpA.Size != 11 || !reflect.DeepEqual(cpA, cpB) {
		t.Fatalf("checkpoints differ:\n%+v\n%+v", cpA, cpB)
	}
	if _, err := (audit.Verifier{Key: signer.Public(), Source: audit.PostgresSource(second.Pool())}).Log(ctx, cpB); err != nil {
		t.Fatal(err)
	}
	// Both trees grow as one: updates from both servers at once.
	for i := range 9 {
		if _, err := second.Append(ctx, fmt.Sprintf("deal-%d", i), eventstore.AnyVersion, []eventstore.EventData{{
			ID: fmt.Sprintf("%08d-0000-4000-9000-000000000000", i), Type: "deal.won.v1", Data: []byte(`{}`),
			OccurredAt: time.Date(2024, 2, 1, 9, 0, 0, 0, time.UTC)}}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Go(func() { _, _ = a.ledger.Update(ctx) })
	wg.Go(func() { _, _ = b.ledger.Update(ctx) })
	wg.Wait()
	cp2, err := b.ledger.Checkpoint(ctx)
	if err != nil || cp2.Size != 20 {
		t.Fatalf("checkpoint after 20 events: %+v, %v", cp2, err)
	}
	p, err := a.ledger.Consistency(ctx, cpA.Size, audit.CurrentTree)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*p.Checkpoint, cp2) {
		t.Fatalf("the consistency proof's checkpoint %+v, not %+v", *p.Checkpoint, cp2)
	}
	if err := p.Verify(signer.Public(), cpA, cp2); err != nil {
		t.Fatal(err)
	}

	// Reads recorded on both servers, concurrently, make one chain listed by either.
	for i := range 10 {
		l := []*audit.AccessLog{a.access, b.access}[i%2]
		wg.Go(func() {
			if _, err := l.Record(ctx, audit.Access{Actor: "aud", Role: "auditor", RequestID: fmt.Sprint(i), Method: "GET",
				Path: "/v1/audit/checkpoint", Status: 200}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	listA, err := a.access.List(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	listB, err := b.access.List(ctx, 0, 100)
	if err != nil || len(listA) != 10 || !reflect.DeepEqual(listA, listB) {
		t.Fatalf("access logs: %d entries and %d (%v)", len(listA), len(listB), err)
	}
	if n, err := b.access.Verify(ctx); err != nil || n != 10 {
		t.Fatalf("verify the access log: %d, %v", n, err)
	}
	for _, stmt := range []string{"UPDATE audit_access_log SET actor = 'x' WHERE seq = 2", "DELETE FROM audit_access_log WHERE seq = 5",
		"TRUNCATE audit_access_log"} {
		if _, err := first.Pool().Exec(ctx, stmt); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: %v", stmt, err)
		}
	}

	// A server with a key of its own is refused: it would sign other checkpoints.
	tree, err := audit.OpenPostgresTree(ctx, second.Pool(), audit.WithTileHeight(2))
	if err != nil {
		t.Fatal(err)
	}
	defer tree.Close()
	if err := tree.ClaimKey(ctx, newSigner(t).Public()); !errors.Is(err, audit.ErrOtherKey) {
		t.Fatalf("another key: %v", err)
	}
}
