package timetravel_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/timetravel"
)

// A set being built when Forget is called (after an erasure) may hold what was read before
// it: it answers the question it was built for, and the next question builds a set again.
func TestASetBuiltAcrossAForgetIsNotKept(t *testing.T) {
	projectiontest.ForEachBackend(t, func(t *testing.T, store eventstore.Store, db *projections.DB) {
		ctx := context.Background()
		events := projectiontest.AppendTo(t, store, "a", "t.one", "t.two")
		last := events[len(events)-1].Position
		building, resume := make(chan struct{}), make(chan struct{})
		var once sync.Once
		counter := &projectiontest.Counter{Refuse: func(eventstore.Event) error {
			once.Do(func() { close(building); <-resume }) // the first build, in its first event
			return nil
		}}
		tt := openTimeTravel(t, db, store, counter)
		// where names a set: its tables and, on SQLite, its file.
		where := func(ts timetravel.TravelSet) string { return ts.Tables.Prefix() + " in " + ts.DB.Path }
		type built struct {
			where   string
			release func()
			err     error
		}
		done := make(chan built, 1)
		go func() {
			ts, release, err := tt.At(ctx, counter.Name(), last)
			done <- built{where(ts), release, err}
		}()
		select {
		case <-building:
		case <-time.After(time.Minute):
			t.Fatal("no set is built")
		}
		tt.Forget()
		close(resume)
		first := <-done
		if first.err != nil {
			t.Fatal(first.err)
		}
		first.release()
		ts, release, err := tt.At(ctx, counter.Name(), last)
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		if where(ts) == first.where {
			t.Errorf("the set built across Forget (%s) was kept and served again", first.where)
		}
	})
}

// openTimeTravel is time travel over counter alone, without snapshots, closed after the test.
func openTimeTravel(t *testing.T, db *projections.DB, store eventstore.Store, counter *projectiontest.Counter) *timetravel.TimeTravel {
	t.Helper()
	tt, err := timetravel.NewTimeTravel(timetravel.TimeTravelConfig{DB: db, Store: store, Every: 1000, Batch: 10}, counter)
	if err != nil {
		t.Fatal(err)
	}
	if err := tt.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tt.Close(context.Background()) })
	return tt
}
