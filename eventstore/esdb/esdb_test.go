package esdb_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/esdb"
	"github.com/eventcrm/crm/eventstore/storetest"
)

// TestConformance runs the store conformance suite against the EventStoreDB named by
// CRM_TEST_ESDB_URL. Every subtest gets its own Store on the shared database.
func TestConformance(t *testing.T) {
	url := os.Getenv("CRM_TEST_ESDB_URL")
	if url == "" {
		t.Skip("CRM_TEST_ESDB_URL is not set: run `docker compose up -d eventstore`, then " +
			"`CRM_TEST_ESDB_URL=esdb://localhost:2113?tls=false make test`")
	}
	features := storetest.Features{
		// Checkpoints live in PostgreSQL with this backend.
		Checkpoints: false,
		Slow:        true,
		// RecordedAt is stamped by this process (the hash chain covers it), not by the server.
		ClockSkew: 0,
	}
	storetest.TestStore(t, features, func(t *testing.T) eventstore.Store {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// No zaptest logger: the client's goroutines may log after a subtest ended.
		s, err := esdb.Open(ctx, url)
		if err != nil {
			t.Fatalf("open %s: %v", url, err)
		}
		return s
	})
}
