package httpapi

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/eventcrm/crm/projections"
)

// tableImportRuns keeps the imports of every server that shares the read-model database:
// GET /v1/imports/{id} answers on any of them, and after a restart. It is operational state
// beside the read models, never part of a table set: rebuilds leave it alone.
const tableImportRuns = "import_runs"

// importBeat is how often a running import writes its progress (and so shows it is alive).
const importBeat = time.Second

// importStaleAfter is how long a running import may go without writing before it is taken
// for one whose server stopped.
const importStaleAfter = 15 * time.Second

// Import states.
const (
	importRunning = "running"
	importDone    = "done"
	importFailed  = "failed"
)

// errImportInterrupted is the error of an import whose server stopped while it ran.
const errImportInterrupted = "interrupted: the server running this import stopped; the rows imported until then stay, and importing the file again completes it"

// importRuns keeps the imports in the read-model database. A running import of this server
// is answered from memory (its progress of this moment) and written every importBeat.
type importRuns struct {
	db  *projections.DB
	now func() time.Time

	mu    sync.Mutex
	local map[string]*importRun
}

func newImportRuns(ctx context.Context, db *projections.DB) (*importRuns, error) {
	if db == nil {
		return nil, errors.New("imports: no read-model database to keep them in")
	}
	_, err := db.SQL.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+tableImportRuns+` (
		id TEXT PRIMARY KEY, state TEXT NOT NULL, status TEXT NOT NULL,
		started_at BIGINT NOT NULL, beat_at BIGINT NOT NULL)`)
	if err != nil {
		return nil, fmt.Errorf("imports table: %w", err)
	}
	return &importRuns{db: db, now: time.Now, local: map[string]*importRun{}}, nil
}

func (ir *importRuns) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return ir.db.SQL.ExecContext(ctx, ir.db.Dialect.Rebind(query), args...)
}

// add records a new import, running here, and forgets the oldest finished ones beyond
// keptImports.
func (ir *importRuns) add(ctx context.Context, run *importRun) error {
	st := run.snapshot()
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("record import %s: %w", st.ID, err)
	}
	now := ir.now().UnixMicro()
	if _, err := ir.exec(ctx, `INSERT INTO `+tableImportRuns+` (id, state, status, started_at, beat_at) VALUES (?, ?, ?, ?, ?)`,
		st.ID, st.State, string(b), st.StartedAt.UnixMicro(), now); err != nil {
		return fmt.Errorf("record import %s: %w", st.ID, err)
	}
	if _, err := ir.exec(ctx, `DELETE FROM `+tableImportRuns+` WHERE state <> ? AND started_at < (
		SELECT started_at FROM `+tableImportRuns+` ORDER BY started_at DESC, id DESC LIMIT 1 OFFSET ?)`,
		importRunning, keptImports-1); err != nil {
		return fmt.Errorf("forget old imports: %w", err)
	}
	ir.mu.Lock()
	ir.local[st.ID] = run
	ir.mu.Unlock()
	return nil
}

// save writes the import's state as it is now.
func (ir *importRuns) save(ctx context.Context, run *importRun) error {
	st := run.snapshot()
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("record import %s: %w", st.ID, err)
	}
	if _, err := ir.exec(ctx, `UPDATE `+tableImportRuns+` SET state = ?, status = ?, beat_at = ? WHERE id = ?`,
		st.State, string(b), ir.now().UnixMicro(), st.ID); err != nil {
		return fmt.Errorf("record import %s: %w", st.ID, err)
	}
	return nil
}

// follow writes run's progress every importBeat until done is closed, then its end. The end
// is written even when ctx has ended (the server stopping): with a short deadline of its own.
func (ir *importRuns) follow(ctx context.Context, run *importRun, done <-chan struct{}) error {
	tick := time.NewTicker(importBeat)
	defer tick.Stop()
	for {
		select {
		case <-done:
			end, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			err := ir.save(end, run)
			ir.mu.Lock()
			delete(ir.local, run.status.ID)
			ir.mu.Unlock()
			return err
		case <-tick.C:
			if err := ir.save(ctx, run); err != nil && ctx.Err() == nil {
				return err
			}
		}
	}
}

// get returns the import id: this server's running one from memory, any other from the
// table, where one still running whose server has not written for importStaleAfter is
// reported failed.
func (ir *importRuns) get(ctx context.Context, id string) (ImportStatus, bool, error) {
	ir.mu.Lock()
	run, ok := ir.local[id]
	ir.mu.Unlock()
	if ok {
		return run.snapshot(), true, nil
	}
	var status string
	var beat int64
	err := ir.db.SQL.QueryRowContext(ctx, ir.db.Dialect.Rebind(`SELECT status, beat_at FROM `+tableImportRuns+` WHERE id = ?`), id).Scan(&status, &beat)
	if errors.Is(err, sql.ErrNoRows) {
		return ImportStatus{}, false, nil
	}
	if err != nil {
		return ImportStatus{}, false, fmt.Errorf("import %s: %w", id, err)
	}
	var st ImportStatus
	if err := json.Unmarshal([]byte(status), &st); err != nil {
		return ImportStatus{}, false, fmt.Errorf("import %s: %w", id, err)
	}
	if st.State == importRunning && ir.now().Sub(time.UnixMicro(beat)) > importStaleAfter {
		st.State, st.Error = importFailed, errImportInterrupted
	}
	return st, true, nil
}

// noSuchImport is the answer for an import no server knows (or one forgotten).
func noSuchImport(id string) error {
	return notFound("no such import %s (the last %d are kept)", id, keptImports)
}

// remove forgets a finished import (its report may quote values of the file). A running
// one is refused (409).
func (ir *importRuns) remove(ctx context.Context, id string) error {
	st, ok, err := ir.get(ctx, id)
	if err != nil {
		return err
	}
	if !ok {
		return noSuchImport(id)
	}
	if st.State == importRunning {
		return conflict("import %s is still running: remove it once it has ended", id)
	}
	if _, err := ir.exec(ctx, `DELETE FROM `+tableImportRuns+` WHERE id = ?`, id); err != nil {
		return fmt.Errorf("remove import %s: %w", id, err)
	}
	// An import that has just ended is still this server's until follow has written its end:
	// forgotten, it must not be answered from memory meanwhile (the write of its end then
	// finds no row).
	ir.mu.Lock()
	delete(ir.local, id)
	ir.mu.Unlock()
	return nil
}
