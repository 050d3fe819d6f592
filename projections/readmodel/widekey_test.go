package readmodel_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/readmodel"
)

// marks is a read model whose table has a key of three columns, wider than the kit holds
// as plain values: the third is encoded. Its fold reads a group in key order, with negative
// numbers and texts of several lengths, where an order of encoded bytes would differ.
type marks struct {
	marks  *readmodel.Table[mark]
	totals *readmodel.Table[total]
}

type mark struct {
	owner string
	n     int64
	label string
	value int64
}

type total struct {
	owner  string
	labels string // the labels of the owner's marks, in key order
	sum    int64
}

type markEvent struct {
	Owner string `json:"owner"`
	N     int64  `json:"n"`
	Label string `json:"label"`
	Value int64  `json:"value"`
}

func newMarks() *readmodel.Model {
	m := &marks{
		marks: readmodel.NewTable("marks", 3,
			readmodel.Text("owner", func(r *mark) *string { return &r.owner }),
			readmodel.BigInt("n", func(r *mark) *int64 { return &r.n }),
			readmodel.Text("label", func(r *mark) *string { return &r.label }),
			readmodel.BigInt("value", func(r *mark) *int64 { return &r.value })),
		totals: readmodel.NewTable("totals", 1,
			readmodel.Text("owner", func(r *total) *string { return &r.owner }),
			readmodel.Text("labels", func(r *total) *string { return &r.labels }),
			readmodel.BigInt("sum", func(r *total) *int64 { return &r.sum })),
	}
	return readmodel.Define(readmodel.Spec{Name: "marks", Version: 1,
		Tables: []readmodel.AnyTable{m.marks, m.totals}, Fold: m.fold})
}

func (m *marks) fold(e *readmodel.Event, rows *readmodel.Rows) error {
	ev, err := readmodel.Decode[markEvent](e)
	if err != nil {
		return err
	}
	switch e.Type {
	case "marked":
		value := ev.Value
		if old, ok := m.marks.Get(rows, ev.Owner, ev.N, ev.Label); ok {
			value += old.value
		}
		m.marks.Upsert(rows, mark{owner: ev.Owner, n: ev.N, label: ev.Label, value: value})
	case "unmarked":
		m.marks.Delete(rows, ev.Owner, ev.N, ev.Label)
	case "summed":
		m.totals.Get(rows, ev.Owner) // stored from the second sum on: read, so the batch path upserts it
		t := total{owner: ev.Owner}
		var labels []string
		for _, r := range m.marks.Group(rows, ev.Owner) {
			labels = append(labels, fmt.Sprintf("%d/%s", r.n, r.label))
			t.sum += r.value
		}
		t.labels = strings.Join(labels, " ")
		m.totals.Upsert(rows, t)
	}
	return nil
}

const marksHistory = `
2024-01-01T00:00:00Z a marked {"owner":"a","n":2,"label":"b","value":1}
2024-01-01T00:00:01Z a marked {"owner":"a","n":-1,"label":"zz","value":2}
2024-01-01T00:00:02Z a marked {"owner":"a","n":-300,"label":"x","value":4}
2024-01-01T00:00:03Z a marked {"owner":"a","n":2,"label":"aaa","value":8}
2024-01-01T00:00:04Z a marked {"owner":"a","n":2,"label":"b","value":16}
2024-01-01T00:00:05Z a summed {"owner":"a"}
2024-01-01T00:00:06Z b marked {"owner":"b","n":0,"label":"","value":32}
2024-01-01T00:00:07Z a unmarked {"owner":"a","n":-1,"label":"zz"}
2024-01-01T00:00:08Z a marked {"owner":"a","n":-1,"label":"z","value":64}
2024-01-01T00:00:09Z a summed {"owner":"a"}
2024-01-01T00:00:10Z b summed {"owner":"b"}
2024-01-01T00:00:11Z b unmarked {"owner":"b","n":0,"label":""}
2024-01-01T00:00:12Z b marked {"owner":"b","n":0,"label":"","value":128}
2024-01-01T00:00:13Z a marked {"owner":"a","n":-300,"label":"x","value":256}
`

// Rows keyed by three columns are read, changed and deleted alike on both paths, and a
// group is read in key order: numbers by value, negative ones first, texts bytewise.
func TestWideKeysOnBothPaths(t *testing.T) {
	events := projectiontest.MustParseHistory(t, marksHistory)
	wantTotals := []string{
		"owner=a | labels=-300/x -1/z 2/aaa 2/b | sum=93",
		"owner=b | labels=0/ | sum=32",
	}
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		ctx := context.Background()
		m := newMarks()
		live := projections.TablesFor(m, "live")
		projectiontest.MustApply(t, db, m, live, nil)
		for _, e := range events {
			if _, err := db.Apply(ctx, m, live, []eventstore.Event{e}); err != nil {
				t.Fatalf("apply %d: %v", e.Position, err)
			}
		}
		want := projectiontest.Dump(t, db, live)
		if got := want["totals"]; !reflect.DeepEqual(got, wantTotals) {
			t.Fatalf("live totals = %q, want %q", got, wantTotals)
		}
		for _, size := range []int{1, 2, 5, len(events)} {
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
