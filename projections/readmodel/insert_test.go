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

type first struct {
	owner string
	n     int64
	text  string
}

type echo struct {
	owner, seen string
}

type putEvent struct {
	Owner string `json:"owner"`
	N     int64  `json:"n"`
	Text  string `json:"text"`
	Again string `json:"again"`
}

// newFirsts is a read model that inserts rows (the first one of a key stays) and reads them
// back in the same event: by key, by group, or not at all.
func newFirsts() *readmodel.Model {
	firsts := readmodel.NewTable("firsts", 2,
		readmodel.Text("owner", func(r *first) *string { return &r.owner }),
		readmodel.BigInt("n", func(r *first) *int64 { return &r.n }),
		readmodel.Text("text", func(r *first) *string { return &r.text }))
	echoes := readmodel.NewTable("echoes", 1,
		readmodel.Text("owner", func(r *echo) *string { return &r.owner }),
		readmodel.Text("seen", func(r *echo) *string { return &r.seen }))
	fold := func(e *readmodel.Event, rows *readmodel.Rows) error {
		ev, err := readmodel.Decode[putEvent](e)
		if err != nil {
			return err
		}
		firsts.Insert(rows, first{owner: ev.Owner, n: ev.N, text: ev.Text})
		var seen string
		switch e.Type {
		case "put":
			r, _ := firsts.Get(rows, ev.Owner, ev.N)
			seen = r.text
		case "grouped":
			var all []string
			for _, r := range firsts.Group(rows, ev.Owner) {
				all = append(all, fmt.Sprintf("%d/%s", r.n, r.text))
			}
			seen = strings.Join(all, " ")
		case "twice":
			firsts.Insert(rows, first{owner: ev.Owner, n: ev.N, text: ev.Again})
			return nil
		}
		echoes.Get(rows, ev.Owner)
		echoes.Upsert(rows, echo{owner: ev.Owner, seen: seen})
		return nil
	}
	return readmodel.Define(readmodel.Spec{Name: "firsts", Version: 1,
		Tables: []readmodel.AnyTable{firsts, echoes}, Fold: fold})
}

// An inserted row is added unless one is stored under its key, and a read of the key in the
// same event sees the row that stays: the stored one, or the one inserted. The live path
// writes such an insert without reading the key first.
func TestInsertKeepsTheStoredRowOnBothPaths(t *testing.T) {
	events := projectiontest.MustParseHistory(t, `
2024-01-01T00:00:00Z a put {"owner":"a","n":1,"text":"x"}
2024-01-01T00:00:01Z a put {"owner":"a","n":1,"text":"y"}
2024-01-01T00:00:02Z a grouped {"owner":"a","n":2,"text":"z"}
2024-01-01T00:00:03Z a grouped {"owner":"a","n":1,"text":"w"}
2024-01-01T00:00:04Z b twice {"owner":"b","n":1,"text":"p","again":"q"}
2024-01-01T00:00:05Z b twice {"owner":"b","n":1,"text":"r","again":"s"}
2024-01-01T00:00:06Z b put {"owner":"b","n":1,"text":"t"}
`)
	want := map[string][]string{
		"firsts": {"owner=a | n=1 | text=x", "owner=a | n=2 | text=z", "owner=b | n=1 | text=p"},
		"echoes": {"owner=a | seen=1/x 2/z", "owner=b | seen=p"},
	}
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		ctx := context.Background()
		m := newFirsts()
		t.Run("live", func(t *testing.T) {
			set := projections.TablesFor(m, "live")
			projectiontest.MustApply(t, db, m, set, nil)
			for _, e := range events {
				if _, err := db.Apply(ctx, m, set, []eventstore.Event{e}); err != nil {
					t.Fatalf("apply %d: %v", e.Position, err)
				}
			}
			if got := projectiontest.Dump(t, db, set); !reflect.DeepEqual(got, want) {
				t.Errorf("tables = %v, want %v", got, want)
			}
		})
		for _, size := range []int{1, 2, len(events)} {
			t.Run(fmt.Sprintf("batches of %d", size), func(t *testing.T) {
				set := projections.TablesFor(m, fmt.Sprintf("bulk%d", size))
				projectiontest.MustApply(t, db, m, set, nil)
				for i := 0; i < len(events); i += size {
					if _, err := db.ApplyBatch(ctx, m, set, events[i:min(i+size, len(events))]); err != nil {
						t.Fatal(err)
					}
				}
				if n := parked(t, db, set); n > 0 {
					t.Errorf("%d events parked", n)
				}
				if got := projectiontest.Dump(t, db, set); !reflect.DeepEqual(got, want) {
					t.Errorf("tables = %v, want %v", got, want)
				}
			})
		}
	})
}
