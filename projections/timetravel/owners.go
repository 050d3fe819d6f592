package timetravel

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/eventcrm/crm/projections"
)

// On PostgreSQL several servers share the read-model database, and each builds the
// temporary sets its questions need: a set belongs to the server that lists it. Each server
// beats in ownersTable for its sets while it runs (KeepOwned); a temporary set, or a
// snapshot left half built, is dropped only when its owner has not beaten for OwnerTTL (it
// is gone), never because another server started.
const ownersTable = "projection_travel_owners"

// DefaultOwnerTTL is how long a server's temporary sets outlive its last heartbeat.
const DefaultOwnerTTL = 30 * time.Second

func ownersSchema() string {
	return `CREATE TABLE IF NOT EXISTS ` + ownersTable + ` (
		table_set TEXT   PRIMARY KEY,
		node      TEXT   NOT NULL,
		seen_at   BIGINT NOT NULL)`
}

// newNode names this process as an owner of sets.
func newNode() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// own records that this server owns set t, before the set is listed.
func (tt *TimeTravel) own(ctx context.Context, t projections.Tables) error {
	db := tt.cfg.DB
	_, err := db.SQL.ExecContext(ctx, db.Dialect.Rebind(`INSERT INTO `+ownersTable+` (table_set, node, seen_at) VALUES (?, ?, ?)
		ON CONFLICT (table_set) DO UPDATE SET node = excluded.node, seen_at = excluded.seen_at`),
		t.Prefix(), tt.cfg.Node, tt.now().UnixMilli())
	if err != nil {
		return fmt.Errorf("own %s: %w", t.Prefix(), err)
	}
	return nil
}

// disown forgets the owner of set t, once it is dropped.
func (tt *TimeTravel) disown(ctx context.Context, t projections.Tables) error {
	db := tt.cfg.DB
	_, err := db.SQL.ExecContext(ctx, db.Dialect.Rebind(`DELETE FROM `+ownersTable+` WHERE table_set = ?`), t.Prefix())
	if err != nil && !projections.IsNoSuchTable(err) { // sets of an earlier version, before owners
		return fmt.Errorf("disown %s: %w", t.Prefix(), err)
	}
	return nil
}

// beat tells the other servers that this one still owns its sets.
func (tt *TimeTravel) beat(ctx context.Context) error {
	db := tt.cfg.DB
	if _, err := db.SQL.ExecContext(ctx, db.Dialect.Rebind(`UPDATE `+ownersTable+` SET seen_at = ? WHERE node = ?`),
		tt.now().UnixMilli(), tt.cfg.Node); err != nil {
		return fmt.Errorf("time-travel heartbeat: %w", err)
	}
	return nil
}

// orphaned tells whether set t has no living owner: none recorded, or one that has not
// beaten for OwnerTTL.
func (tt *TimeTravel) orphaned(ctx context.Context, t projections.Tables) (bool, error) {
	db := tt.cfg.DB
	var n int
	err := db.SQL.QueryRowContext(ctx, db.Dialect.Rebind(`SELECT count(*) FROM `+ownersTable+` WHERE table_set = ? AND seen_at >= ?`),
		t.Prefix(), tt.now().Add(-tt.cfg.OwnerTTL).UnixMilli()).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("owner of %s: %w", t.Prefix(), err)
	}
	return n == 0, nil
}

// dropOrphans drops the temporary sets and the half-built snapshots whose owner is gone.
func (tt *TimeTravel) dropOrphans(ctx context.Context) error {
	temps, err := tt.listed(ctx, kindTemp)
	if err != nil {
		return err
	}
	snaps, err := tt.listed(ctx, kindSnapshot)
	if err != nil {
		return err
	}
	for _, s := range snaps {
		if s.position < 0 { // a snapshot a crash left half built
			temps = append(temps, s)
		}
	}
	for _, s := range temps {
		gone, err := tt.orphaned(ctx, s.t)
		if err != nil {
			return err
		}
		if !gone {
			continue
		}
		if err := tt.drop(ctx, s.p, s.t); err != nil {
			return err
		}
	}
	return nil
}

// KeepOwned beats for this server's temporary sets and drops those whose owner is gone,
// every OwnerTTL/6, until ctx ends; report, when set, hears of each failure. It does
// nothing when the sets are files of this process (SQLite).
func (tt *TimeTravel) KeepOwned(ctx context.Context, report func(error)) {
	if tt.usesFiles() {
		return
	}
	projections.Every(ctx, tt.cfg.OwnerTTL/6, func() bool {
		err := tt.beat(ctx)
		if err == nil {
			err = tt.dropOrphans(ctx)
		}
		if err != nil && ctx.Err() == nil && report != nil {
			report(err)
		}
		return true
	})
}

func (tt *TimeTravel) now() time.Time {
	if tt.cfg.Now != nil {
		return tt.cfg.Now()
	}
	return time.Now()
}

// ownedHere tells whether this server owns set t.
func (tt *TimeTravel) ownedHere(ctx context.Context, t projections.Tables) (bool, error) {
	db := tt.cfg.DB
	var n int
	err := db.SQL.QueryRowContext(ctx, db.Dialect.Rebind(`SELECT count(*) FROM `+ownersTable+` WHERE table_set = ? AND node = ?`),
		t.Prefix(), tt.cfg.Node).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("owner of %s: %w", t.Prefix(), err)
	}
	return n > 0, nil
}
