package projections_test

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/domain/deal"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/board"
	"github.com/eventcrm/crm/projections/diff"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// boardV2 is a changed board, as an analyst would try it: version 2 no longer takes the
// final amount of a won deal (the deal keeps the amount it was opened with). It has no batch
// path, so the diff builds it with its own Apply.
type boardV2 struct{ board projections.Projection }

func (p boardV2) Name() string { return p.board.Name() }
func (boardV2) Version() int   { return 2 }
func (p boardV2) Schema(d projections.Dialect, t projections.Tables) []string {
	return p.board.Schema(d, t)
}

func (p boardV2) Apply(ctx context.Context, tx *projections.Tx, t projections.Tables, e eventstore.Event) error {
	if e.Type == deal.TypeWon {
		// The old move to won, without the amount update: the deal is won at the amount it
		// had, and the rest of the move is the board's (its intervals and the counts it keeps).
		var ev deal.Won
		if err := decodeJSON(e.Data, &ev); err != nil {
			return err
		}
		err := tx.QueryRow(ctx, `SELECT amount, currency FROM `+t.Name("deals")+` WHERE deal_id = ?`, ev.DealID).
			Scan(&ev.Amount.Amount, &ev.Amount.Currency)
		if err != nil {
			return err
		}
		if e.Data, err = json.Marshal(ev); err != nil {
			return err
		}
	}
	return p.board.Apply(ctx, tx, t, e)
}

// The diff builds the projection's code beside the served set and reports what a switch
// would change: nothing for the same code, the won deals' amounts for the changed code.
// Commands and the live runner go on meanwhile: the comparison is at one position.
func TestDiffReportsWhatAChangedProjectionWouldChange(t *testing.T) {
	projectiontest.ForEachBackend(t, func(t *testing.T, store eventstore.Store, db *projections.DB) {
		ctx := context.Background()
		seed := uint64(time.Now().UnixNano())
		t.Logf("seed %d", seed)
		h := commands.NewHandler(store)
		w := newWorkload(h)
		w.run(ctx, t, rand.New(rand.NewPCG(seed, 1)), 400)
		wonAtAnotherAmount(ctx, t, h) // so that the changed code differs whatever the workload did
		p := board.Projection()
		r := projectiontest.NewRunner(t, projectiontest.RunnerConfig(store, db), p)
		projectiontest.Start(t, r)
		waitAll(t, db, store, []projections.Projection{p})

		var wg sync.WaitGroup
		done := make(chan struct{})
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, 2))
			for {
				select {
				case <-done:
					return
				default:
				}
				w.run(ctx, t, rng, 5)
			}
		})
		defer func() { close(done); wg.Wait() }()

		served, found, err := db.ServedTables(ctx, p.Name())
		if err != nil || !found || served.Tables != projections.TablesFor(p, "") {
			t.Fatalf("served set %+v %v %v", served, found, err)
		}
		same, err := diff.Run(ctx, diff.Config{DB: db, Store: store, Batch: 13}, p, served)
		if err != nil {
			t.Fatal(err)
		}
		if !same.Identical() || same.Position == 0 {
			t.Fatalf("the same code differs: %+v", same)
		}

		changed, err := diff.Run(ctx, diff.Config{DB: db, Store: store, Sample: 3}, boardV2{board.Projection()}, served)
		if err != nil {
			t.Fatal(err)
		}
		// Only deals that were won can differ (some were reopened since).
		var won int64
		for _, e := range projectiontest.AllEvents(t, store) {
			if e.Type == deal.TypeWon && e.Position <= changed.Position {
				won++
			}
		}
		var deals *diff.TableDiff
		for i, td := range changed.Tables {
			if td.Table == "deals" {
				deals = &changed.Tables[i]
			}
			if td.Added != 0 || td.Removed != 0 || td.Missing != "" {
				t.Errorf("table %s: %+v", td.Table, td)
			}
		}
		if deals == nil || deals.Changed == 0 || deals.Changed > won || len(deals.SampleChanged) == 0 || len(deals.SampleChanged) > 3 {
			t.Fatalf("deals diff %+v (%d won deals)", deals, won)
		}
		for _, ch := range deals.SampleChanged {
			if _, ok := ch.Changes["amount"]; !ok || ch.Key["deal_id"] == nil {
				t.Fatalf("changed row %+v: want the amount", ch)
			}
		}
		if changed.Candidate == served.TableSet || projectiontest.TableExists(t, db, changed.Candidate+"deals") || projectiontest.TableExists(t, db, same.Candidate+"deals") {
			t.Fatal("a temporary set was not dropped")
		}
	})
}

func decodeJSON(data []byte, v any) error { return json.Unmarshal(data, v) }

// wonAtAnotherAmount records a deal won at a final amount other than the one it was opened
// with: the row the changed board code of the diff test gets wrong.
func wonAtAnotherAmount(ctx context.Context, t *testing.T, h *commands.Handler) {
	t.Helper()
	c, err := h.CreateContact(ctx, commands.Meta{Actor: "test"}, commands.CreateContact{Name: "Diff Example", Channel: "seminar"})
	if err != nil {
		t.Fatal(err)
	}
	d, err := h.OpenDeal(ctx, commands.Meta{Actor: "test"}, commands.OpenDeal{ContactID: c.ID, Title: "Diff", Amount: 1000, Currency: "JPY"})
	if err != nil {
		t.Fatal(err)
	}
	final := int64(1500)
	if _, err := h.WinDeal(ctx, commands.Meta{Actor: "test"}, commands.WinDeal{DealID: d.ID, Amount: &final}); err != nil {
		t.Fatal(err)
	}
}
