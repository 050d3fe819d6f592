package rebuild_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/diff"
	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/rebuild"
)

func rebuildConfig(store eventstore.Store, db *projections.DB) rebuild.RebuildConfig {
	return rebuild.RebuildConfig{DB: db, Store: store, Batch: 7, DropDelay: time.Millisecond}
}

func mustRebuild(t testing.TB, cfg rebuild.RebuildConfig, ps ...projections.Projection) []rebuild.RebuildProgress {
	t.Helper()
	res, err := rebuild.Rebuild(context.Background(), cfg, ps...)
	if err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	return res
}

// assertSameAsFresh compares set tables of p with a fresh one-transaction build of the log.
func assertSameAsFresh(t testing.TB, db *projections.DB, store eventstore.Store, p projections.Projection, tables projections.Tables) {
	t.Helper()
	fresh := projectiontest.Rebuilt(t, db, store, p)
	d, err := diff.CompareSets(context.Background(), db, fresh, p, tables, 3)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Identical() {
		t.Fatalf("%s differs from a fresh build: %+v", tables.Prefix(), d.Tables)
	}
}

// A rebuild while the runner runs and events keep coming: the served set is replaced by
// the new one, the runner continues on it, the old set is dropped, nothing is lost or
// counted twice.
func TestRebuildSwitchesWhileTheRunnerRuns(t *testing.T) {
	projectiontest.ForEachBackend(t, func(t *testing.T, store eventstore.Store, db *projections.DB) {
		ctx := context.Background()
		p := &projectiontest.Counter{}
		for i := range 50 {
			projectiontest.AppendTo(t, store, []string{"s-a", "s-b", "s-c"}[i%3], "test.a.v1", "test.b.v1")
		}
		r := projectiontest.NewRunner(t, projectiontest.RunnerConfig(store, db), p)
		projectiontest.Start(t, r)
		projectiontest.WaitCheckpoint(t, db, p, projectiontest.LastPosition(t, store))

		stopWriting := make(chan struct{})
		written := make(chan struct{})
		go func() {
			defer close(written)
			for i := 0; ; i++ {
				select {
				case <-stopWriting:
					return
				default:
				}
				projectiontest.AppendTo(t, store, []string{"s-a", "s-d", "s-e"}[i%3], "test.c.v1")
				time.Sleep(time.Millisecond)
			}
		}()
		cfg := rebuildConfig(store, db)
		cfg.Runner = r
		res := mustRebuild(t, cfg, p)
		close(stopWriting)
		<-written
		if res[0].State != rebuild.RebuildDone || res[0].TableSet != projections.TablesFor(p, "g1").Prefix() {
			t.Fatalf("rebuild = %+v", res[0])
		}
		if got := projectiontest.Active(t, db, p); got != projections.TablesFor(p, "g1") {
			t.Fatalf("active set %s, want g1", got.Prefix())
		}
		if tables, _ := r.Tables(p.Name()); tables != projections.TablesFor(p, "g1") {
			t.Fatalf("runner reads %s", tables.Prefix())
		}
		if projectiontest.TableExists(t, db, projections.TablesFor(p, "").Name("counts")) {
			t.Fatal("the old set was not dropped")
		}
		projectiontest.AppendTo(t, store, "s-z", "test.a.v1")
		last := projectiontest.LastPosition(t, store)
		projectiontest.WaitUntil(t, 30*time.Second, "runner on the new set", func() bool {
			cp, err := db.Checkpoint(ctx, projections.TablesFor(p, "g1"))
			return err == nil && cp >= last
		})
		total := int64(len(projectiontest.AllEvents(t, store)))
		g1 := projections.TablesFor(p, "g1")
		if n := projectiontest.Count(t, db, `SELECT sum(n) FROM `+g1.Name("counts")); n != total {
			t.Fatalf("counted %d events, the log has %d", n, total)
		}
		assertSameAsFresh(t, db, store, p, g1)
		assertAnalyzed(t, db, g1)

		// A second rebuild replaces g1 with g2.
		res = mustRebuild(t, cfg, p)
		if res[0].TableSet != projections.TablesFor(p, "g2").Prefix() || res[0].Replaces != g1.Prefix() {
			t.Fatalf("second rebuild = %+v", res[0])
		}
		if projectiontest.TableExists(t, db, g1.Name("counts")) {
			t.Fatal("g1 was not dropped")
		}
	})
}

func TestRebuildOfAnEmptyLogGivesEmptyTables(t *testing.T) {
	projectiontest.ForEachBackend(t, func(t *testing.T, store eventstore.Store, db *projections.DB) {
		p := &projectiontest.Counter{}
		res := mustRebuild(t, rebuildConfig(store, db), p)
		if res[0].State != rebuild.RebuildDone || res[0].Position != 0 {
			t.Fatalf("rebuild = %+v", res[0])
		}
		g1 := projections.TablesFor(p, "g1")
		if projectiontest.Active(t, db, p) != g1 {
			t.Fatal("not switched")
		}
		for _, table := range []string{"counts", "seen", "streams"} {
			if n := projectiontest.Count(t, db, `SELECT count(*) FROM `+g1.Name(table)); n != 0 {
				t.Fatalf("%s has %d rows", table, n)
			}
		}
	})
}

// A rebuilt set is vacuumed before it is served, so that its first index-only scans need
// not read table pages (where no older transaction elsewhere still runs).
func TestRebuiltSetIsVacuumed(t *testing.T) {
	projectiontest.ForEachBackend(t, func(t *testing.T, store eventstore.Store, db *projections.DB) {
		for i := range 200 {
			projectiontest.AppendTo(t, store, fmt.Sprintf("s-%d", i), "test.a.v1")
		}
		p := &projectiontest.Counter{}
		mustRebuild(t, rebuildConfig(store, db), p)
		g1 := projections.TablesFor(p, "g1")
		if n := projectiontest.Count(t, db, `SELECT count(*) FROM `+g1.Name("seen")); n != 200 {
			t.Fatalf("seen has %d rows, want 200", n)
		}
		assertVacuumed(t, db, g1)
	})
}

// The replaced sets of one rebuild wait once, together, before they are dropped; a
// negative delay drops them at once, and zero means the default.
func TestRebuildPausesOnceBeforeItDrops(t *testing.T) {
	projectiontest.ForEachBackend(t, func(t *testing.T, store eventstore.Store, db *projections.DB) {
		ps := []projections.Projection{&projectiontest.Counter{ProjectionName: "first"}, &projectiontest.Counter{ProjectionName: "second"}, &projectiontest.Counter{ProjectionName: "third"}}
		mustRebuild(t, rebuildConfig(store, db), ps...) // sets of every projection to replace
		for _, tc := range []struct {
			name  string
			delay time.Duration
			want  []time.Duration
		}{
			{"default", 0, []time.Duration{rebuild.DefaultDropDelay}},
			{"none", -1, nil},
			{"given", 50 * time.Millisecond, []time.Duration{50 * time.Millisecond}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				cfg := rebuildConfig(store, db)
				cfg.DropDelay = tc.delay
				var paused []time.Duration
				rebuild.PauseBeforeDrops(&cfg, func(_ context.Context, d time.Duration) error {
					paused = append(paused, d)
					return nil
				})
				old := make([]projections.Tables, len(ps))
				for i, p := range ps {
					if old[i] = projectiontest.Active(t, db, p); !projectiontest.TableExists(t, db, old[i].Name("counts")) {
						t.Fatalf("%s: no set %s to replace", p.Name(), old[i].Prefix())
					}
				}
				mustRebuild(t, cfg, ps...)
				if !slices.Equal(paused, tc.want) {
					t.Fatalf("paused %v, want %v", paused, tc.want)
				}
				for i, p := range ps {
					if projectiontest.Active(t, db, p) == old[i] {
						t.Fatalf("%s not switched", p.Name())
					}
					if projectiontest.TableExists(t, db, old[i].Name("counts")) {
						t.Fatalf("%s: the replaced set %s is still there", p.Name(), old[i].Prefix())
					}
				}
			})
		}
	})
}

// A rebuild that crashed keeps its lock until the lease ends: another rebuild is refused
// meanwhile, then resumes from the crashed one's checkpoint.
func TestCrashedRebuildResumesAndLocks(t *testing.T) {
	projectiontest.ForEachBackend(t, func(t *testing.T, store eventstore.Store, db *projections.DB) {
		p := &projectiontest.Counter{}
		for i := range 100 {
			projectiontest.AppendTo(t, store, []string{"s-a", "s-b", "s-c", "s-d"}[i%4], "test.a.v1")
		}
		cfg := rebuildConfig(store, db)
		cfg.Batch = 10
		cfg.Lease = 300 * time.Millisecond
		cfg.CommitEvery = -1 // a commit per batch, so the crash leaves a checkpoint at 40
		crashing := cfg
		rebuild.AfterBatch(&crashing, func(pos int64) error {
			if pos >= 40 {
				return rebuild.ErrCrash
			}
			return nil
		})
		if _, err := rebuild.Rebuild(context.Background(), crashing, p); !errors.Is(err, rebuild.ErrCrash) {
			t.Fatalf("crashing rebuild: %v", err)
		}
		_, err := rebuild.Rebuild(context.Background(), cfg, p)
		var running *rebuild.RebuildRunningError
		if !errors.As(err, &running) || !errors.Is(err, rebuild.ErrRebuildRunning) {
			t.Fatalf("second rebuild during the lease: %v, want ErrRebuildRunning", err)
		}
		time.Sleep(cfg.Lease)
		res := mustRebuild(t, cfg, p)
		if res[0].ResumedFrom != 40 || res[0].Events != 60 || res[0].TableSet != projections.TablesFor(p, "g1").Prefix() {
			t.Fatalf("resumed rebuild = %+v, want it to resume g1 from 40", res[0])
		}
		assertSameAsFresh(t, db, store, p, projections.TablesFor(p, "g1"))
		pr, found, err := rebuild.StoredProgress(context.Background(), db, p.Name())
		if err != nil || !found || pr.State != rebuild.RebuildDone || pr.Position != 100 {
			t.Fatalf("stored progress = %+v %v %v", pr, found, err)
		}
	})
}

// An event the projection refuses is parked in the new set, with the later events of its
// stream behind it, as the live runner parks them.
func TestRebuildParksRefusedEvents(t *testing.T) {
	projectiontest.ForEachBackend(t, func(t *testing.T, store eventstore.Store, db *projections.DB) {
		p := &projectiontest.Counter{Refuse: func(e eventstore.Event) error {
			if e.Type == "test.poison.v1" {
				return errors.New("cannot apply this")
			}
			return nil
		}}
		projectiontest.AppendTo(t, store, "s-a", "test.a.v1")
		projectiontest.AppendTo(t, store, "s-a", "test.poison.v1")
		projectiontest.AppendTo(t, store, "s-b", "test.a.v1", "test.b.v1")
		projectiontest.AppendTo(t, store, "s-a", "test.a.v1")
		// A transaction per batch, then (SQLite) transactions over many batches, rolled back
		// and applied again when one meets the refused event.
		cfg := rebuildConfig(store, db)
		cfg.CommitEvery = -1
		mustRebuild(t, cfg, p)
		res := mustRebuild(t, rebuildConfig(store, db), p)
		if res[0].Parked != 2 {
			t.Fatalf("rebuild = %+v, want 2 parked", res[0])
		}
		g1 := projections.TablesFor(p, "g2")
		if n := projectiontest.Count(t, db, `SELECT count(*) FROM projection_parked WHERE table_set = '`+g1.Prefix()+`'`); n != 2 {
			t.Fatalf("%d parked rows", n)
		}
		if n := projectiontest.Count(t, db, `SELECT sum(n) FROM `+g1.Name("counts")); n != 3 {
			t.Fatalf("counted %d", n)
		}
		var msg string
		if err := db.SQL.QueryRow(`SELECT error FROM projection_parked WHERE attempts = 1`).Scan(&msg); err != nil || !strings.Contains(msg, "cannot apply") {
			t.Fatalf("parked error %q %v", msg, err)
		}
	})
}

// Live projection goes on during a rebuild: an event written while the rebuild builds is
// applied by the runner (to the served set) before the rebuild is done, and is in the new
// set after the switch.
func TestLiveProjectionGoesOnDuringARebuild(t *testing.T) {
	projectiontest.ForEachBackend(t, func(t *testing.T, store eventstore.Store, db *projections.DB) {
		ctx := context.Background()
		p := &projectiontest.Counter{}
		for i := range 100 {
			types := make([]string, 20)
			for j := range types {
				types[j] = "test.a.v1"
			}
			projectiontest.AppendTo(t, store, []string{"s-a", "s-b", "s-c", "s-d"}[i%4], types...)
		}
		r := projectiontest.NewRunner(t, projectiontest.RunnerConfig(store, db), p)
		projectiontest.Start(t, r)
		projectiontest.WaitCheckpoint(t, db, p, projectiontest.LastPosition(t, store))

		cfg := rebuildConfig(store, db)
		cfg.Runner = r
		cfg.Batch = 20
		cfg.CommitEvery = -1 // a transaction per batch: the hook after each commit slows it down
		building := make(chan struct{})
		var once sync.Once
		rebuild.AfterBatch(&cfg, func(int64) error {
			once.Do(func() { close(building) })
			time.Sleep(5 * time.Millisecond) // a slow rebuild: about a second
			return nil
		})
		var done atomic.Bool
		result := make(chan error, 1)
		go func() {
			_, err := rebuild.Rebuild(ctx, cfg, p)
			done.Store(true)
			result <- err
		}()
		select {
		case <-building:
		case err := <-result:
			t.Fatalf("the rebuild ended before its first commit: %v", err)
		}
		e := projectiontest.AppendTo(t, store, "s-live", "test.b.v1")[0]
		projectiontest.WaitUntil(t, 30*time.Second, "the live runner to apply an event during the rebuild", func() bool {
			f, err := r.Freshness(ctx, p.Name())
			return err == nil && f.Position >= e.Position
		})
		if done.Load() {
			t.Fatal("the rebuild ended before the live runner applied the new event: make it slower")
		}
		if err := <-result; err != nil {
			t.Fatal(err)
		}
		g1 := projections.TablesFor(p, "g1")
		if n := projectiontest.Count(t, db, `SELECT count(*) FROM `+g1.Name("seen")+` WHERE event_id = '`+e.ID+`'`); n != 1 {
			t.Fatalf("the event written during the rebuild is %d times in the new set", n)
		}
		assertSameAsFresh(t, db, store, p, g1)
	})
}

// On PostgreSQL a set may be built UNLOGGED (no WAL while building); it is made LOGGED before
// it is served.
func TestUnloggedRebuildIsLoggedOnceServed(t *testing.T) {
	projectiontest.ForEachBackend(t, func(t *testing.T, store eventstore.Store, db *projections.DB) {
		for i := range 30 {
			projectiontest.AppendTo(t, store, []string{"s-a", "s-b"}[i%2], "test.a.v1")
		}
		p := &projectiontest.Counter{}
		cfg := rebuildConfig(store, db)
		cfg.Unlogged = true
		mustRebuild(t, cfg, p)
		g1 := projections.TablesFor(p, "g1")
		assertSameAsFresh(t, db, store, p, g1)
		if db.Dialect != projections.Postgres {
			return
		}
		for _, table := range []string{"counts", "seen", "streams"} {
			var persistence string
			if err := db.SQL.QueryRow(`SELECT relpersistence FROM pg_class WHERE oid = to_regclass($1)`, g1.Name(table)).Scan(&persistence); err != nil {
				t.Fatal(err)
			}
			if persistence != "p" {
				t.Fatalf("%s is %q, want logged (p)", g1.Name(table), persistence)
			}
		}
	})
}

// assertVacuumed holds the tables of a rebuilt set on PostgreSQL to having been vacuumed
// (vacuum_count counts the VACUUMs not run by autovacuum). Whether VACUUM could mark a page
// all-visible depends on the transactions of other sessions, so that is not looked at.
func assertVacuumed(t testing.TB, db *projections.DB, set projections.Tables) {
	t.Helper()
	eachTableOfSet(t, db, set, `SELECT relname, vacuum_count FROM pg_stat_user_tables
		WHERE schemaname = current_schema() AND starts_with(relname, $1)`, func(name string, vacuums float64) {
		if vacuums == 0 {
			t.Errorf("table %s of a rebuilt set was not vacuumed", name)
		}
	})
}

// eachTableOfSet runs query, which reads a name and a number per table of the set whose
// prefix is its argument, on PostgreSQL, and checks each row; it fails when there is none.
func eachTableOfSet(t testing.TB, db *projections.DB, set projections.Tables, query string, check func(name string, n float64)) {
	t.Helper()
	if db.Dialect != projections.Postgres {
		return
	}
	rows, err := db.SQL.QueryContext(context.Background(), query, set.Prefix())
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var (
			name  string
			value float64
		)
		if err := rows.Scan(&name, &value); err != nil {
			t.Fatal(err)
		}
		check(name, value)
		n++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatalf("no tables with the prefix %s", set.Prefix())
	}
}

// assertAnalyzed holds the tables of a rebuilt set on PostgreSQL to having statistics
// (reltuples is -1 until a table is analyzed or vacuumed): a set planned without them reads
// twice as slowly.
func assertAnalyzed(t testing.TB, db *projections.DB, set projections.Tables) {
	t.Helper()
	eachTableOfSet(t, db, set, `SELECT c.relname, c.reltuples FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = current_schema() AND c.relkind = 'r' AND starts_with(c.relname, $1)`, func(name string, tuples float64) {
		if tuples < 0 {
			t.Errorf("table %s of a rebuilt set has no statistics", name)
		}
	})
}
