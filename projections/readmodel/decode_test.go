package readmodel_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/readmodel"
)

type counter struct {
	id string
	n  int64
}

type amountOnly struct {
	Amount int64 `json:"amount"`
}

// newCounters is a read model whose fold decodes each event as two types, and reads a row
// only for some: a batch keeps what it needs of each event (its data, once decoded, is let
// go) and still folds every event again after loading what it missed.
func newCounters() *readmodel.Model {
	counters := readmodel.NewTable("counters", 1,
		readmodel.Text("id", func(r *counter) *string { return &r.id }),
		readmodel.BigInt("n", func(r *counter) *int64 { return &r.n }))
	fold := func(e *readmodel.Event, rows *readmodel.Rows) error {
		if e.Type == "ignored" {
			return nil
		}
		ev, err := readmodel.Decode[ledgerEvent](e)
		if err != nil {
			return err
		}
		amount, err := readmodel.Decode[amountOnly](e)
		if err != nil {
			return err
		}
		c, _ := counters.Get(rows, ev.Account)
		c.id = ev.Account
		c.n += amount.Amount
		counters.Upsert(rows, c)
		return nil
	}
	return readmodel.Define(readmodel.Spec{Name: "counters", Version: 1,
		Tables: []readmodel.AnyTable{counters}, Fold: fold})
}

// Events decoded as two types, and events the fold ignores, fold alike on both paths.
func TestBatchesKeepWhatTheFoldNeeds(t *testing.T) {
	events := projectiontest.MustParseHistory(t, `
2024-01-01T00:00:00Z a counted {"account":"a","amount":1}
2024-01-01T00:00:01Z a ignored {"account":"a","amount":100}
2024-01-01T00:00:02Z a counted {"account":"a","amount":2}
2024-01-01T00:00:03Z b counted {"account":"b","amount":4}
2024-01-01T00:00:04Z a counted {"account":"a","amount":8}
2024-01-01T00:00:05Z b ignored {"account":"b","amount":100}
2024-01-01T00:00:06Z b counted {"account":"b","amount":16}
`)
	want := []string{"id=a | n=11", "id=b | n=20"}
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		ctx := context.Background()
		m := newCounters()
		for _, size := range []int{1, 2, 3, len(events)} {
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
				if got := projectiontest.Dump(t, db, set)["counters"]; !reflect.DeepEqual(got, want) {
					t.Errorf("counters = %q, want %q", got, want)
				}
			})
		}
	})
}
