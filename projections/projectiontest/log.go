package projectiontest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
)

// NewID returns a random event id.
func NewID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// AppendTo appends an event of each type to stream and returns them as stored.
func AppendTo(t testing.TB, store eventstore.Store, stream string, types ...string) []eventstore.Event {
	t.Helper()
	ctx := context.Background()
	data := make([]eventstore.EventData, len(types))
	for i, typ := range types {
		data[i] = eventstore.EventData{ID: NewID(), Type: typ, Data: []byte(`{}`)}
	}
	res, err := store.Append(ctx, stream, eventstore.AnyVersion, data)
	if err != nil {
		t.Fatalf("append to %s: %v", stream, err)
	}
	events, err := store.ReadStream(ctx, stream, res.Version-int64(len(types))+1, len(types))
	if err != nil {
		t.Fatalf("read %s: %v", stream, err)
	}
	return events
}

// AllEvents reads the whole log: every event committed when it is called. ReadAll may stop
// short of the last ones for a while (on PostgreSQL, behind a gap in the positions while a
// transaction that began before the events after it runs anywhere in the cluster): AllEvents
// reads on until it reaches the store's head (eventstore.Heads), and fails the test when it
// does not within a minute.
func AllEvents(t testing.TB, store eventstore.Store) []eventstore.Event {
	t.Helper()
	ctx := context.Background()
	var head int64 // 0: a store that does not tell its head is read until ReadAll returns nothing
	if h, ok := eventstore.HeadsOf(store); ok {
		var err error
		if head, err = h.LastPosition(ctx); err != nil {
			t.Fatalf("last position: %v", err)
		}
	}
	deadline := time.Now().Add(time.Minute)
	var all []eventstore.Event
	var after int64
	for {
		batch, err := store.ReadAll(ctx, after, 1000)
		if err != nil {
			t.Fatalf("read all: %v", err)
		}
		if len(batch) > 0 {
			all = append(all, batch...)
			after = batch[len(batch)-1].Position
			continue
		}
		if after >= head {
			return all
		}
		if time.Now().After(deadline) {
			t.Fatalf("read all: the log stops at position %d, before its head %d, for a minute", after, head)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// LastPosition is the position of the log's last event committed, 0 when it is empty.
func LastPosition(t testing.TB, store eventstore.Store) int64 {
	t.Helper()
	all := AllEvents(t, store)
	if len(all) == 0 {
		return 0
	}
	return all[len(all)-1].Position
}

// WaitUntil polls cond until it holds or fails the test after timeout.
func WaitUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Checkpoint is the checkpoint of p's default set.
func Checkpoint(t testing.TB, db *projections.DB, p projections.Projection) int64 {
	t.Helper()
	cp, err := db.Checkpoint(context.Background(), projections.TablesFor(p, ""))
	if err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	return cp
}

// WaitCheckpoint waits until the checkpoint of p's default set reaches pos.
func WaitCheckpoint(t testing.TB, db *projections.DB, p projections.Projection, pos int64) {
	t.Helper()
	WaitUntil(t, 30*time.Second, fmt.Sprintf("checkpoint of %s at %d", p.Name(), pos), func() bool {
		return Checkpoint(t, db, p) >= pos
	})
}

// Rebuilt applies the whole log to a fresh table set of p in one transaction: what the
// live set must equal.
func Rebuilt(t testing.TB, db *projections.DB, store eventstore.Store, p projections.Projection) projections.Tables {
	t.Helper()
	ctx := context.Background()
	tables := projections.TablesFor(p, "rebuild")
	if err := db.EnsureSchema(ctx, p, tables); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Apply(ctx, p, tables, AllEvents(t, store)); err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	return tables
}

// AssertSameAsRebuild compares every row of the live set of p with a fresh rebuild,
// independently of row order.
func AssertSameAsRebuild(t testing.TB, db *projections.DB, store eventstore.Store, p projections.Projection) {
	t.Helper()
	live := Dump(t, db, projections.TablesFor(p, ""))
	fresh := Dump(t, db, Rebuilt(t, db, store, p))
	if !reflect.DeepEqual(live, fresh) {
		for table := range fresh {
			if !reflect.DeepEqual(live[table], fresh[table]) {
				t.Errorf("table %s differs from a rebuild:\nlive:    %d rows %v\nrebuild: %d rows %v", table,
					len(live[table]), first(live[table]), len(fresh[table]), first(fresh[table]))
			}
		}
		t.FailNow()
	}
}

func first(rows []string) []string { return rows[:min(len(rows), 5)] }

// Count runs a query of one number; NULL counts 0.
func Count(t testing.TB, db *projections.DB, query string) int64 {
	t.Helper()
	var n sql.NullInt64
	if err := db.SQL.QueryRow(query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n.Int64
}

// Active is the set the registry serves for p.
func Active(t testing.TB, db *projections.DB, p projections.Projection) projections.Tables {
	t.Helper()
	tables, err := db.ActiveTables(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	return tables
}

// TableExists tells whether the read-model database has a table of that name.
func TableExists(t testing.TB, db *projections.DB, name string) bool {
	t.Helper()
	q := `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?`
	if db.Dialect == projections.Postgres {
		q = `SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = ?`
	}
	var n int
	if err := db.SQL.QueryRow(db.Dialect.Rebind(q), name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n > 0
}
