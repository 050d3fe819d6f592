package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
)

// waitForPosition polls ReadAll until it returns position: a transaction of another test run
// in the same cluster may hold the watermark back for a while. It may run on any goroutine.
func waitForPosition(t *testing.T, s *Store, after, position int64) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for position > after {
		page, err := s.ReadAll(t.Context(), after, 1000)
		if err != nil {
			t.Errorf("read all: %v", err)
			return
		}
		if len(page) > 0 {
			after = page[len(page)-1].Position
			continue
		}
		if time.Now().After(deadline) {
			t.Errorf("position %d not readable after 15s", position)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// maxPosition returns the highest position stored, read past the watermark.
func maxPosition(t *testing.T, s *Store) int64 {
	var p int64
	if err := s.Pool().QueryRow(t.Context(), "SELECT coalesce(max(position), 0) FROM events").Scan(&p); err != nil {
		t.Errorf("max position: %v", err)
	}
	return p
}

// holdAppend appends events inside a transaction it leaves open, as a writer does that took
// its positions and has not committed yet. It returns the transaction and the result.
func holdAppend(t *testing.T, s *Store, stream string, events []eventstore.EventData) (commit, rollback func(), res eventstore.AppendResult) {
	t.Helper()
	tx, err := s.Pool().Begin(t.Context())
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	res, _, err = s.appendTo(t.Context(), tx, writeIn(tx), stream, eventstore.NoStream, events)
	if err != nil {
		tx.Rollback(context.Background())
		t.Fatalf("held append to %s: %v", stream, err)
	}
	var once sync.Once
	end := func(commit bool) {
		once.Do(func() {
			var err error
			if commit {
				err = tx.Commit(t.Context())
			} else {
				err = tx.Rollback(t.Context())
			}
			if err != nil {
				t.Fatalf("end held transaction: %v", err)
			}
		})
	}
	t.Cleanup(func() { end(false) })
	return func() { end(true) }, func() { end(false) }, res
}

// A writer took a position and holds its transaction open while later appends commit: neither
// ReadAll nor a subscription may move past the held position until it commits, and then the
// held event comes first, once.
func TestReadAllWaitsForHeldTransaction(t *testing.T) {
	for _, commitHeld := range []bool{true, false} {
		name := map[bool]string{true: "Commit", false: "Rollback"}[commitHeld]
		t.Run(name, func(t *testing.T) {
			s := mustOpen(t, newSchema(t), WithPollInterval(20*time.Millisecond), WithReadWait(50*time.Millisecond))
			first := mustAppend(t, s, "first", eventstore.NoStream, newEvents(1))
			waitForPosition(t, s, 0, first.Position)
			sub, err := s.Subscribe(t.Context(), 0)
			if err != nil {
				t.Fatalf("subscribe: %v", err)
			}
			defer sub.Close()
			if got := receive(t, sub, 1, 15*time.Second); got[0].Position != first.Position {
				t.Fatalf("first delivery at %d, want %d", got[0].Position, first.Position)
			}

			heldEvents := newEvents(2)
			commit, rollback, held := holdAppend(t, s, "held", heldEvents)
			later1 := mustAppend(t, s, "later-1", eventstore.NoStream, newEvents(1))
			later2 := mustAppend(t, s, "later-2", eventstore.NoStream, newEvents(3))
			if later1.Position <= held.Position {
				t.Fatalf("later append at %d, not after the held one at %d", later1.Position, held.Position)
			}

			// The later appends have committed and woken the subscription; it must wait.
			receiveNothing(t, sub, 300*time.Millisecond)
			if page, err := s.ReadAll(t.Context(), first.Position, 100); err != nil || len(page) != 0 {
				t.Fatalf("read all while held = %v, %v; want nothing", positions(page), err)
			}
			// The store's head is what committed, held back or not: lag is measured against it.
			if head, err := s.LastPosition(t.Context()); err != nil || head != later2.Position {
				t.Errorf("last position while held = %d, %v; want %d", head, err, later2.Position)
			}

			var want []int64
			if commitHeld {
				commit()
				want = append(want, held.Position-1, held.Position)
			} else {
				rollback()
			}
			want = append(want, later1.Position, later2.Position-2, later2.Position-1, later2.Position)
			got := receive(t, sub, len(want), 15*time.Second)
			if !slices.Equal(positions(got), want) {
				t.Fatalf("delivered positions %v, want %v", positions(got), want)
			}
			if commitHeld && (got[0].ID != heldEvents[0].ID || got[1].ID != heldEvents[1].ID) {
				t.Errorf("first deliveries %v, want the held events", ids(got[:2]))
			}
			if all := readAll(t, s, first.Position); !slices.Equal(positions(all), want) {
				t.Errorf("read all positions %v, want %v", positions(all), want)
			}
			// Nothing more, and nothing twice: the next event is the next delivery.
			last := mustAppend(t, s, "last", eventstore.NoStream, newEvents(1))
			if got := receive(t, sub, 1, 15*time.Second); got[0].Position != last.Position {
				t.Errorf("next delivery at %d, want %d", got[0].Position, last.Position)
			}
		})
	}
}

// Many writers append concurrently, some in transactions that commit late or roll back, some
// refused for their expected version, while a subscription and a small-page reader follow
// the log. Every committed event must reach both exactly once, in increasing positions, and
// the result must equal a final read of the whole log.
func TestOutOfOrderCommitsRandomized(t *testing.T) {
	const (
		writers   = 24
		perWriter = 25
		streams   = 10
	)
	s := mustOpen(t, newSchema(t), WithPollInterval(50*time.Millisecond), WithMaxConns(writers+4))
	ctx := t.Context()

	sub, err := s.Subscribe(ctx, 0)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	defer sub.Close()
	var (
		delivered []eventstore.Event
		subDone   = make(chan struct{})
		stopSub   = make(chan int64, 1) // the last position to wait for
	)
	go func() {
		defer close(subDone)
		target := int64(-1)
		for target < 0 || len(delivered) == 0 || delivered[len(delivered)-1].Position < target {
			select {
			case e, ok := <-sub.Events():
				if !ok {
					return
				}
				delivered = append(delivered, e)
			case target = <-stopSub:
			case <-time.After(30 * time.Second):
				return
			}
		}
	}()

	// A reader paging with a small limit, as a catching-up projection does.
	var (
		paged     []eventstore.Event
		pagerErr  error
		stopPager = make(chan struct{})
		pagerDone = make(chan struct{})
	)
	go func() {
		defer close(pagerDone)
		var after int64
		stopping := false
		for {
			page, err := s.ReadAll(ctx, after, 7)
			if err != nil {
				pagerErr = err
				return
			}
			paged = append(paged, page...)
			if len(page) > 0 {
				after = page[len(page)-1].Position
				continue
			}
			if stopping {
				return
			}
			select {
			case <-stopPager:
				// Read on to the end of what every writer committed.
				waitForPosition(t, s, after, maxPosition(t, s))
				stopping = true
			case <-time.After(time.Millisecond):
			}
		}
	}()

	var (
		mu         sync.Mutex
		committed  = make(map[string]bool)
		refused    = make(map[string]bool)
		counts     = make(map[string]int)
		unexpected []error
	)
	record := func(events []eventstore.EventData, ok bool, mode string) {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range events {
			if ok {
				committed[e.ID] = true
			} else {
				refused[e.ID] = true
			}
		}
		counts[fmt.Sprintf("%s ok=%v", mode, ok)]++
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 42))
			for range perWriter {
				stream := fmt.Sprintf("s-%d", r.IntN(streams))
				events := newEvents(1 + r.IntN(4))
				switch mode := r.IntN(10); {
				case mode < 4: // a plain append
					_, err := s.Append(ctx, stream, eventstore.AnyVersion, events)
					if err != nil {
						mu.Lock()
						unexpected = append(unexpected, err)
						mu.Unlock()
					}
					record(events, err == nil, "any")
				case mode < 6: // an expected version that is often stale
					version := int64(0)
					if got, err := s.ReadStream(ctx, stream, 1, 1000); err == nil {
						version = got[len(got)-1].Version
					}
					time.Sleep(time.Duration(r.IntN(2000)) * time.Microsecond)
					_, err := s.Append(ctx, stream, version, events)
					if err != nil && !errors.Is(err, eventstore.ErrWrongExpectedVersion) {
						mu.Lock()
						unexpected = append(unexpected, err)
						mu.Unlock()
					}
					record(events, err == nil, "expected")
				default: // positions taken, then a late commit or a rollback
					tx, err := s.Pool().Begin(ctx)
					if err != nil {
						mu.Lock()
						unexpected = append(unexpected, err)
						mu.Unlock()
						continue
					}
					// Inside a transaction a stale head cannot be retried: a failure rolls back.
					_, _, err = s.appendTo(ctx, tx, writeIn(tx), stream, eventstore.AnyVersion, events)
					time.Sleep(time.Duration(r.IntN(20)) * time.Millisecond)
					if err == nil && mode < 9 {
						err = tx.Commit(ctx)
						record(events, err == nil, "late commit")
						continue
					}
					tx.Rollback(ctx)
					record(events, false, "rollback")
				}
			}
		})
	}
	wg.Wait()
	close(stopPager)
	<-pagerDone
	for _, err := range unexpected {
		t.Errorf("writer: %v", err)
	}
	if pagerErr != nil {
		t.Fatalf("pager: %v", pagerErr)
	}
	t.Logf("appends: %v", counts)

	final := readAll(t, s, 0)
	stopSub <- final[len(final)-1].Position
	<-subDone
	if err := sub.Err(); err != nil {
		t.Fatalf("subscription: %v", err)
	}

	check := func(what string, got []eventstore.Event) {
		t.Helper()
		seen := make(map[string]bool, len(got))
		for i, e := range got {
			if i > 0 && e.Position <= got[i-1].Position {
				t.Errorf("%s: position %d after %d", what, e.Position, got[i-1].Position)
			}
			if seen[e.ID] {
				t.Errorf("%s: event %s twice", what, e.ID)
			}
			seen[e.ID] = true
			if !committed[e.ID] {
				t.Errorf("%s: event %s was not committed (refused: %v)", what, e.ID, refused[e.ID])
			}
		}
		if len(seen) != len(committed) {
			t.Errorf("%s: %d events, want the %d committed", what, len(seen), len(committed))
		}
		if !slices.Equal(positions(got), positions(final)) {
			t.Errorf("%s: %d events differ from the final read of the log (%d)", what, len(got), len(final))
		}
	}
	check("final read", final)
	check("subscription", delivered)
	check("small pages", paged)
	if n, err := eventstore.VerifyAll(ctx, s, nil); err != nil || n != int64(len(committed)) {
		t.Errorf("verify all = %d, %v; want %d, nil", n, err, len(committed))
	}
	// What the reader's rule rests on: position order is transaction id order.
	var ordered *bool
	if err := s.Pool().QueryRow(ctx, `SELECT bool_and(ordered) FROM (
		SELECT tx >= lag(tx) OVER (ORDER BY position) AS ordered FROM events) o`).Scan(&ordered); err != nil {
		t.Fatal(err)
	}
	if ordered == nil || !*ordered {
		t.Errorf("transaction ids do not increase with positions")
	}
	if len(refused) == 0 || counts["late commit ok=true"] == 0 {
		t.Errorf("the run had no refused or no late-committed appends: %v", counts)
	}
}
