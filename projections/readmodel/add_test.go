package readmodel_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/readmodel"
)

// tally is a read model of counters kept with Add: a count and a sum per (owner, day), added
// to and taken from without reading them; a row is deleted, and one read back, by the events
// that say so.
type tally struct {
	counts *readmodel.Table[count]
	peeks  *readmodel.Table[peek]
}

type count struct {
	owner  string
	day    int64
	n, sum int64
}

type peek struct {
	position int64
	n, sum   int64
}

func newTally() *readmodel.Model {
	tl := &tally{
		counts: newCounts(),
		peeks: readmodel.NewTable("peeks", 1,
			readmodel.Position("position", func(r *peek) *int64 { return &r.position }),
			readmodel.Integer("n", func(r *peek) *int64 { return &r.n }),
			readmodel.BigInt("sum", func(r *peek) *int64 { return &r.sum })),
	}
	return readmodel.Define(readmodel.Spec{Name: "tally", Version: 1,
		Tables: []readmodel.AnyTable{tl.counts, tl.peeks}, Fold: tl.fold})
}

func newCounts() *readmodel.Table[count] {
	return readmodel.NewTable("counts", 2,
		readmodel.Text("owner", func(r *count) *string { return &r.owner }),
		readmodel.Integer("day", func(r *count) *int64 { return &r.day }),
		readmodel.Integer("n", func(r *count) *int64 { return &r.n }),
		readmodel.BigInt("sum", func(r *count) *int64 { return &r.sum })).
		Clustered()
}

type tallyEvent struct {
	Owner  string `json:"owner"`
	Day    int64  `json:"day"`
	Amount int64  `json:"amount"`
}

func (tl *tally) fold(e *readmodel.Event, rows *readmodel.Rows) error {
	ev, err := readmodel.Decode[tallyEvent](e)
	if err != nil {
		return err
	}
	switch e.Type {
	case "counted":
		// Twice, so that additions to one key in one event merge too.
		tl.counts.Add(rows, count{owner: ev.Owner, day: ev.Day, n: 1})
		tl.counts.Add(rows, count{owner: ev.Owner, day: ev.Day, sum: ev.Amount})
	case "uncounted":
		tl.counts.Add(rows, count{owner: ev.Owner, day: ev.Day, n: -1, sum: -ev.Amount})
	case "reset":
		tl.counts.Delete(rows, ev.Owner, ev.Day)
	case "restarted":
		// Read, upserted, then added to: the addition is made to the upserted row.
		c, _ := tl.counts.Get(rows, ev.Owner, ev.Day)
		tl.counts.Upsert(rows, count{owner: ev.Owner, day: ev.Day, n: 100, sum: c.sum})
		tl.counts.Add(rows, count{owner: ev.Owner, day: ev.Day, n: 1, sum: ev.Amount})
	case "peeked":
		// Added to, then read: the stored row with the additions.
		tl.counts.Add(rows, count{owner: ev.Owner, day: ev.Day, n: 1, sum: ev.Amount})
		c, _ := tl.counts.Get(rows, ev.Owner, ev.Day)
		tl.peeks.Upsert(rows, peek{position: e.Position, n: c.n, sum: c.sum})
	}
	return nil
}

const tallyHistory = `
2024-01-01T00:00:00Z a counted {"owner":"ann","day":1,"amount":10}
2024-01-01T00:00:01Z a counted {"owner":"ann","day":1,"amount":5}
2024-01-01T00:00:02Z b counted {"owner":"bob","day":1,"amount":7}
2024-01-01T00:00:03Z b uncounted {"owner":"bob","day":1,"amount":7}
2024-01-01T00:00:04Z a peeked {"owner":"ann","day":1,"amount":1}
2024-01-01T00:00:05Z c uncounted {"owner":"cid","day":2,"amount":3}
2024-01-01T00:00:06Z c counted {"owner":"cid","day":2,"amount":3}
2024-01-01T00:00:07Z a reset {"owner":"ann","day":1}
2024-01-01T00:00:08Z a counted {"owner":"ann","day":1,"amount":2}
2024-01-01T00:00:09Z b restarted {"owner":"bob","day":1,"amount":4}
2024-01-01T00:00:10Z b counted {"owner":"bob","day":1,"amount":1}
2024-01-01T00:00:11Z d peeked {"owner":"dan","day":3,"amount":9}
2024-01-01T00:00:12Z a counted {"owner":"ann","day":1,"amount":3}
`

// Rows kept with Add end the same on both paths, in batches of any size, without falling
// back to the live path: additions merge in memory, a row that comes back to zero stays, and
// a Get of a key added to sees the stored row with the additions.
func TestAddBatchPathEqualsLivePath(t *testing.T) {
	events := projectiontest.MustParseHistory(t, tallyHistory)
	wantLive := map[string][]string{
		"counts": {
			"owner=ann | day=1 | n=2 | sum=5",
			"owner=bob | day=1 | n=102 | sum=5",
			"owner=cid | day=2 | n=0 | sum=0",
			"owner=dan | day=3 | n=1 | sum=9",
		},
		"peeks": {
			"position=12 | n=1 | sum=9",
			"position=5 | n=3 | sum=16",
		},
	}
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		ctx := context.Background()
		m := newTally()
		live := projections.TablesFor(m, "live")
		projectiontest.MustApply(t, db, m, live, nil)
		for _, e := range events {
			if _, err := db.Apply(ctx, m, live, []eventstore.Event{e}); err != nil {
				t.Fatalf("apply %d: %v", e.Position, err)
			}
		}
		want := projectiontest.Dump(t, db, live)
		if !reflect.DeepEqual(want, wantLive) {
			t.Fatalf("live tables =\n%v\nwant\n%v", want, wantLive)
		}
		for size := 1; size <= len(events); size++ {
			t.Run(fmt.Sprintf("batches of %d", size), func(t *testing.T) {
				set := projections.TablesFor(m, fmt.Sprintf("bulk%d", size))
				projectiontest.MustApply(t, db, m, set, nil)
				for i := 0; i < len(events); i += size {
					if _, err := db.ApplyBatch(ctx, batchOnly{m}, set, events[i:min(i+size, len(events))]); err != nil {
						t.Fatal(err)
					}
				}
				if n := parked(t, db, set); n > 0 {
					t.Errorf("%d events left to the live path", n)
				}
				if got := projectiontest.Dump(t, db, set); !reflect.DeepEqual(got, want) {
					t.Errorf("batch path differs from the live path\n--- batch\n%v\n--- live\n%v", got, want)
				}
			})
		}
	})
}

// Add is for counters, and a table counted with Add is not read by group: a fold that breaks
// either rule panics, in its first pass over a batch.
func TestAddMisusePanics(t *testing.T) {
	type named struct{ id, name string }
	names := readmodel.NewTable("named", 1,
		readmodel.Text("id", func(r *named) *string { return &r.id }),
		readmodel.Text("name", func(r *named) *string { return &r.name }))
	counts := newCounts()
	tests := []struct {
		name   string
		tables []readmodel.AnyTable
		fold   func(e *readmodel.Event, rows *readmodel.Rows) error
	}{
		{"add to a table without counters", []readmodel.AnyTable{names}, func(e *readmodel.Event, rows *readmodel.Rows) error {
			names.Add(rows, named{id: e.Stream, name: "x"})
			return nil
		}},
		{"group of a group added to", []readmodel.AnyTable{counts}, func(e *readmodel.Event, rows *readmodel.Rows) error {
			counts.Add(rows, count{owner: e.Stream, day: 1, n: 1})
			counts.Group(rows, e.Stream)
			return nil
		}},
	}
	events := projectiontest.MustParseHistory(t, `2024-01-01T00:00:00Z a happened {}`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := readmodel.Define(readmodel.Spec{Name: "misuse", Version: 1, Tables: tt.tables, Fold: tt.fold})
			defer func() {
				if r := recover(); r == nil {
					t.Error("the fold did not panic")
				}
			}()
			_, _ = m.PrepareBatch(projections.NewBatch(events))
		})
	}
}

// On PostgreSQL, a table of counters leaves room on its pages for updates that add no index
// entry; a table of rows of one event each (keyed by position) does not.
func TestCountersLeaveRoomForUpdates(t *testing.T) {
	ctx := context.Background()
	db := projectiontest.Postgres(t)
	m := newTally()
	set := projections.TablesFor(m, "")
	for _, s := range m.Schema(db.Dialect, set) {
		if _, err := db.SQL.ExecContext(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	for table, want := range map[string]string{"counts": "fillfactor=70", "peeks": ""} {
		var got string
		err := db.SQL.QueryRowContext(ctx, `SELECT COALESCE(array_to_string(reloptions, ','), '') FROM pg_class WHERE oid = to_regclass($1)`,
			set.Name(table)).Scan(&got)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s: options %q, want %q", table, got, want)
		}
	}
}

// sliceLog is a log of events held in memory: what a builder reads.
type sliceLog struct {
	eventstore.Store // nil: the builder reads with ReadAll only
	events           []eventstore.Event
}

func (l sliceLog) ReadAll(_ context.Context, after int64, limit int) ([]eventstore.Event, error) {
	var out []eventstore.Event
	for _, e := range l.events {
		if e.Position > after && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}

// A builder that writes a set from empty writes the counters it adds to for the first time
// as new rows (copied in on PostgreSQL), and merges only those written by an earlier batch:
// in batches of any size, the tables end as the live path leaves them, without falling back
// to it (a key taken for new but stored would fail the batch, which would park its events).
// The history adds to keys after a batch upserted or deleted them, and reads them back.
func TestAddFreshBuildEqualsLivePath(t *testing.T) {
	events := projectiontest.MustParseHistory(t, tallyHistory)
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		ctx := context.Background()
		m := newTally()
		live := projections.TablesFor(m, "live")
		projectiontest.MustApply(t, db, m, live, events)
		want := projectiontest.Dump(t, db, live)
		for size := 1; size <= len(events); size++ {
			t.Run(fmt.Sprintf("batches of %d", size), func(t *testing.T) {
				set := projections.TablesFor(m, fmt.Sprintf("fresh%d", size))
				tg := projections.NewTarget(batchOnly{m}, set)
				b := &projections.Builder{DB: db, Store: sliceLog{events: events}, Batch: size, Now: time.Now,
					Targets: []*projections.Target{tg}}
				if err := b.Open(ctx); err != nil {
					t.Fatal(err)
				}
				defer b.Close()
				if _, err := b.CreateSet(ctx, tg, false); err != nil {
					t.Fatal(err)
				}
				if err := b.Load(ctx, tg); err != nil {
					t.Fatal(err)
				}
				if err := b.Run(ctx, 0); err != nil {
					t.Fatal(err)
				}
				if n := parked(t, db, set); n > 0 {
					t.Errorf("%d events left to the live path", n)
				}
				if got := projectiontest.Dump(t, db, set); !reflect.DeepEqual(got, want) {
					t.Errorf("fresh build differs from the live path\n--- build\n%v\n--- live\n%v", got, want)
				}
			})
		}
	})
}
