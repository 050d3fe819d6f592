package timetravel_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/timetravel"
)

// A snapshot build that meets a lock held by another transaction (here a lock on the
// snapshot it copies; in a cluster, another server's drop queued behind a build) gives up
// after projections.LockTimeout with ErrLockTimeout instead of waiting for as long as the
// holder pleases, leaves no half-built set, and is taken by the next round once the lock is
// gone.
func TestSnapshotBuildGivesUpOnAHeldLockAndIsTakenLater(t *testing.T) {
	ran := false
	for _, b := range projectiontest.Backends() {
		if b.Name != "postgres" {
			continue
		}
		ran = true
		st, d := b.Open(t)
		p := &projectiontest.Counter{}
		ctx := context.Background()
		for range 3 {
			projectiontest.AppendTo(t, st, "s-a", "test.a.v1")
		}
		tt, err := timetravel.NewTimeTravel(timetravel.TimeTravelConfig{DB: d, Store: st, Every: 2, Node: "a"}, p)
		if err != nil {
			t.Fatal(err)
		}
		if err := tt.Init(ctx); err != nil {
			t.Fatal(err)
		}
		if taken, err := tt.Snapshot(ctx); err != nil || taken != 1 {
			t.Fatalf("first snapshot: %d, %v", taken, err)
		}
		for range 2 {
			projectiontest.AppendTo(t, st, "s-a", "test.a.v1")
		}

		// Another transaction holds the snapshot at 2, which the one at 4 is built from.
		hold, err := d.SQL.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer hold.Rollback() //nolint:errcheck
		base := projections.TablesFor(p, "s2").Name("counts")
		if _, err := hold.ExecContext(ctx, `LOCK TABLE `+base+` IN ACCESS EXCLUSIVE MODE`); err != nil {
			t.Fatal(err)
		}
		// Far longer than LockTimeout: without a bound the build would still be waiting.
		bounded, cancel := context.WithTimeout(ctx, time.Minute)
		_, err = tt.Snapshot(bounded)
		cancel()
		if !errors.Is(err, projections.ErrLockTimeout) {
			t.Fatalf("snapshot with its base locked: %v, want %v", err, projections.ErrLockTimeout)
		}
		t.Logf("the build gave up: %v", err)
		if err := hold.Rollback(); err != nil {
			t.Fatal(err)
		}
		if n := projectiontest.Count(t, d, `SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = '`+projections.TablesFor(p, "s4").Name("counts")+`'`); n != 0 {
			t.Errorf("%d tables of the failed snapshot left", n)
		}

		// The next round takes it.
		if taken, err := tt.Snapshot(ctx); err != nil || taken != 1 {
			t.Fatalf("snapshot once the lock is gone: %d, %v", taken, err)
		}
		set, release, err := tt.At(ctx, p.Name(), 4)
		if err != nil {
			t.Fatal(err)
		}
		if n := projectiontest.Count(t, d, `SELECT coalesce(sum(n), 0) FROM `+set.Tables.Name("counts")); n != 4 {
			t.Errorf("the read model at 4 counts %d events", n)
		}
		release()
		if err := tt.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if !ran {
		t.Fatal("no postgres backend")
	}
}
