package projections_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/churn"
	"github.com/eventcrm/crm/projections/diff"
	"github.com/eventcrm/crm/projections/journey"
	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/timetravel"
)

// TestTimeTravelEqualsRebuildStoppedThere holds time travel to its definition: the read
// model at position N is what a build from nothing, stopped at N, holds. Random positions
// of a random history, snapshots every few events, a small cache (so sets are evicted and
// built again), both backends.
func TestTimeTravelEqualsRebuildStoppedThere(t *testing.T) {
	projectiontest.ForEachBackend(t, func(t *testing.T, store eventstore.Store, db *projections.DB) {
		seed := uint64(time.Now().UnixNano())
		t.Logf("seed %d", seed)
		rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
		ctx := context.Background()
		w := newWorkload(commands.NewHandler(store))
		var wg sync.WaitGroup
		for i := range 3 {
			r := rand.New(rand.NewPCG(seed+uint64(i)+1, uint64(i)))
			wg.Go(func() { w.run(ctx, t, r, 120) })
		}
		wg.Wait()
		events := projectiontest.AllEvents(t, store)
		last := events[len(events)-1].Position
		t.Logf("%d events", len(events))

		ps := readModels()
		every := int64(20 + rng.IntN(60))
		tt, err := timetravel.NewTimeTravel(timetravel.TimeTravelConfig{DB: db, Store: store, Every: every,
			Batch: 1 + rng.IntN(50), Cache: 2}, ps...)
		if err != nil {
			t.Fatal(err)
		}
		if err := tt.Init(ctx); err != nil {
			t.Fatal(err)
		}
		// Half the snapshots first, the rest later: Snapshot continues from the last one.
		taken, err := tt.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := int(last/every) * len(ps); taken != want {
			t.Fatalf("took %d snapshots every %d up to %d, want %d", taken, every, last, want)
		}
		positions := []int64{0, last, last + 10, every, every + 1}
		for range 8 {
			positions = append(positions, rng.Int64N(last+1))
		}
		positions = append(positions, positions[len(positions)-1]) // a cached set
		for i, n := range positions {
			for _, p := range ps {
				ts, release, err := tt.At(ctx, p.Name(), n)
				if err != nil {
					t.Fatalf("%s at %d: %v", p.Name(), n, err)
				}
				if want := min(n, last); ts.Position != want || ts.Head != last {
					t.Fatalf("%s at %d: position %d head %d, want %d and %d", p.Name(), n, ts.Position, ts.Head, want, last)
				}
				ref := buildTo(t, db, p, "ref"+strconv.Itoa(i), events, n)
				assertSameRowsIn(t, p, db, ref, ts.DB, ts.Tables)
				assertSameAnswers(t, p, ts, db, ref, []time.Time{events[rng.IntN(len(events))].OccurredAt})
				release()
			}
		}
		if err := tt.Close(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// buildTo applies the events up to position n, one by one, to a fresh set.
func buildTo(t testing.TB, db *projections.DB, p projections.Projection, set string, events []eventstore.Event, n int64) projections.Tables {
	t.Helper()
	ctx := context.Background()
	tables := projections.TablesFor(p, set)
	if err := db.EnsureSchema(ctx, p, tables); err != nil {
		t.Fatal(err)
	}
	var upTo []eventstore.Event
	for _, e := range events {
		if e.Position <= n {
			upTo = append(upTo, e)
		}
	}
	if _, err := db.Apply(ctx, p, tables, upTo); err != nil {
		t.Fatalf("build %s to %d: %v", set, n, err)
	}
	return tables
}

// assertSameRowsIn holds set a of database dbA and set b of database dbB to the same rows
// (both may be empty). When they are in one database, the failure lists a sample of rows.
func assertSameRowsIn(t testing.TB, p projections.Projection, dbA *projections.DB, a projections.Tables, dbB *projections.DB, b projections.Tables) {
	t.Helper()
	ctx := context.Background()
	da, err := diff.Digest(ctx, dbA, p, a)
	if err != nil {
		t.Fatal(err)
	}
	dbb, err := diff.Digest(ctx, dbB, p, b)
	if err != nil {
		t.Fatal(err)
	}
	same := len(da) == len(dbb)
	for table, d := range da {
		if dbb[table] != d {
			same = false
			t.Errorf("table %s: %+v in %s, %+v in %s", table, d, a.Prefix(), dbb[table], b.Prefix())
		}
	}
	if same {
		return
	}
	if dbA == dbB {
		reportDiff(t, dbA, p, a, b)
	}
	t.Fatalf("%s and %s differ", a.Prefix(), b.Prefix())
}

// assertSameAnswers holds the answers of p (the journey map or the churn points; nothing for
// others) read from the time-travel set ts, whose statements run side by side, to those read
// from the reference set ref of db in one transaction: at the present and as of each asOf.
func assertSameAnswers(t testing.TB, p projections.Projection, ts timetravel.TravelSet, db *projections.DB, ref projections.Tables, asOfs []time.Time) {
	t.Helper()
	ctx := context.Background()
	same := func(what string, got, want any, errGot, errWant error) {
		t.Helper()
		if errGot != nil || errWant != nil {
			t.Fatalf("%s: %v / %v", what, errGot, errWant)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s of the time-travel set:\n%+v\nof the reference:\n%+v", what, got, want)
		}
	}
	switch p.Name() {
	case journey.Name:
		params := []journey.Params{{}, {ByStage: true}}
		for _, asOf := range asOfs {
			params = append(params, journey.Params{AsOf: asOf, ByStage: true})
		}
		for _, q := range params {
			got, errGot := journey.Query(ctx, ts.DB, ts.Tables, q)
			want, errWant := journey.Query(ctx, db, ref, q)
			same(fmt.Sprintf("journey map %+v", q), got, want, errGot, errWant)
		}
	case churn.Name:
		for _, asOf := range asOfs {
			got, errGot := churn.Query(ctx, ts.DB, ts.Tables, churn.Params{AsOf: asOf})
			want, errWant := churn.Query(ctx, db, ref, churn.Params{AsOf: asOf})
			same(fmt.Sprintf("churn points as of %v", asOf), got, want, errGot, errWant)
		}
		// As of the end of time: the counts kept by the fold answer.
		end := time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
		got, errGot := churn.Query(ctx, ts.DB, ts.Tables, churn.Params{AsOf: end})
		want, errWant := churn.Query(ctx, db, ref, churn.Params{AsOf: end})
		same("churn points now", got, want, errGot, errWant)
	}
}

// TestPositionAt: known_at finds the last position recorded by then.
func TestPositionAt(t *testing.T) {
	projectiontest.ForEachBackend(t, func(t *testing.T, store eventstore.Store, db *projections.DB) {
		ctx := context.Background()
		for range 5 {
			projectiontest.AppendTo(t, store, "contact-"+projectiontest.NewID(), "contact.created.v1", "contact.details_changed.v1")
			time.Sleep(3 * time.Millisecond)
		}
		events := projectiontest.AllEvents(t, store)
		tt, err := timetravel.NewTimeTravel(timetravel.TimeTravelConfig{DB: db, Store: store}, readModels()...)
		if err != nil {
			t.Fatal(err)
		}
		at := func(when time.Time) int64 {
			n, err := tt.PositionAt(ctx, when)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		if n := at(events[0].RecordedAt.Add(-time.Second)); n != 0 {
			t.Fatalf("before the first event: %d", n)
		}
		for i, e := range events {
			want := e.Position
			// Events appended together share their recorded time: the last of them counts.
			for j := i + 1; j < len(events) && events[j].RecordedAt.Equal(e.RecordedAt); j++ {
				want = events[j].Position
			}
			if n := at(e.RecordedAt); n != want {
				t.Fatalf("at %v (event %d): %d, want %d", e.RecordedAt, e.Position, n, want)
			}
		}
	})
}
