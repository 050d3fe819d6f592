package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/rebuild"
	"github.com/eventcrm/crm/projections/runtime"
	"github.com/eventcrm/crm/projections/timetravel"
)

// purger removes, after an erasure, what was derived from the person's data while the key
// existed: the live read models hold it in their rows (and SQLite in free pages and its WAL),
// time-travel snapshots and temporary sets were built from it, and caches kept it.
type purger struct {
	store  eventstore.Store // the sealed store: a rebuild now reads the person as erased
	db     *projections.DB
	runner *runtime.Runner
	travel *timetravel.TimeTravel
	ps     []projections.Projection
	cmds   *commands.Handler
	// forget drops a contact's keys from this process's memory: another server may have
	// destroyed them, and a rebuild reading through keys kept from before would derive the
	// person's data again.
	forget func(contactID string)
	log    watermill.LoggerAdapter
}

// Purge rebuilds every read model from the log (blue/green: answers go on from the old sets
// until the switch, then the old sets are dropped), drops every time-travel set, empties the
// command cache and, on SQLite, vacuums the read-model file and truncates its WAL, so that no
// page of any file keeps what the rebuilt sets no longer hold.
func (p *purger) Purge(ctx context.Context, contactID string, position int64) error {
	p.forget(contactID)
	p.cmds.DropCache()
	for _, proj := range p.ps {
		if _, err := p.runner.WaitFor(ctx, proj.Name(), position, time.Minute); err != nil {
			return fmt.Errorf("purge after erasing %s: wait for %s: %w", contactID, proj.Name(), err)
		}
	}
	// A rebuild started by someone else holds the lock of its projections: wait for it (its
	// sets may hold the data too, so this rebuild must still run after it).
	for wait := time.Now().Add(time.Hour); ; {
		_, err := rebuild.Rebuild(ctx, rebuild.RebuildConfig{DB: p.db, Store: p.store, Runner: p.runner, Logger: p.log}, p.ps...)
		if err == nil {
			break
		}
		if !errors.Is(err, rebuild.ErrRebuildRunning) || time.Now().After(wait) {
			return fmt.Errorf("purge after erasing %s: rebuild: %w", contactID, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Second):
		}
	}
	if err := p.travel.Purge(ctx); err != nil {
		return fmt.Errorf("purge after erasing %s: %w", contactID, err)
	}
	p.cmds.DropCache()
	if p.db.Path != "" {
		for _, stmt := range []string{"VACUUM", "PRAGMA wal_checkpoint(TRUNCATE)"} {
			if _, err := p.db.SQL.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("purge after erasing %s: %s: %w", contactID, stmt, err)
			}
		}
	}
	p.log.Info("Erasure purged", watermill.LogFields{"contact_id": contactID, "position": position})
	return nil
}
