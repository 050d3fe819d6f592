package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/postgres/postgrestest"
	"github.com/eventcrm/crm/eventstore/storetest"
	"github.com/jackc/pgx/v5"
)

// defaultTestURL is the local PostgreSQL of a developer machine and of CI.
const defaultTestURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// testURL names the database the tests use: CRM_TEST_POSTGRES_URL, or the local default.
// The tests fail, never skip, when it cannot be reached.
func testURL() string {
	if u := os.Getenv("CRM_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return defaultTestURL
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("random: %v", err))
	}
	return hex.EncodeToString(b)
}

// newSchema returns a schema name no other test run uses; the schema is dropped when t ends.
func newSchema(t testing.TB) string {
	t.Helper()
	schema := "eventstore_test_" + randomHex(6)
	postgrestest.DropWhenDone(t, testURL(), schema)
	return schema
}

// execSQL runs sql on a connection of its own.
func execSQL(ctx context.Context, sql string, args ...any) error {
	conn, err := pgx.Connect(ctx, testURL())
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql, args...)
	return err
}

// open opens a Store in schema; the caller closes it.
func open(t testing.TB, url, schema string, opts ...Option) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, url, append([]Option{WithSchema(schema)}, opts...)...)
	if err != nil {
		t.Fatalf("open store at %s (set CRM_TEST_POSTGRES_URL to another PostgreSQL): %v", url, err)
	}
	return s
}

// mustOpen opens a Store in schema that is closed when t ends.
func mustOpen(t testing.TB, schema string, opts ...Option) *Store {
	t.Helper()
	s := open(t, testURL(), schema, opts...)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return s
}

func TestStore(t *testing.T) {
	schema := newSchema(t)
	storetest.TestStore(t, storetest.Features{Checkpoints: true}, func(t *testing.T) eventstore.Store {
		return open(t, testURL(), schema)
	})
}

// The suite again without the head cache, so that every append reads the head first.
func TestStoreWithoutHeadCache(t *testing.T) {
	schema := newSchema(t)
	storetest.TestStore(t, storetest.Features{Checkpoints: true}, func(t *testing.T) eventstore.Store {
		return open(t, testURL(), schema, WithHeadCache(0))
	})
}

// The suite again in simple protocol mode, as behind a pooler that cannot keep prepared
// statements: parameters go as text and results come as text, read by the scanning path.
func TestStoreSimpleProtocol(t *testing.T) {
	u, err := url.Parse(testURL())
	if err != nil {
		t.Skipf("CRM_TEST_POSTGRES_URL is not a URL (%v)", err)
	}
	q := u.Query()
	q.Set("default_query_exec_mode", "simple_protocol")
	u.RawQuery = q.Encode()
	schema := newSchema(t)
	storetest.TestStore(t, storetest.Features{Checkpoints: true}, func(t *testing.T) eventstore.Store {
		return open(t, u.String(), schema)
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
	h := randomHex(16)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func mustAppend(t testing.TB, s eventstore.Store, stream string, expected int64, events []eventstore.EventData) eventstore.AppendResult {
	t.Helper()
	res, err := s.Append(t.Context(), stream, expected, events)
	if err != nil {
		t.Fatalf("append to %s at %s: %v", stream, eventstore.FormatExpected(expected), err)
	}
	return res
}

// readAll reads the whole log after position after.
func readAll(t testing.TB, s eventstore.Store, after int64) []eventstore.Event {
	t.Helper()
	var all []eventstore.Event
	for {
		page, err := s.ReadAll(t.Context(), after, 1000)
		if err != nil {
			t.Fatalf("read all after %d: %v", after, err)
		}
		all = append(all, page...)
		if len(page) < 1000 {
			return all
		}
		after = page[len(page)-1].Position
	}
}

// receive returns the next n events of sub, failing after timeout.
func receive(t testing.TB, sub eventstore.Subscription, n int, timeout time.Duration) []eventstore.Event {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	var got []eventstore.Event
	for len(got) < n {
		select {
		case e, ok := <-sub.Events():
			if !ok {
				t.Fatalf("subscription ended after %d of %d events: %v", len(got), n, sub.Err())
			}
			got = append(got, e)
		case <-deadline.C:
			t.Fatalf("received %d of %d events in %v", len(got), n, timeout)
		}
	}
	return got
}

// receiveNothing fails if sub delivers an event within d.
func receiveNothing(t testing.TB, sub eventstore.Subscription, d time.Duration) {
	t.Helper()
	select {
	case e, ok := <-sub.Events():
		if !ok {
			t.Fatalf("subscription ended: %v", sub.Err())
		}
		t.Fatalf("received %s at position %d, want nothing yet", e.ID, e.Position)
	case <-time.After(d):
	}
}

func positions(events []eventstore.Event) []int64 {
	p := make([]int64, len(events))
	for i, e := range events {
		p[i] = e.Position
	}
	return p
}

func ids(events []eventstore.Event) []string {
	p := make([]string, len(events))
	for i, e := range events {
		p[i] = e.ID
	}
	return p
}

// writeIn writes appends in tx, which stays open: a writer that took its positions and has
// not committed yet.
func writeIn(tx pgx.Tx) func(context.Context, *appendCall) appendOutcome {
	return func(ctx context.Context, c *appendCall) appendOutcome {
		outs, err := callAppend(ctx, tx, []segment{{c}})
		if err != nil {
			return appendOutcome{err: err}
		}
		return outs[0]
	}
}

func TestOpenMigratesConcurrently(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			s, err := Open(t.Context(), testURL(), WithSchema(schema))
			if err == nil {
				err = s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("open %d: %v", i, err)
		}
	}
	s := mustOpen(t, schema)
	var n int
	if err := s.Pool().QueryRow(t.Context(), "SELECT count(*) FROM schema_migrations").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if want := 1; n != want {
		t.Errorf("%d migrations recorded, want %d", n, want)
	}
}

func TestOpenFailsWhenUnreachable(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	s, err := Open(ctx, "postgres://postgres@127.0.0.1:1/postgres?connect_timeout=2")
	if err == nil {
		s.Close()
		t.Fatal("open a store on a closed port: no error")
	}
}

// A log restored into a cluster with younger transaction ids would never be read: Open says so.
func TestOpenRefusesTransactionIDsAhead(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	s := open(t, testURL(), schema)
	mustAppend(t, s, "restored", eventstore.NoStream, newEvents(2))
	s.Close()
	table := pgx.Identifier{schema, "events"}.Sanitize()
	if err := execSQL(t.Context(), "UPDATE "+table+" SET tx = '999999999999999'"); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(t.Context(), testURL(), WithSchema(schema)); err == nil || !strings.Contains(err.Error(), "ahead") {
		if err == nil {
			s.Close()
		}
		t.Fatalf("open with transaction ids ahead: err = %v, want the restore hint", err)
	}
	if err := execSQL(t.Context(), "UPDATE "+table+" SET tx = '0'"); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, schema)
	if got := readAll(t, s, 0); len(got) != 2 {
		t.Errorf("read %d events after the fix, want 2", len(got))
	}
}

// A Store whose cached head is stale (another process appended) still appends where it
// should, and reports conflicts with the actual version.
func TestStaleHeadFromAnotherStore(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	a, b := mustOpen(t, schema), mustOpen(t, schema)
	mustAppend(t, a, "shared", eventstore.NoStream, newEvents(1))
	mustAppend(t, b, "shared", 1, newEvents(2)) // a still believes the stream is at 1

	_, err := a.Append(t.Context(), "shared", 1, newEvents(1))
	var conflict *eventstore.VersionConflictError
	if !errors.As(err, &conflict) || conflict.Actual != 3 {
		t.Fatalf("append at a stale version: err = %v, want a conflict with actual version 3", err)
	}
	if res := mustAppend(t, a, "shared", 3, newEvents(1)); res.Version != 4 {
		t.Errorf("append at the actual version: version = %d, want 4", res.Version)
	}
	mustAppend(t, b, "shared", eventstore.AnyVersion, newEvents(1)) // b's head is stale now
	if n, err := eventstore.VerifyStream(t.Context(), a, "shared"); err != nil || n != 5 {
		t.Errorf("verify stream = %d, %v; want 5, nil", n, err)
	}
}

// The position-taking function refuses to run in a transaction that already wrote: its
// transaction id would not be ordered with its positions.
func TestAppendMustStartItsTransaction(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, newSchema(t))
	tx, err := s.Pool().Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if err := SaveCheckpointTx(t.Context(), tx, "projection", 1); err != nil {
		t.Fatal(err)
	}
	_, _, err = s.appendTo(t.Context(), tx, writeIn(tx), "late", eventstore.NoStream, newEvents(1))
	if err == nil || !strings.Contains(err.Error(), "first write") {
		t.Fatalf("append after another write in the transaction: err = %v, want refused", err)
	}
}

// Rows come in binary format, which decode reads without pgx's scanning, unless the
// connection runs the simple protocol: then they come as text and are scanned.
func TestRowFormats(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	simple, err := url.Parse(testURL())
	if err != nil {
		t.Skipf("CRM_TEST_POSTGRES_URL is not a URL (%v)", err)
	}
	q := simple.Query()
	q.Set("default_query_exec_mode", "simple_protocol")
	simple.RawQuery = q.Encode()
	for _, tc := range []struct {
		url    string
		binary bool
	}{{testURL(), true}, {simple.String(), false}} {
		s := open(t, tc.url, schema)
		defer s.Close()
		mustAppend(t, s, "formats", eventstore.AnyVersion, newEvents(1))
		rows, err := s.Pool().Query(t.Context(), readAllSQL, pgx.QueryResultFormats{pgx.BinaryFormatCode}, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		if got := newRowDecoder(rows, true).binary; got != tc.binary {
			t.Errorf("%s: binary = %v, want %v", tc.url, got, tc.binary)
		}
		rows.Close()
	}
}

// An append stuck on a stream head that another transaction holds is abandoned when its
// caller gives up, so that the writer goes on with other appends.
func TestAbandonedAppendFreesWriter(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, newSchema(t), WithWriters(1))
	mustAppend(t, s, "locked", eventstore.NoStream, newEvents(1))
	tx, err := s.Pool().Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(t.Context(), "SELECT 1 FROM streams WHERE stream = 'locked' FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if _, err := s.Append(ctx, "locked", 1, newEvents(1)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("append to a locked stream: err = %v, want the deadline", err)
	}
	ctx, cancel = context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := s.Append(ctx, "free", eventstore.NoStream, newEvents(1)); err != nil {
		t.Fatalf("append to another stream after the abandoned one: %v", err)
	}
	tx.Rollback(t.Context())
	// The abandoned append was cancelled, not written: the stream is still at version 1.
	if res := mustAppend(t, s, "locked", 1, newEvents(1)); res.Version != 2 {
		t.Errorf("version after the abandoned append = %d, want 2", res.Version)
	}
}

// Appends that shared a transaction are still told apart: retrying one returns its own
// result, and retrying part of one is a duplicate.
func TestRetryOfAppendFromSharedBatch(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, newSchema(t), WithWriters(1))
	ctx := t.Context()
	// Keep the only writer busy on a locked stream head while the appends queue up.
	mustAppend(t, s, "blocker", eventstore.NoStream, newEvents(1))
	tx, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, "SELECT 1 FROM streams WHERE stream = 'blocker' FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { mustAppend(t, s, "blocker", 1, newEvents(1)) })
	time.Sleep(100 * time.Millisecond) // the writer took the blocker's append

	const appends = 8
	batches := make([][]eventstore.EventData, appends)
	results := make([]eventstore.AppendResult, appends)
	for i := range appends {
		batches[i] = newEvents(2)
		wg.Go(func() { results[i] = mustAppend(t, s, fmt.Sprintf("shared-%d", i), eventstore.NoStream, batches[i]) })
	}
	time.Sleep(100 * time.Millisecond) // they wait in the queue
	tx.Rollback(ctx)
	wg.Wait()

	var txs int
	if err := s.Pool().QueryRow(ctx, "SELECT count(DISTINCT tx) FROM events WHERE stream LIKE 'shared-%'").Scan(&txs); err != nil {
		t.Fatal(err)
	}
	if txs != 1 {
		t.Fatalf("the queued appends were written in %d transactions, want 1 (the test needs them batched)", txs)
	}
	for i := range appends {
		stream := fmt.Sprintf("shared-%d", i)
		res, err := s.Append(ctx, stream, eventstore.NoStream, batches[i])
		if err != nil || res != results[i] {
			t.Errorf("retry of %s = %+v, %v; want %+v, nil", stream, res, err, results[i])
		}
		if _, err := s.Append(ctx, stream, eventstore.AnyVersion, batches[i][:1]); !errors.Is(err, eventstore.ErrDuplicateEventID) {
			t.Errorf("retry of part of %s: err = %v, want ErrDuplicateEventID", stream, err)
		}
	}
}

// Many writers appending to one stream at any version all succeed, without holes, however
// their appends are batched.
func TestHotStreamAnyVersion(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, newSchema(t))
	const writers, perWriter = 64, 5
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for w := range writers {
		wg.Go(func() {
			for range perWriter {
				if _, err := s.Append(t.Context(), "hot", eventstore.AnyVersion, newEvents(1+w%3)); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	want := int64(0)
	for w, err := range errs {
		if err != nil {
			t.Errorf("writer %d: %v", w, err)
		}
		want += int64(perWriter * (1 + w%3))
	}
	if n, err := eventstore.VerifyStream(t.Context(), s, "hot"); err != nil || n != want {
		t.Errorf("verify stream = %d, %v; want %d, nil", n, err, want)
	}
	// Queued appends to the stream share transactions rather than taking one each.
	var txs int
	if err := s.Pool().QueryRow(t.Context(), "SELECT count(DISTINCT tx) FROM events WHERE stream = 'hot'").Scan(&txs); err != nil {
		t.Fatal(err)
	}
	if txs > writers*perWriter/2 {
		t.Errorf("%d appends took %d transactions, want them batched", writers*perWriter, txs)
	}
	t.Logf("%d appends in %d transactions", writers*perWriter, txs)
}
