package projections_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/postgres"
	"github.com/eventcrm/crm/eventstore/sqlite"
	"github.com/eventcrm/crm/eventstore/wmstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// counter is the runtime tests' own projection. Per stream and type it counts events; it
// keeps the id of every applied event (applying one twice fails on the primary key) and the
// last version applied per stream (an event out of stream order fails). refuse, when set,
// may refuse or panic on an event.
type counter struct {
	name   string
	refuse func(e eventstore.Event) error
	// countOnly keeps the counts only: nothing in the tables refuses an event applied twice.
	countOnly bool
}

func (c *counter) Name() string {
	if c.name == "" {
		return "event_counts"
	}
	return c.name
}

func (c *counter) Version() int { return 1 }

func (c *counter) Schema(_ projections.Dialect, t projections.Tables) []string {
	return []string{
		`CREATE TABLE IF NOT EXISTS ` + t.Name("counts") + ` (stream TEXT NOT NULL, type TEXT NOT NULL, n BIGINT NOT NULL, PRIMARY KEY (stream, type))`,
		`CREATE TABLE IF NOT EXISTS ` + t.Name("seen") + ` (event_id TEXT PRIMARY KEY, position BIGINT NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS ` + t.Name("streams") + ` (stream TEXT PRIMARY KEY, version BIGINT NOT NULL)`,
	}
}

func (c *counter) Apply(ctx context.Context, tx *projections.Tx, t projections.Tables, e eventstore.Event) error {
	if c.refuse != nil {
		if err := c.refuse(e); err != nil {
			return err
		}
	}
	if c.countOnly {
		_, err := tx.Exec(ctx, `INSERT INTO `+t.Name("counts")+` (stream, type, n) VALUES (?, ?, 1)
			ON CONFLICT (stream, type) DO UPDATE SET n = `+t.Name("counts")+`.n + 1`, e.Stream, e.Type)
		return err
	}
	var last int64
	err := tx.QueryRow(ctx, `SELECT version FROM `+t.Name("streams")+` WHERE stream = ?`, e.Stream).Scan(&last)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	if e.Version != last+1 {
		return fmt.Errorf("stream %s: version %d after %d", e.Stream, e.Version, last)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO `+t.Name("streams")+` (stream, version) VALUES (?, ?)
		ON CONFLICT (stream) DO UPDATE SET version = excluded.version`, e.Stream, e.Version); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO `+t.Name("seen")+` (event_id, position) VALUES (?, ?)`, e.ID, e.Position); err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO `+t.Name("counts")+` (stream, type, n) VALUES (?, ?, 1)
		ON CONFLICT (stream, type) DO UPDATE SET n = `+t.Name("counts")+`.n + 1`, e.Stream, e.Type)
	return err
}

// backend is an event store with a read-model database beside it, as `crm serve` pairs them.
type backend struct {
	name string
	open func(t testing.TB) (eventstore.Store, *projections.DB)
}

func backends() []backend {
	return []backend{
		{"sqlite", func(t testing.TB) (eventstore.Store, *projections.DB) {
			dir := t.TempDir()
			store, err := sqlite.Open(context.Background(), filepath.Join(dir, "crm.db"), sqlite.WithPollInterval(50*time.Millisecond))
			if err != nil {
				t.Fatalf("open sqlite store: %v", err)
			}
			t.Cleanup(func() { store.Close() })
			db, err := projections.OpenSQLite(context.Background(), filepath.Join(dir, "readmodels.db"))
			if err != nil {
				t.Fatalf("open read models: %v", err)
			}
			t.Cleanup(func() { db.SQL.Close() })
			return store, db
		}},
		{"postgres", func(t testing.TB) (eventstore.Store, *projections.DB) {
			url := projectiontest.PostgresURL()
			storeSchema, rmSchema := freshSchema(t, "projections_test_store_"), freshSchema(t, "projections_test_rm_")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			store, err := postgres.Open(ctx, url, postgres.WithSchema(storeSchema), postgres.WithPollInterval(50*time.Millisecond))
			if err != nil {
				t.Fatalf("open postgres store at %s (set CRM_TEST_POSTGRES_URL): %v", url, err)
			}
			t.Cleanup(func() { store.Close() })
			db, err := projections.OpenPostgres(ctx, url, rmSchema)
			if err != nil {
				t.Fatalf("open postgres read models: %v", err)
			}
			t.Cleanup(func() { db.SQL.Close() })
			return store, db
		}},
	}
}

// freshSchema names a schema no other test uses and drops it when t ends (after the pools
// registered later were closed).
func freshSchema(t testing.TB, prefix string) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	schema := prefix + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, projectiontest.PostgresURL())
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return schema
}

// forEachBackend runs test as parallel subtests, one per backend.
func forEachBackend(t *testing.T, test func(t *testing.T, store eventstore.Store, db *projections.DB)) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			store, db := b.open(t)
			test(t, store, db)
		})
	}
}

// runnerConfig is the configuration of the tests: the real wmstore subscriber, short waits.
func runnerConfig(store eventstore.Store, db *projections.DB) projections.RunnerConfig {
	return projections.RunnerConfig{
		DB:    db,
		Store: store,
		NewSubscriber: func(group string) (message.Subscriber, error) {
			return wmstore.NewSubscriber(store, wmstore.SubscriberConfig{ConsumerGroup: group, NackDelay: 10 * time.Millisecond,
				RetryInterval: 50 * time.Millisecond}, nil)
		},
		Decode:          wmstore.EventFromMessage,
		AdvanceGroup:    advanceGroup(store),
		Retry:           projections.RetryConfig{MaxRetries: 2, InitialInterval: time.Millisecond, MaxInterval: 5 * time.Millisecond},
		RestartDelay:    20 * time.Millisecond,
		MaxRestartDelay: 100 * time.Millisecond,
	}
}

// advanceGroup moves a wmstore consumer group of the global feed forward, as `crm serve` does.
func advanceGroup(store eventstore.Store) func(ctx context.Context, group string, position int64) error {
	return func(ctx context.Context, group string, position int64) error {
		cps := store.(eventstore.Checkpoints)
		name := wmstore.CheckpointName(group, wmstore.AllTopic)
		acked, err := cps.LoadCheckpoint(ctx, name)
		if err != nil || acked >= position {
			return err
		}
		return cps.SaveCheckpoint(ctx, name, position)
	}
}

func newRunner(t testing.TB, cfg projections.RunnerConfig, ps ...projections.Projection) *projections.Runner {
	t.Helper()
	r, err := projections.NewRunner(cfg, ps...)
	if err != nil {
		t.Fatalf("new runner: %v", err)
	}
	return r
}

// start initializes r and runs it until the returned stop is called (or t ends).
func start(t testing.TB, r *projections.Runner) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if err := r.Init(ctx); err != nil {
		t.Fatalf("init: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("runner did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func newID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// appendTo appends n events to stream and returns them as stored.
func appendTo(t testing.TB, store eventstore.Store, stream string, types ...string) []eventstore.Event {
	t.Helper()
	ctx := context.Background()
	data := make([]eventstore.EventData, len(types))
	for i, typ := range types {
		data[i] = eventstore.EventData{ID: newID(), Type: typ, Data: []byte(`{}`)}
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

// allEvents reads the whole log.
func allEvents(t testing.TB, store eventstore.Store) []eventstore.Event {
	t.Helper()
	var all []eventstore.Event
	var after int64
	for {
		batch, err := store.ReadAll(context.Background(), after, 1000)
		if err != nil {
			t.Fatalf("read all: %v", err)
		}
		if len(batch) == 0 {
			return all
		}
		all = append(all, batch...)
		after = batch[len(batch)-1].Position
	}
}

func lastPosition(t testing.TB, store eventstore.Store) int64 {
	t.Helper()
	all := allEvents(t, store)
	if len(all) == 0 {
		return 0
	}
	return all[len(all)-1].Position
}

// waitUntil polls cond until it holds or fails the test after timeout.
func waitUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func checkpoint(t testing.TB, db *projections.DB, p projections.Projection) int64 {
	t.Helper()
	cp, err := db.Checkpoint(context.Background(), projections.TablesFor(p, ""))
	if err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	return cp
}

func waitCheckpoint(t testing.TB, db *projections.DB, p projections.Projection, pos int64) {
	t.Helper()
	waitUntil(t, 30*time.Second, fmt.Sprintf("checkpoint of %s at %d", p.Name(), pos), func() bool {
		return checkpoint(t, db, p) >= pos
	})
}

// rebuild applies the whole log to a fresh table set of p in one transaction: what the live
// set must equal.
func rebuild(t testing.TB, db *projections.DB, store eventstore.Store, p projections.Projection) projections.Tables {
	t.Helper()
	ctx := context.Background()
	tables := projections.TablesFor(p, "rebuild")
	if err := db.EnsureSchema(ctx, p, tables); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Apply(ctx, p, tables, allEvents(t, store)); err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	return tables
}

// assertSameAsRebuild compares every row of the live set of p with a fresh rebuild,
// independently of row order.
func assertSameAsRebuild(t testing.TB, db *projections.DB, store eventstore.Store, p projections.Projection) {
	t.Helper()
	live := projectiontest.Dump(t, db, projections.TablesFor(p, ""))
	fresh := projectiontest.Dump(t, db, rebuild(t, db, store, p))
	if !reflect.DeepEqual(live, fresh) {
		for table := range fresh {
			if !reflect.DeepEqual(live[table], fresh[table]) {
				t.Errorf("table %s differs from a rebuild:\nlive:    %d rows %v\nrebuild: %d rows %v", table,
					len(live[table]), head(live[table]), len(fresh[table]), head(fresh[table]))
			}
		}
		t.FailNow()
	}
}

func head(rows []string) []string { return rows[:min(len(rows), 5)] }

func count(t testing.TB, db *projections.DB, query string) int64 {
	t.Helper()
	var n sql.NullInt64
	if err := db.SQL.QueryRow(query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n.Int64
}
