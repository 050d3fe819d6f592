package sqlite_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/sqlite"
	"github.com/eventcrm/crm/eventstore/storetest"
)

func TestStore(t *testing.T) {
	storetest.TestStore(t, storetest.Features{Checkpoints: true}, func(t *testing.T) eventstore.Store {
		return mustOpen(t, filepath.Join(t.TempDir(), "events.db"))
	})
}

func mustOpen(t testing.TB, path string, opts ...sqlite.Option) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), path, opts...)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

// The suite again with group commit off, so that every request runs in its own transaction.
func TestStoreWithoutGroupCommit(t *testing.T) {
	storetest.TestStore(t, storetest.Features{Checkpoints: true}, func(t *testing.T) eventstore.Store {
		return mustOpen(t, filepath.Join(t.TempDir(), "events.db"), sqlite.WithMaxBatch(1))
	})
}

func newEvents(n int) []eventstore.EventData {
	events := make([]eventstore.EventData, n)
	for i := range events {
		events[i] = eventstore.EventData{
			ID:       newID(),
			Type:     "test.happened.v1",
			Data:     fmt.Appendf(nil, `{"i":%d}`, i),
			Metadata: eventstore.Metadata{Actor: "user:test", CommandID: newID()},
		}
	}
	return events
}

func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

func mustAppend(t testing.TB, s eventstore.Store, stream string, expected int64, events []eventstore.EventData) eventstore.AppendResult {
	t.Helper()
	res, err := s.Append(t.Context(), stream, expected, events)
	if err != nil {
		t.Fatalf("append to %s at %d: %v", stream, expected, err)
	}
	return res
}

func TestReopenKeepsEventsAndHeads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	s := mustOpen(t, path)
	mustAppend(t, s, "contact-1", eventstore.NoStream, newEvents(2))
	mustAppend(t, s, "deal-1", eventstore.NoStream, newEvents(1))
	mustAppend(t, s, "contact-1", 2, newEvents(3))
	if err := s.SaveCheckpoint(t.Context(), "projection", 4); err != nil {
		t.Fatalf("save checkpoint: %v", err)
	}
	before, err := s.ReadAll(t.Context(), 0, 100)
	if err != nil {
		t.Fatalf("read all: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	s = mustOpen(t, path)
	defer s.Close()
	after, err := s.ReadAll(t.Context(), 0, 100)
	if err != nil {
		t.Fatalf("read all after reopen: %v", err)
	}
	if len(after) != 6 || len(before) != 6 {
		t.Fatalf("read %d events before and %d after reopening, want 6", len(before), len(after))
	}
	for i := range after {
		if after[i].ID != before[i].ID || after[i].Position != before[i].Position || !bytes.Equal(after[i].Hash, before[i].Hash) {
			t.Errorf("event %d after reopening: %s at %d, want %s at %d", i, after[i].ID, after[i].Position, before[i].ID, before[i].Position)
		}
	}
	// The heads survived: the next append must name version 5, and chains to its hash.
	_, err = s.Append(t.Context(), "contact-1", eventstore.NoStream, newEvents(1))
	var conflict *eventstore.VersionConflictError
	if !errors.As(err, &conflict) || conflict.Actual != 5 {
		t.Fatalf("append at no-stream after reopening: err = %v, want a conflict at version 5", err)
	}
	if res := mustAppend(t, s, "contact-1", 5, newEvents(1)); res.Version != 6 || res.Position != 7 {
		t.Errorf("append after reopening = %+v, want version 6 at position 7", res)
	}
	if n, err := eventstore.VerifyAll(t.Context(), s, nil); err != nil || n != 7 {
		t.Errorf("verify all = %d, %v; want 7, nil", n, err)
	}
	if pos, err := s.LoadCheckpoint(t.Context(), "projection"); err != nil || pos != 4 {
		t.Errorf("checkpoint after reopening = %d, %v; want 4, nil", pos, err)
	}
	var versions int
	if err := s.DB().QueryRowContext(t.Context(), "SELECT count(*) FROM schema_migrations").Scan(&versions); err != nil || versions != 1 {
		t.Errorf("schema_migrations rows = %d, %v; want 1 (migrations ran once)", versions, err)
	}
}

// TestGroupWithConflicts sends many appends at once, some of which must fail, and checks that
// each is answered on its own: the failures do not take the rest of their group with them.
func TestGroupWithConflicts(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "events.db"))
	defer s.Close()
	stored := newEvents(1)
	mustAppend(t, s, "existing", eventstore.NoStream, stored)

	const writers = 64
	for round := 0; ; round++ {
		statsBefore := s.Stats()
		start := make(chan struct{})
		type outcome struct {
			stream string
			ids    []string
			res    eventstore.AppendResult
			err    error
		}
		out := make([]outcome, writers)
		var wg sync.WaitGroup
		for w := range writers {
			o := &out[w]
			var events []eventstore.EventData
			expected := eventstore.NoStream
			switch w % 4 {
			case 0: // all race for the same new stream: one wins
				o.stream = fmt.Sprintf("race-%d", round)
				events = newEvents(1)
			case 1: // a fresh event followed by a stored one: refused as a whole
				o.stream = fmt.Sprintf("dup-%d-%d", round, w)
				events = append(newEvents(1), stored[0])
			default: // no conflict
				o.stream = fmt.Sprintf("own-%d-%d", round, w)
				events = newEvents(w%3 + 1)
			}
			for _, e := range events {
				o.ids = append(o.ids, e.ID)
			}
			wg.Go(func() {
				<-start
				o.res, o.err = s.Append(t.Context(), o.stream, expected, events)
			})
		}
		close(start)
		wg.Wait()

		winners := 0
		for w, o := range out {
			switch w % 4 {
			case 0:
				if o.err == nil {
					winners++
				} else if !errors.Is(o.err, eventstore.ErrWrongExpectedVersion) {
					t.Errorf("racer %d: err = %v, want ErrWrongExpectedVersion", w, o.err)
				}
			case 1:
				if !errors.Is(o.err, eventstore.ErrDuplicateEventID) {
					t.Errorf("writer %d: err = %v, want ErrDuplicateEventID", w, o.err)
				}
				if o.err != nil && strings.Contains(o.err.Error(), "constraint") {
					t.Errorf("writer %d: driver error leaks: %v", w, o.err)
				}
				if _, err := s.EventByID(t.Context(), o.ids[0]); !errors.Is(err, eventstore.ErrEventNotFound) {
					t.Errorf("writer %d: first event of a refused append: err = %v, want ErrEventNotFound", w, err)
				}
			default:
				if o.err != nil {
					t.Errorf("writer %d: %v", w, o.err)
					continue
				}
				got, err := s.ReadStream(t.Context(), o.stream, 1, 10)
				if err != nil || len(got) != len(o.ids) || got[len(got)-1].Position != o.res.Position {
					t.Errorf("writer %d: read %d events, %v; want %d ending at position %d", w, len(got), err, len(o.ids), o.res.Position)
				}
			}
		}
		if winners != 1 {
			t.Errorf("round %d: %d racers won, want 1", round, winners)
		}
		if n, err := eventstore.VerifyAll(t.Context(), s, nil); err != nil {
			t.Fatalf("verify all after %d events: %v", n, err)
		}
		st := s.Stats()
		commits, requests := st.Commits-statsBefore.Commits, st.Requests-statsBefore.Requests
		t.Logf("round %d: %d requests in %d commits", round, requests, commits)
		if requests != writers {
			t.Errorf("round %d: stats count %d requests, want %d", round, requests, writers)
		}
		if commits < requests || t.Failed() {
			break // some appends shared a commit
		}
		if round == 4 {
			t.Fatalf("64 concurrent appends never shared a commit in 5 rounds")
		}
	}
}

// TestTwoStoresOnOneFile stands in for two processes sharing the file: each must see the
// other's appends, in its version checks as in its subscriptions.
func TestTwoStoresOnOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	a := mustOpen(t, path, sqlite.WithPollInterval(20*time.Millisecond))
	defer a.Close()
	b := mustOpen(t, path)
	defer b.Close()

	mustAppend(t, a, "contact-1", eventstore.NoStream, newEvents(1)) // a now knows the head
	sub, err := a.Subscribe(t.Context(), 1)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	defer sub.Close()
	fromB := mustAppend(t, b, "contact-1", 1, newEvents(1))

	// Nothing in a wakes the subscription: it finds b's event by polling.
	select {
	case e := <-sub.Events():
		if e.Position != fromB.Position {
			t.Errorf("subscription delivered position %d, want the other store's %d", e.Position, fromB.Position)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("the other store's append never reached the subscription")
	}
	if _, err := a.Append(t.Context(), "contact-1", 1, newEvents(1)); !errors.Is(err, eventstore.ErrWrongExpectedVersion) {
		t.Fatalf("append at the version before the other store's append: err = %v, want ErrWrongExpectedVersion", err)
	}
	mustAppend(t, a, "contact-1", 2, newEvents(1))
	if n, err := eventstore.VerifyStream(t.Context(), b, "contact-1"); err != nil || n != 3 {
		t.Errorf("verify stream = %d, %v; want 3, nil", n, err)
	}
}

// TestChangedEventBreaksChain edits a stored event behind the store's back.
func TestChangedEventBreaksChain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	s := mustOpen(t, path)
	defer s.Close()
	mustAppend(t, s, "deal-1", eventstore.NoStream, newEvents(3))
	if _, err := eventstore.VerifyStream(t.Context(), s, "deal-1"); err != nil {
		t.Fatalf("verify the honest stream: %v", err)
	}

	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer db.Close()
	if _, err := db.ExecContext(t.Context(), `UPDATE events SET data = '{"i":99}' WHERE stream = 'deal-1' AND version = 2`); err != nil {
		t.Fatalf("tamper: %v", err)
	}
	_, err = eventstore.VerifyStream(t.Context(), s, "deal-1")
	var chainErr *eventstore.ChainError
	if !errors.As(err, &chainErr) || chainErr.Version != 2 {
		t.Fatalf("verify a changed stream: err = %v, want a ChainError at version 2", err)
	}
	if _, err := eventstore.VerifyAll(t.Context(), s, nil); !errors.Is(err, eventstore.ErrBrokenChain) {
		t.Errorf("verify all: err = %v, want ErrBrokenChain", err)
	}
}

func TestCanceledAppendWritesNothing(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "events.db"))
	defer s.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Append(ctx, "contact-1", eventstore.NoStream, newEvents(1)); !errors.Is(err, context.Canceled) {
		t.Fatalf("append with a canceled context: err = %v, want context.Canceled", err)
	}
	if _, err := s.ReadStream(t.Context(), "contact-1", 1, 10); !errors.Is(err, eventstore.ErrStreamNotFound) {
		t.Errorf("read stream: err = %v, want ErrStreamNotFound", err)
	}
}

func TestOpenRefusesBadOptions(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		path string
		opts []sqlite.Option
	}{
		{"InMemory", ":memory:", nil},
		{"NoPath", "", nil},
		{"URI", "file:" + filepath.Join(dir, "a.db"), nil},
		{"ZeroBatch", filepath.Join(dir, "b.db"), []sqlite.Option{sqlite.WithMaxBatch(0)}},
		{"NoReaders", filepath.Join(dir, "c.db"), []sqlite.Option{sqlite.WithReadConns(0), sqlite.WithPollInterval(0)}},
	}
	for _, tc := range tests {
		if s, err := sqlite.Open(t.Context(), tc.path, tc.opts...); err == nil {
			s.Close()
			t.Errorf("%s: open succeeded, want an error", tc.name)
		}
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	mustOpen(t, path).Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer db.Close()
	if _, err := db.ExecContext(t.Context(), "INSERT INTO schema_migrations VALUES (99, '0099_future', 0)"); err != nil {
		t.Fatalf("insert: %v", err)
	}
	if s, err := sqlite.Open(t.Context(), path); err == nil || !strings.Contains(err.Error(), "newer") {
		if s != nil {
			s.Close()
		}
		t.Fatalf("open a file from a newer program: err = %v, want a schema version error", err)
	}
}
