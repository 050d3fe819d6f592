package esdb

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/storetest"
)

// TestConformanceFake runs the conformance suite through the real client against the fake
// server: it checks this package's logic (claims, positions, subscriptions), while
// TestConformance in esdb_test.go checks the server's actual behaviour. Every Store gets its
// own server: GlobalOrder expects no other subtest's event right after its last one.
func TestConformanceFake(t *testing.T) {
	storetest.TestStore(t, storetest.Features{}, func(t *testing.T) eventstore.Store {
		return newFakeStore(t, startFakeServer(t, "127.0.0.1:0"))
	})
}

func TestFakeIndexAndSystemRecordsStayOutOfTheLog(t *testing.T) {
	t.Parallel()
	f := startFakeServer(t, "127.0.0.1:0")
	s := newFakeStore(t, f)
	defer s.Close()
	ctx := context.Background()
	for i := range 6 {
		if _, err := s.Append(ctx, "contact-1", int64(i), []eventstore.EventData{{ID: uuidText(i), Type: "t.v1", Data: []byte(`{}`)}}); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.ReadAll(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 6 {
		t.Fatalf("global log holds %d events, want the 6 appended", len(all))
	}
	for _, e := range all {
		if e.Stream != "contact-1" {
			t.Errorf("global log holds %s of %q", e.ID, e.Stream)
		}
	}
	if n := f.records(claimStream(mustUUID(t, uuidText(0)))); n != 1 {
		t.Errorf("claim stream holds %d records, want 1", n)
	}
	if _, err := s.ReadStream(ctx, claimStream(mustUUID(t, uuidText(0))), 1, 10); !errors.Is(err, eventstore.ErrStreamNotFound) {
		t.Errorf("read the index: err = %v, want ErrStreamNotFound", err)
	}
	// A position inside a record, far from both ends.
	got, err := s.ReadAll(ctx, all[2].Position+7, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != all[3].ID || got[1].ID != all[4].ID {
		t.Errorf("read after a position inside a record = %v, want events 4 and 5", ids(got))
	}
	// Past the end.
	if got, err := s.ReadAll(ctx, all[5].Position+1_000_000, 10); err != nil || len(got) != 0 {
		t.Errorf("read past the end = %v, %v; want nothing", ids(got), err)
	}
}

// An append left half done (ids claimed, events not appended) does not block a retry of the
// same append, nor, once its slot holds another event, a new use of its ids.
func TestFakeLeftoverClaims(t *testing.T) {
	t.Parallel()
	f := startFakeServer(t, "127.0.0.1:0")
	s := newFakeStore(t, f)
	defer s.Close()
	ctx := context.Background()
	ev := []eventstore.EventData{{ID: uuidText(1), Type: "t.v1"}, {ID: uuidText(2), Type: "t.v1"}}
	// The crashed append claimed both ids for versions 1 and 2 of contact-1.
	if err := s.claimAll(ctx, "contact-1", 1, ev, []uuid.UUID{mustUUID(t, uuidText(1)), mustUUID(t, uuidText(2))}); err != nil {
		t.Fatal(err)
	}
	// Someone else may not use them while the slot is empty...
	if _, err := s.Append(ctx, "contact-2", eventstore.NoStream, ev); !errors.Is(err, eventstore.ErrDuplicateEventID) {
		t.Errorf("use of pending ids elsewhere: err = %v, want ErrDuplicateEventID", err)
	}
	// ...but the same append may go on.
	res, err := s.Append(ctx, "contact-1", eventstore.NoStream, ev)
	if err != nil || res.Version != 2 {
		t.Fatalf("retry of the half done append = %+v, %v", res, err)
	}

	// Claims of a lost append are taken over once the slot holds another event.
	lost := []eventstore.EventData{{ID: uuidText(3), Type: "t.v1"}}
	if err := s.claimAll(ctx, "contact-1", 3, lost, []uuid.UUID{mustUUID(t, uuidText(3))}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "contact-1", 2, []eventstore.EventData{{ID: uuidText(4), Type: "t.v1"}}); err != nil {
		t.Fatal(err)
	}
	if res, err := s.Append(ctx, "contact-3", eventstore.NoStream, lost); err != nil || res.Version != 1 {
		t.Errorf("use of the ids of a lost append = %+v, %v", res, err)
	}
	if e, err := s.EventByID(ctx, uuidText(3)); err != nil || e.Stream != "contact-3" {
		t.Errorf("event by id after a takeover = %+v, %v", e, err)
	}
}

// An append that finds a later id taken releases the ids it claimed.
func TestFakeReleasesClaims(t *testing.T) {
	t.Parallel()
	f := startFakeServer(t, "127.0.0.1:0")
	s := newFakeStore(t, f)
	defer s.Close()
	ctx := context.Background()
	if _, err := s.Append(ctx, "a", eventstore.NoStream, []eventstore.EventData{{ID: uuidText(9), Type: "t.v1"}}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Append(ctx, "b", eventstore.NoStream, []eventstore.EventData{{ID: uuidText(8), Type: "t.v1"}, {ID: uuidText(9), Type: "t.v1"}})
	if !errors.Is(err, eventstore.ErrDuplicateEventID) {
		t.Fatalf("err = %v, want ErrDuplicateEventID", err)
	}
	if res, err := s.Append(ctx, "c", eventstore.NoStream, []eventstore.EventData{{ID: uuidText(8), Type: "t.v1"}}); err != nil || res.Version != 1 {
		t.Errorf("use of a released id = %+v, %v", res, err)
	}
}

func TestFakeNonUUIDEventIDs(t *testing.T) {
	t.Parallel()
	f := startFakeServer(t, "127.0.0.1:0")
	s := newFakeStore(t, f)
	defer s.Close()
	ctx := context.Background()
	ev := []eventstore.EventData{{ID: "order-42/created", Type: "t.v1"}, {ID: "5A1E3C4D-2B6F-4A8E-9C0D-1E2F3A4B5C6D", Type: "t.v1"}}
	if _, err := s.Append(ctx, "s", eventstore.NoStream, ev); err != nil {
		t.Fatal(err)
	}
	for _, d := range ev {
		e, err := s.EventByID(ctx, d.ID)
		if err != nil || e.ID != d.ID {
			t.Errorf("event by id %q = %q, %v", d.ID, e.ID, err)
		}
	}
	if _, err := s.EventByID(ctx, "5a1e3c4d-2b6f-4a8e-9c0d-1e2f3a4b5c6d"); !errors.Is(err, eventstore.ErrEventNotFound) {
		t.Errorf("the lower-case form is another id: err = %v", err)
	}
}

// A subscription survives the server going away and coming back, and delivers every event
// once, in order.
func TestFakeSubscriptionReconnects(t *testing.T) {
	t.Parallel()
	for name, query := range map[string]string{
		"ClientReconnects": "",
		// The client gives up discovery while the server is away: the store replaces it.
		"ClientGivesUp": "&maxDiscoverAttempts=1&discoveryInterval=10",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testSubscriptionReconnects(t, query)
		})
	}
}

func testSubscriptionReconnects(t *testing.T, query string) {
	f := startFakeServer(t, "127.0.0.1:0")
	ctxOpen, cancelOpen := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelOpen()
	s, err := Open(ctxOpen, f.url()+query, WithReconnectBackoff(10*time.Millisecond, 50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.mu.Lock()
	firstConn := s.conn
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	appendN := func(from, n int) {
		t.Helper()
		for i := from; i < from+n; i++ {
			var err error
			for range 100 { // the client needs a moment after a restart
				if _, err = s.Append(ctx, "s", int64(i), []eventstore.EventData{{ID: uuidText(100 + i), Type: "t.v1"}}); err == nil {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err != nil {
				t.Fatalf("append %d: %v", i+1, err)
			}
		}
	}
	appendN(0, 3)
	sub, err := s.Subscribe(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	next := func(version int64) {
		t.Helper()
		select {
		case e, ok := <-sub.Events():
			if !ok {
				t.Fatalf("subscription ended: %v", sub.Err())
			}
			if e.Version != version {
				t.Fatalf("got version %d, want %d", e.Version, version)
			}
		case <-ctx.Done():
			t.Fatalf("waiting for version %d: %v", version, ctx.Err())
		}
	}
	for v := int64(1); v <= 3; v++ {
		next(v)
	}
	f.restart(t, 300*time.Millisecond)
	appendN(3, 3)
	for v := int64(4); v <= 6; v++ {
		next(v)
	}
	if err := sub.Err(); err != nil {
		t.Errorf("running subscription: err = %v", err)
	}
	s.mu.Lock()
	replaced := s.conn != firstConn
	s.mu.Unlock()
	if gaveUp := query != ""; replaced != gaveUp {
		t.Errorf("client replaced = %v, want %v", replaced, gaveUp)
	}
}

func uuidText(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }

func mustUUID(t *testing.T, id string) uuid.UUID {
	t.Helper()
	u, canonical := eventUUID(id)
	if !canonical {
		t.Fatalf("%q is not a canonical uuid", id)
	}
	return u
}

func ids(events []eventstore.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.ID
	}
	return out
}
