package webhooks_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventcrm/crm/cmd/crm/internal/config"
	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/codec"
	"github.com/eventcrm/crm/eventstore/keys"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// An event about a person erased before it reaches a receiver is sent as it reads then,
// without the personal data: in a retry of its delivery, and in a first attempt made after
// the erasure although the event was read before (behind another that was being retried).
func TestDeliveriesAfterAnErasureCarryNoPersonalData(t *testing.T) {
	for _, tt := range []struct {
		name        string
		otherBefore bool // another contact created just before: its delivery is the one refused
	}{
		{"a retry", false},
		{"a first attempt of an event read before the erasure", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			projectiontest.ForEachBackend(t, func(t *testing.T, raw eventstore.Store, db *projections.DB) {
				deliverAfterErasure(t, raw, db, tt.otherBefore)
			})
		})
	}
}

func deliverAfterErasure(t *testing.T, raw eventstore.Store, db *projections.DB, otherBefore bool) {
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
	rec.subscribe(t, svc, "contact.created.v2")
	cmds := commands.NewHandler(store, commands.WithShredder(c))
	if otherBefore {
		if _, err := cmds.CreateContact(ctx, commands.Meta{Actor: "rep"}, commands.CreateContact{Name: "Someone Else", Channel: "seminar"}); err != nil {
			t.Fatal(err)
		}
	}
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
	projectiontest.WaitUntil(t, time.Minute, "the person's event taken", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		for _, b := range rec.bodies {
			if strings.Contains(b, person.ID) {
				return true
			}
		}
		return false
	})
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, body := range rec.bodies {
		if strings.Contains(strings.ToLower(body), "quillon") {
			t.Errorf("delivered after the erasure: %s", body)
		}
	}
}
