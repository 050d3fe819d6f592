package timetravel

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// thinned drops, one at a time, the snapshot whose neighbours are closest together, never
// the newest of a read model, until the rest fit the budget.
func TestThinned(t *testing.T) {
	a := &projectiontest.Counter{ProjectionName: "a"}
	b := &projectiontest.Counter{ProjectionName: "b"}
	set := func(p projections.Projection, position, bytes int64) sizedSet {
		return sizedSet{listedSet: listedSet{p: p, position: position}, bytes: bytes}
	}
	tests := []struct {
		name   string
		sets   []sizedSet
		budget int64
		want   []string // dropped, as name@position, in order
	}{
		{"within the budget", []sizedSet{set(a, 10, 5), set(a, 20, 5)}, 10, nil},
		{"no budget at all keeps the newest",
			[]sizedSet{set(a, 10, 5), set(a, 20, 5), set(a, 30, 5)}, 0, []string{"a@10", "a@20"}},
		// Gaps if dropped: a@10 -> 20, a@20 -> 20, a@30 -> 20 (0..40 in steps of 10): the
		// oldest of the tie goes; then a@20 -> 30, a@30 -> 20: a@30.
		{"even steps, oldest first then the closest neighbours",
			[]sizedSet{set(a, 10, 1), set(a, 20, 1), set(a, 30, 1), set(a, 40, 1)}, 2, []string{"a@10", "a@30"}},
		// a@50 sits 10 after a@40: dropping it leaves a gap of 60-40 = 20, the smallest.
		{"a snapshot close to another goes first",
			[]sizedSet{set(a, 20, 1), set(a, 40, 1), set(a, 50, 1), set(a, 60, 1)}, 3, []string{"a@50"}},
		{"across read models, by gap",
			[]sizedSet{set(a, 100, 10), set(a, 200, 10), set(b, 10, 10), set(b, 20, 10), set(b, 30, 10)}, 30,
			[]string{"b@10", "b@20"}},
		{"the newest of each stays even over budget",
			[]sizedSet{set(a, 100, 50), set(b, 100, 50)}, 10, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, s := range thinned(tt.sets, tt.budget) {
				got = append(got, fmt.Sprintf("%s@%d", s.p.Name(), s.position))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("dropped %v, want %v", got, tt.want)
			}
		})
	}
}

// Snapshots taken every 10 positions over 300 events are thinned to half their space, then
// to nothing but the newest: the rest fit the budget, stay spread over the log, and every
// past position still answers exactly (here: the set at n has counted the events up to n).
func TestSnapshotsThinnedToTheirSpace(t *testing.T) {
	projectiontest.ForEachBackend(t, func(t *testing.T, store eventstore.Store, db *projections.DB) {
		ctx := context.Background()
		for i := range 30 {
			types := make([]string, 10)
			for j := range types {
				types[j] = "t.event"
			}
			projectiontest.AppendTo(t, store, fmt.Sprintf("s%d", i), types...)
		}
		events := projectiontest.AllEvents(t, store)
		last := events[len(events)-1].Position
		counter := &projectiontest.Counter{}
		tt, err := NewTimeTravel(TimeTravelConfig{DB: db, Store: store, Every: 10, Batch: 7, Cache: 1}, counter)
		if err != nil {
			t.Fatal(err)
		}
		if err := tt.Init(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tt.Close(context.Background()) })
		if _, err := tt.Snapshot(ctx); err != nil { // Space 0: every one kept
			t.Fatal(err)
		}
		all, err := tt.sizedSnapshots(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := int(last / 10); len(all) != want {
			t.Fatalf("%d snapshots before thinning, want %d", len(all), want)
		}
		sizer, ok := eventstore.DiskSizerOf(store)
		if !ok {
			t.Fatal("the store does not tell its size")
		}
		logSize, err := sizer.DiskSize(ctx)
		if err != nil || logSize <= 0 {
			t.Fatalf("log size %d, %v", logSize, err)
		}
		var total int64
		for _, s := range all {
			total += s.bytes
		}

		tt.cfg.Space = float64(total/2) / float64(logSize)
		if _, err := tt.Snapshot(ctx); err != nil { // nothing new to take: it thins
			t.Fatal(err)
		}
		kept, err := tt.sizedSnapshots(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var keptBytes int64
		positions := []int64{0}
		for _, s := range kept {
			keptBytes += s.bytes
			positions = append(positions, s.position)
		}
		slices.Sort(positions)
		if budget := int64(tt.cfg.Space * float64(logSize)); keptBytes > budget || len(kept) >= len(all) || len(kept) == 0 {
			t.Fatalf("kept %d of %d snapshots, %d bytes, budget %d", len(kept), len(all), keptBytes, budget)
		}
		if positions[len(positions)-1] != (last/10)*10 {
			t.Errorf("the newest snapshot (%d) was dropped: kept %v", (last/10)*10, positions[1:])
		}
		// Spread evenly: no gap wider than twice the even spacing, rounded up to a snapshot.
		even := (last/10*10)/int64(len(kept)) + 10
		for i := 1; i < len(positions); i++ {
			if gap := positions[i] - positions[i-1]; gap > 2*even {
				t.Errorf("a gap of %d between %d and %d (kept %v)", gap, positions[i-1], positions[i], positions[1:])
			}
		}
		assertCounts(t, tt, counter, events, []int64{0, 1, 9, 10, 11, 99, 150, 155, last - 1, last})

		tt.cfg.Space = 1e-9
		if _, err := tt.Snapshot(ctx); err != nil {
			t.Fatal(err)
		}
		kept, err = tt.sizedSnapshots(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(kept) != 1 || kept[0].position != (last/10)*10 {
			t.Fatalf("kept %v, want the newest alone", kept)
		}
		assertCounts(t, tt, counter, events, []int64{3, 42, 201, last})
	})
}

// assertCounts checks that the counter at each position has counted the events up to it.
func assertCounts(t *testing.T, tt *TimeTravel, counter *projectiontest.Counter, events []eventstore.Event, at []int64) {
	t.Helper()
	ctx := context.Background()
	for _, n := range at {
		want := 0
		for _, e := range events {
			if e.Position <= n {
				want++
			}
		}
		ts, release, err := tt.At(ctx, counter.Name(), n)
		if err != nil {
			t.Fatalf("at %d: %v", n, err)
		}
		var seen int
		err = ts.DB.SQL.QueryRowContext(ctx, `SELECT count(*) FROM `+ts.Tables.Name("seen")).Scan(&seen)
		release()
		if err != nil {
			t.Fatalf("count at %d: %v", n, err)
		}
		if seen != want {
			t.Errorf("at %d the set counted %d events, want %d", n, seen, want)
		}
	}
}
