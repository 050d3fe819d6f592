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
	"github.com/jackc/pgx/v5"
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
	s := mustOpen(t, newSchema(t), WithPollInterval(50*time.Millisecond), WithMaxConns(writers+5))
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
	// Transactions that take no position come and go in the cluster all along (another
	// application's, say): they hold back the cluster's horizon, so the readers pass the gaps
	// by the log's own appenders (see appenders), which must not skip an event either.
	stopForeign := make(chan struct{})
	foreignDone := make(chan struct{})
	go func() {
		defer close(foreignDone)
		r := rand.New(rand.NewPCG(7, 42))
		for {
			select {
			case <-stopForeign:
				return
			default:
			}
			tx, err := s.Pool().Begin(ctx)
			if err != nil {
				return
			}
			if _, err := tx.Exec(ctx, `SELECT pg_current_xact_id()`); err == nil {
				time.Sleep(time.Duration(5+r.IntN(40)) * time.Millisecond)
			}
			tx.Rollback(ctx) //nolint:errcheck
		}
	}()
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
	close(stopForeign)
	<-foreignDone
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

// holdForeignTransaction opens a transaction on a connection of its own that takes a
// transaction id and does not end until the test does: another application's batch, a
// migration, a rebuild in another schema. It holds back the cluster's horizon
// (pg_snapshot_xmin) and takes no position of the log.
func holdForeignTransaction(t *testing.T) (end func()) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, testURL())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_current_xact_id()`); err != nil {
		t.Fatalf("take a transaction id: %v", err)
	}
	var once sync.Once
	end = func() {
		once.Do(func() {
			tx.Rollback(ctx) //nolint:errcheck
			conn.Close(ctx)
		})
	}
	t.Cleanup(end)
	return end
}

// A gap in the positions (an append that rolled back) while a transaction that is no append
// runs in the cluster: the reader passes the gap within its read wait, without waiting for that
// transaction, and a subscription delivers what follows. An append that holds a position still
// holds the reader back, foreign transaction or not.
func TestReadAllPassesAGapHeldBackOnlyByAForeignTransaction(t *testing.T) {
	schema := newSchema(t)
	s := mustOpen(t, schema, WithPollInterval(20*time.Millisecond), WithReadWait(5*time.Second))
	first := mustAppend(t, s, "first", eventstore.NoStream, newEvents(1))
	waitForPosition(t, s, 0, first.Position)
	sub, err := s.Subscribe(t.Context(), first.Position)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	defer sub.Close()

	endForeign := holdForeignTransaction(t)
	_, rollback, gap := holdAppend(t, s, "rolled-back", newEvents(2))
	rollback()
	later := mustAppend(t, s, "later", eventstore.NoStream, newEvents(2))
	if later.Position <= gap.Position {
		t.Fatalf("later append at %d, not after the gap at %d", later.Position, gap.Position)
	}
	want := []int64{later.Position - 1, later.Position}
	if page, err := s.ReadAll(t.Context(), first.Position, 100); err != nil || !slices.Equal(positions(page), want) {
		t.Fatalf("read all past the gap = %v, %v; want %v", positions(page), err, want)
	}
	if got := receive(t, sub, 2, 15*time.Second); !slices.Equal(positions(got), want) {
		t.Fatalf("delivered %v, want %v", positions(got), want)
	}

	// An append that took a position and has not committed still holds the reader back.
	commit, _, held := holdAppend(t, s, "held", newEvents(1))
	last := mustAppend(t, s, "last", eventstore.NoStream, newEvents(1))
	impatient := mustOpen(t, schema, WithReadWait(300*time.Millisecond))
	if page, err := impatient.ReadAll(t.Context(), later.Position, 100); err != nil || len(page) != 0 {
		t.Fatalf("read all while an append holds a position = %v, %v; want nothing", positions(page), err)
	}
	receiveNothing(t, sub, 300*time.Millisecond)
	commit()
	want = []int64{held.Position, last.Position}
	if got := receive(t, sub, 2, 15*time.Second); !slices.Equal(positions(got), want) {
		t.Fatalf("delivered %v after the commit, want %v", positions(got), want)
	}
	endForeign()
}

// The appenders are read before the reader's query; an append that takes its position between
// the two is not among them. An event committed after it must still wait for it: the bounded
// read returns only events whose transaction began before the appenders were read.
func TestBoundedReadWaitsForAnAppendThatBeganAfterTheLockRead(t *testing.T) {
	s := mustOpen(t, newSchema(t))
	first := mustAppend(t, s, "first", eventstore.NoStream, newEvents(1))
	waitForPosition(t, s, 0, first.Position)
	holdForeignTransaction(t)

	bound, err := s.appenders(t.Context())
	if err != nil || bound == nil {
		t.Fatalf("appenders = %v, %v", bound, err)
	}
	if len(bound.xids) != 0 {
		t.Fatalf("appenders while none runs: %v", bound.xids)
	}
	commit, _, held := holdAppend(t, s, "held", newEvents(1))
	later := mustAppend(t, s, "later", eventstore.NoStream, newEvents(1))
	prev := first.Position
	page, blocked, err := s.query(t.Context(), readAllBoundedSQL, &prev, 100, first.Position, 100, bound.next, bound.xids)
	if err != nil || len(page) != 0 || !blocked {
		t.Fatalf("bounded read with appenders read before the held append = %v, blocked %v, %v; want nothing, blocked",
			positions(page), blocked, err)
	}

	// Read again, the held append is among the appenders and still holds the reader back.
	if bound, err = s.appenders(t.Context()); err != nil || bound == nil || len(bound.xids) != 1 {
		t.Fatalf("appenders = %+v, %v; want the held append", bound, err)
	}
	page, blocked, err = s.query(t.Context(), readAllBoundedSQL, &prev, 100, first.Position, 100, bound.next, bound.xids)
	if err != nil || len(page) != 0 || !blocked {
		t.Fatalf("bounded read while the append is held = %v, blocked %v, %v; want nothing, blocked", positions(page), blocked, err)
	}
	commit()
	if bound, err = s.appenders(t.Context()); err != nil || bound == nil {
		t.Fatalf("appenders = %+v, %v", bound, err)
	}
	page, _, err = s.query(t.Context(), readAllBoundedSQL, &prev, 100, first.Position, 100, bound.next, bound.xids)
	if want := []int64{held.Position, later.Position}; err != nil || !slices.Equal(positions(page), want) {
		t.Fatalf("bounded read after the commit = %v, %v; want %v", positions(page), err, want)
	}
}

func TestWidenXID(t *testing.T) {
	for _, c := range []struct {
		name string
		next uint64
		xid  uint32
		want uint64
		ok   bool
	}{
		{"same epoch", 1000, 990, 990, true},
		{"the epoch before", 5<<32 | 10, 1<<32 - 6, 4<<32 | (1<<32 - 6), true},
		{"next itself was not assigned", 1000, 1000, 0, false},
		{"assigned since", 1000, 1005, 0, false},
		{"assigned since, across the wrap", 5<<32 | (1<<32 - 3), 2, 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, ok := widenXID(c.next, c.xid)
			if got != c.want || ok != c.ok {
				t.Errorf("widenXID(%d, %d) = %d, %v; want %d, %v", c.next, c.xid, got, ok, c.want, c.ok)
			}
		})
	}
}

func TestOldestPerHolder(t *testing.T) {
	const epoch5 = 5 << 32
	for _, c := range []struct {
		name string
		next uint64
		pids []int32
		xids []int64
		want []uint64
	}{
		{"none", 1000, nil, nil, []uint64{}},
		{"one id each", 1000, []int32{7, 9}, []int64{990, 950}, []uint64{950, 990}},
		{"a subtransaction's id is higher", 1000, []int32{7, 7}, []int64{995, 990}, []uint64{990}},
		{"ids on both sides of a wraparound", epoch5 | 10, []int32{7, 7}, []int64{1<<32 - 3, 4}, []uint64{4<<32 | (1<<32 - 3)}},
		{"an id assigned since next is left out", 1000, []int32{7, 8}, []int64{990, 1002}, []uint64{990}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := oldestPerHolder(c.next, c.pids, c.xids); !slices.Equal(got, c.want) {
				t.Errorf("oldestPerHolder = %v, want %v", got, c.want)
			}
		})
	}
}
