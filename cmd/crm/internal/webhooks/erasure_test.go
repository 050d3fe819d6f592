package webhooks_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventcrm/crm/cmd/crm/internal/config"
	"github.com/eventcrm/crm/cmd/crm/internal/webhooks"
	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/codec"
	"github.com/eventcrm/crm/eventstore/keys"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// A delivery that a receiver refuses is retried; when the person is erased meanwhile, the
// retries that follow carry the event as it now reads, without the personal data.
func TestRetriesAfterAnErasureCarryNoPersonalData(t *testing.T) {
	projectiontest.ForEachBackend(t, func(t *testing.T, raw eventstore.Store, db *projections.DB) {
		ctx := context.Background()
		k, err := keys.OpenSQLite(ctx, filepath.Join(t.TempDir(), "keys.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = k.Close() })
		c, err := config.NewCodec(k)
		if err != nil {
			t.Fatal(err)
		}
		store := codec.NewStore(raw, c)
		var (
			mu      sync.Mutex
			refused = true
		)
		rec := newReceiver(t, func(int) string {
			mu.Lock()
			defer mu.Unlock()
			if refused {
				return "fail"
			}
			return ""
		})
		svc := newService(t, deps(t, store, db), time.Now)
		sub, err := svc.Create(ctx, admin, webhooks.CreateRequest{URL: rec.srv.URL, EventTypes: []string{"contact.created.v2"}})
		if err != nil {
			t.Fatal(err)
		}
		rec.mu.Lock()
		rec.secret = sub.Secret
		rec.mu.Unlock()
		cmds := commands.NewHandler(store, commands.WithShredder(c))
		person, err := cmds.CreateContact(ctx, commands.Meta{Actor: "rep"}, commands.CreateContact{Name: "Quillon Erasable",
			Email: "quillon@erase.example", Channel: "seminar"})
		if err != nil {
			t.Fatal(err)
		}
		requests := func() int { rec.mu.Lock(); defer rec.mu.Unlock(); return rec.requests }
		run(t, svc)
		projectiontest.WaitUntil(t, time.Minute, "a refused attempt", func() bool { return requests() > 0 })
		if _, err := cmds.EraseContact(ctx, commands.Meta{Actor: "admin"}, commands.EraseContact{ContactID: person.ID, Reason: "request 7"}); err != nil {
			t.Fatal(err)
		}
		after := requests()
		projectiontest.WaitUntil(t, time.Minute, "a refused attempt after the erasure", func() bool { return requests() > after+1 })
		mu.Lock()
		refused = false
		mu.Unlock()
		projectiontest.WaitUntil(t, time.Minute, "the delivery taken", func() bool { return len(rec.positions()) == 1 })
		rec.mu.Lock()
		body := rec.bodies[0]
		rec.mu.Unlock()
		if strings.Contains(strings.ToLower(body), "quillon") || !strings.Contains(body, person.ID) {
			t.Errorf("delivered after the erasure: %s", body)
		}
	})
}
