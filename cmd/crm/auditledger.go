package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"go.uber.org/zap"

	"github.com/eventcrm/crm/cmd/crm/internal/config"
	"github.com/eventcrm/crm/cmd/crm/internal/httpapi"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/audit"
	"github.com/eventcrm/crm/eventstore/postgres"
	"github.com/eventcrm/crm/eventstore/sqlite"
)

// Files of the audit trail in the data directory, beside audit.key.
const (
	auditTreeFile   = "audit-tree.db"   // the Merkle tree: derived from the log, rebuilt if lost
	auditAccessFile = "audit-access.db" // who read the audit trail: kept, never derived
)

// auditSources picks how the audit reads the store: feed brings new events into the tree in
// commit order, src re-reads stored rows as they are (the backend's raw rows where the
// audit package can read them, else the store's decoded events).
func auditSources(store eventstore.Store) (feed, src audit.Source) {
	switch s := store.(type) {
	case *sqlite.Store:
		// One writer assigns SQLite positions in commit order: its rows feed the tree directly.
		raw := audit.SQLiteSource(s.DB())
		return raw, raw
	case *postgres.Store:
		// Only the store's ReadAll waits for positions still committing.
		return audit.StoreSource(s), audit.PostgresSource(s.Pool())
	default:
		s2 := audit.StoreSource(store)
		return s2, s2
	}
}

// openLedger opens the audit tree in the data directory; with sign, also the signing key
// (created on first use). close releases the tree.
func openLedger(ctx context.Context, cfg config.Config, store eventstore.Store, sign bool) (l *audit.Ledger, closeTree func(), err error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("create data directory: %w", err)
	}
	var signer *audit.Signer
	if sign {
		if signer, _, err = audit.LoadOrCreateKey(cfg.DataDir); err != nil {
			return nil, nil, err
		}
	}
	tree, err := audit.OpenTree(ctx, filepath.Join(cfg.DataDir, auditTreeFile))
	if err != nil {
		return nil, nil, err
	}
	feed, src := auditSources(store)
	l, err = audit.NewLedger(audit.LedgerConfig{Tree: tree, Feed: feed, Source: src, Signer: signer})
	if err != nil {
		tree.Close()
		return nil, nil, err
	}
	return l, func() { _ = tree.Close() }, nil
}

// mountAudit serves the audit endpoints and brings the tree up to date in the background, so
// that the first checkpoint after a start does not wait for a large log to be hashed. stop
// waits for that and closes the audit files.
func mountAudit(ctx context.Context, cfg config.Config, store eventstore.Store, api *httpapi.Server, log *zap.Logger) (stop func(), err error) {
	ledger, closeTree, err := openLedger(ctx, cfg, store, true)
	if err != nil {
		return nil, err
	}
	access, err := audit.OpenAccessLog(ctx, filepath.Join(cfg.DataDir, auditAccessFile))
	if err != nil {
		closeTree()
		return nil, err
	}
	api.MountAudit(httpapi.Audit{Ledger: ledger, AccessLog: access})
	key, _ := ledger.PublicKey()
	log.Info("audit", zap.String("key_id", key.ID()), zap.String("tree", filepath.Join(cfg.DataDir, auditTreeFile)))

	warmCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		h, err := ledger.Update(warmCtx)
		switch {
		case errors.Is(err, context.Canceled):
		case err != nil:
			log.Error("audit tree update", zap.Error(err))
		default:
			log.Info("audit tree up to date", zap.Int64("size", h.Size), zap.String("root", h.Root.String()))
		}
	})
	return func() {
		cancel()
		wg.Wait()
		_ = access.Close()
		closeTree()
	}, nil
}
