package httpapi

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/eventcrm/crm/cmd/crm/internal/csvimport"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// TestImportRunsOutliveTheirServer keeps an import's state in the read-model database: a
// server started later on the same database (a restart, or another server behind the same
// load balancer) answers for it; one that was running when its server stopped is reported
// failed once it has not been written for importStaleAfter; an ended one can be forgotten,
// a running one cannot.
func TestImportRunsOutliveTheirServer(t *testing.T) {
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		ctx := context.Background()
		first, err := newImportRuns(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		started := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
		finished := started.Add(time.Minute)
		done := &importRun{status: ImportStatus{ID: "done1", State: importRunning, Actor: "root", StartedAt: started,
			Report: csvimport.Report{Kind: csvimport.Contacts, Problems: []csvimport.Problem{}}}}
		if err := first.add(ctx, done); err != nil {
			t.Fatal(err)
		}
		ended := make(chan struct{})
		followed := make(chan error, 1)
		go func() { followed <- first.follow(ctx, done, ended) }()
		done.mu.Lock()
		done.status.State, done.status.FinishedAt = importDone, &finished
		done.status.Report.Rows, done.status.Report.Created = 3, 2
		done.status.Report.Problems = []csvimport.Problem{{Row: 4, Column: "email", Value: "a@@b", Why: "not an email address"}}
		done.mu.Unlock()
		close(ended)
		if err := <-followed; err != nil {
			t.Fatal(err)
		}
		stopped := &importRun{status: ImportStatus{ID: "stopped1", State: importRunning, Actor: "root", StartedAt: started}}
		if err := first.add(ctx, stopped); err != nil {
			t.Fatal(err)
		}

		// A server that knows neither from memory.
		later, err := newImportRuns(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		st, ok, err := later.get(ctx, "done1")
		if err != nil || !ok {
			t.Fatalf("get done1 = %v, %v", ok, err)
		}
		if st.State != importDone || st.FinishedAt == nil || !st.FinishedAt.Equal(finished) || st.Report.Rows != 3 ||
			st.Report.Created != 2 || len(st.Report.Problems) != 1 || st.Report.Problems[0].Value != "a@@b" {
			t.Errorf("done1 read back as %+v", st)
		}
		if st, ok, err := later.get(ctx, "stopped1"); err != nil || !ok || st.State != importRunning {
			t.Errorf("stopped1 just written = %+v, %v, %v; want running", st, ok, err)
		}
		if err := later.remove(ctx, "stopped1"); !isStatus(err, http.StatusConflict) {
			t.Errorf("remove a running import: %v, want 409", err)
		}
		later.now = func() time.Time { return time.Now().Add(importStaleAfter + time.Second) }
		st, ok, err = later.get(ctx, "stopped1")
		if err != nil || !ok || st.State != importFailed || st.Error != errImportInterrupted {
			t.Errorf("stopped1 after its server went quiet = %+v, %v, %v; want failed, interrupted", st, ok, err)
		}
		if err := later.remove(ctx, "done1"); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := later.get(ctx, "done1"); err != nil || ok {
			t.Errorf("done1 after remove: found %v, %v", ok, err)
		}
		if err := later.remove(ctx, "done1"); !isStatus(err, http.StatusNotFound) {
			t.Errorf("remove done1 twice: %v, want 404", err)
		}
	})
}

// An import that has ended but whose end its server has not written yet (follow has not seen
// it end) is forgotten on request at once: not answered from memory meanwhile, and the late
// write of its end brings nothing back.
func TestImportRunForgottenBeforeItsEndIsWritten(t *testing.T) {
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		ctx := context.Background()
		runs, err := newImportRuns(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		started := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
		run := &importRun{status: ImportStatus{ID: "ended1", State: importRunning, Actor: "root", StartedAt: started}}
		if err := runs.add(ctx, run); err != nil {
			t.Fatal(err)
		}
		run.mu.Lock()
		run.status.State = importDone
		run.mu.Unlock()
		if err := runs.remove(ctx, "ended1"); err != nil {
			t.Fatal(err)
		}
		if st, ok, err := runs.get(ctx, "ended1"); err != nil || ok {
			t.Fatalf("forgotten import = %+v, found %v, %v; want not found", st, ok, err)
		}
		ended := make(chan struct{})
		close(ended)
		if err := runs.follow(ctx, run, ended); err != nil {
			t.Fatal(err)
		}
		if st, ok, err := runs.get(ctx, "ended1"); err != nil || ok {
			t.Fatalf("forgotten import after its end was written = %+v, found %v, %v; want not found", st, ok, err)
		}
	})
}

// TestImportRunsKeepTheLastOnes forgets the oldest ended imports beyond keptImports, never
// a running one.
func TestImportRunsKeepTheLastOnes(t *testing.T) {
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		ctx := context.Background()
		runs, err := newImportRuns(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		base := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
		oldRunning := &importRun{status: ImportStatus{ID: "old-running", State: importRunning, StartedAt: base}}
		if err := runs.add(ctx, oldRunning); err != nil {
			t.Fatal(err)
		}
		for i := range keptImports + 5 {
			run := &importRun{status: ImportStatus{ID: "run" + string(rune('A'+i/26)) + string(rune('a'+i%26)), State: importDone,
				StartedAt: base.Add(time.Duration(i+1) * time.Second)}}
			if err := runs.add(ctx, run); err != nil {
				t.Fatal(err)
			}
		}
		var n int
		if err := db.SQL.QueryRowContext(ctx, `SELECT count(*) FROM `+tableImportRuns).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != keptImports+1 {
			t.Errorf("%d imports kept, want the last %d and the running one", n, keptImports)
		}
		other, err := newImportRuns(ctx, db) // reads the table alone
		if err != nil {
			t.Fatal(err)
		}
		for id, want := range map[string]bool{"old-running": true, "runAa": false, "runAe": false, "runAf": true} {
			if _, ok, err := other.get(ctx, id); err != nil || ok != want {
				t.Errorf("%s kept = %v (%v), want %v", id, ok, err, want)
			}
		}
	})
}

func isStatus(err error, status int) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.p.Status == status
}
