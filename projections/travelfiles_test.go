package projections_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/churn"
	"github.com/eventcrm/crm/projections/journey"
	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/timetravel"
)

// TestTimeTravelFiles follows the files of time travel on SQLite: a snapshot file every
// Every positions, a temporary file per position asked for while it is cached, none left
// after Close; and a start after a crash removes what the stopped process left (unfinished
// snapshots, temporary sets with their journals, snapshots of another version, and the
// snapshot tables an earlier release kept in the read-model database), keeping the
// snapshots and anything that is not time travel's.
// temporaryFile is the name of a temporary set's file (a snapshot's has _s<position>).
var temporaryFile = regexp.MustCompile(`_v\d+_t[0-9a-f]+\.db$`)

func TestTimeTravelFiles(t *testing.T) {
	store, db := projectiontest.Backends()[0].Open(t) // SQLite
	ctx := context.Background()
	w := newWorkload(commands.NewHandler(store))
	w.run(ctx, t, rand.New(rand.NewPCG(7, 8)), 40)
	events := projectiontest.AllEvents(t, store)
	last := events[len(events)-1].Position
	const every = 10
	ps := readModels()
	dir := t.TempDir()
	open := func() *timetravel.TimeTravel {
		tt, err := timetravel.NewTimeTravel(timetravel.TimeTravelConfig{DB: db, Store: store, Every: every, Cache: 1, Dir: dir}, ps...)
		if err != nil {
			t.Fatal(err)
		}
		if err := tt.Init(ctx); err != nil {
			t.Fatal(err)
		}
		return tt
	}
	files := func() []string {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return names
	}
	temps := func() []string {
		var out []string
		for _, name := range files() {
			// <projection>_v<version>_t<random hex>.db: a name such as contact_timeline's
			// holds "_t" too.
			if temporaryFile.MatchString(name) {
				out = append(out, name)
			}
		}
		return out
	}
	var snapshots []string
	for _, p := range ps {
		for n := int64(every); n <= last; n += every {
			snapshots = append(snapshots, fmt.Sprintf("%s_v%d_s%d.db.zst", p.Name(), p.Version(), n))
		}
	}
	slices.Sort(snapshots)

	tt := open()
	if _, err := tt.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	if got := files(); !slices.Equal(got, snapshots) {
		t.Fatalf("files after the snapshots:\n%v\nwant\n%v", got, snapshots)
	}
	ts, release, err := tt.At(ctx, journey.Name, last-3)
	if err != nil {
		t.Fatal(err)
	}
	if ts.DB == db || ts.DB.Path == "" || filepath.Dir(ts.DB.Path) != dir {
		t.Fatalf("the set at %d is not in a file of its own in %s: %q", last-3, dir, ts.DB.Path)
	}
	if got := temps(); len(got) != 1 || filepath.Join(dir, got[0]) != ts.DB.Path {
		t.Fatalf("temporary files %v, want the set's %s", got, ts.DB.Path)
	}
	release()
	// Cache 1: the next position evicts the first set.
	_, release, err = tt.At(ctx, journey.Name, last-5)
	if err != nil {
		t.Fatal(err)
	}
	// A set still read at Close is dropped when released; a closed time travel answers no
	// more questions.
	if err := tt.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := temps(); len(got) != 1 {
		t.Fatalf("temporary files while a set is read after Close: %v, want it alone", got)
	}
	release()
	if _, _, err := tt.At(ctx, journey.Name, last-7); err == nil {
		t.Fatal("a closed time travel answered")
	}
	if got := files(); !slices.Equal(got, snapshots) {
		t.Fatalf("files after Close:\n%v\nwant the snapshots only", got)
	}

	// What a crash leaves.
	p := journey.Projection()
	left := []string{
		fmt.Sprintf("%s_v%d_s%d.db.part", p.Name(), p.Version(), 2*every*1000),
		fmt.Sprintf("%s_v%d_s%d.db.part-journal", p.Name(), p.Version(), 2*every*1000),
		fmt.Sprintf("%s_v%d_tdeadbeef.db", p.Name(), p.Version()),
		fmt.Sprintf("%s_v%d_tdeadbeef.db-journal", p.Name(), p.Version()),
		fmt.Sprintf("%s_v%d_s%d.db", p.Name(), p.Version()+1, every),
	}
	kept := "notes.txt"
	for _, name := range append(left, kept) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("left"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	legacy := projections.TablesFor(p, "s10")
	if err := db.EnsureSchema(ctx, p, legacy); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SQL.ExecContext(ctx, `CREATE TABLE projection_snapshots (table_set TEXT PRIMARY KEY, projection TEXT NOT NULL,
		version INTEGER NOT NULL, kind TEXT NOT NULL, position BIGINT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SQL.ExecContext(ctx, `INSERT INTO projection_snapshots VALUES (?, ?, ?, 'snapshot', 10)`,
		legacy.Prefix(), p.Name(), p.Version()); err != nil {
		t.Fatal(err)
	}

	tt = open()
	defer tt.Close(ctx)
	want := slices.Sorted(slices.Values(append(slices.Clone(snapshots), kept)))
	if got := files(); !slices.Equal(got, want) {
		t.Fatalf("files after a restart:\n%v\nwant\n%v", got, want)
	}
	var tables int
	if err := db.SQL.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table'
		AND (name = 'projection_snapshots' OR substr(name, 1, ?) = ?)`, len(legacy.Prefix()), legacy.Prefix()).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 0 {
		t.Fatalf("%d snapshot tables of the read-model database left after a restart", tables)
	}
	// The snapshots kept serve: a set at a position is built from them, exactly.
	ts, release, err = tt.At(ctx, journey.Name, last-1)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	ref := buildTo(t, db, p, "ref", events, last-1)
	assertSameRowsIn(t, p, db, ref, ts.DB, ts.Tables)
	// A temporary set is only read once built: the journey map and the churn points run
	// their statements side by side there, and answer as from the reference.
	if !ts.DB.Frozen() || db.Frozen() {
		t.Fatalf("frozen: temporary set %v, read models %v", ts.DB.Frozen(), db.Frozen())
	}
	asOfs := []time.Time{events[len(events)/2].OccurredAt, events[len(events)-1].OccurredAt.Add(24 * time.Hour)}
	m, err := journey.Query(ctx, db, ref, journey.Params{})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.ByPhase.Steps) == 0 || m.ByPhase.Steps[0].Entered == 0 || len(m.ByPhase.TouchpointMix) == 0 {
		t.Fatalf("journey map: nobody entered, or no touchpoints: %+v", m)
	}
	assertSameAnswers(t, p, ts, db, ref, asOfs)
	cs, release, err := tt.At(ctx, churn.Name, last-1)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	assertSameAnswers(t, churn.Projection(), cs, db, buildTo(t, db, churn.Projection(), "ref", events, last-1), asOfs)
}
