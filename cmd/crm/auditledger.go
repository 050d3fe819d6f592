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

// auditSigner loads the key that signs checkpoints: CRM_AUDIT_KEY_FILE when set, else
// audit.key in the data directory (created on first use either way).
func auditSigner(cfg config.Config) (*audit.Signer, error) {
	if cfg.AuditKeyFile != "" {
		s, _, err := audit.LoadOrCreateKeyFile(cfg.AuditKeyFile)
		if err != nil {
			return nil, fmt.Errorf("CRM_AUDIT_KEY_FILE: %w", err)
		}
		return s, nil
	}
	s, _, err := audit.LoadOrCreateKey(cfg.DataDir)
	return s, err
}

// openLedger opens the audit tree, with sign also the signing key. A signing ledger of a
// PostgreSQL store (a server's, `crm audit checkpoint`'s) keeps its tree in the store's
// schema, one for every server of the store, and its key must be the one the store's
// checkpoints are signed with. Any other ledger (a verifier's, which derives its own tree
// from the log it reads, and every ledger of another store) keeps it in the data directory.
// closeTree releases the tree.
func openLedger(ctx context.Context, cfg config.Config, store eventstore.Store, sign bool) (l *audit.Ledger, closeTree func(), err error) {
	var tree *audit.Tree
	if pg, ok := store.(*postgres.Store); ok && sign {
		tree, err = audit.OpenPostgresTree(ctx, pg.Pool())
	} else {
		tree, err = openTreeFile(ctx, cfg)
	}
	if err != nil {
		return nil, nil, err
	}
	var signer *audit.Signer
	if sign {
		if signer, err = auditSigner(cfg); err == nil {
			err = tree.ClaimKey(ctx, signer.Public())
		}
		if errors.Is(err, audit.ErrOtherKey) {
			err = fmt.Errorf("%w: give every server of the store the same key (CRM_AUDIT_KEY_FILE)", err)
		}
		if err != nil {
			tree.Close()
			return nil, nil, err
		}
	}
	feed, src := auditSources(store)
	l, err = audit.NewLedger(audit.LedgerConfig{Tree: tree, Feed: feed, Source: src, Signer: signer})
	if err != nil {
		tree.Close()
		return nil, nil, err
	}
	return l, func() { _ = tree.Close() }, nil
}

// openTreeFile opens the audit tree file of the data directory: the tree of a SQLite or
// EventStoreDB store, and the verifier's own tree, which it derives from the log itself.
func openTreeFile(ctx context.Context, cfg config.Config) (*audit.Tree, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	return audit.OpenTree(ctx, filepath.Join(cfg.DataDir, auditTreeFile))
}

// openAccessLog opens the audit access log: in the schema of a PostgreSQL store, one for
// every server of the store; else a file in the data directory.
func openAccessLog(ctx context.Context, cfg config.Config, store eventstore.Store) (*audit.AccessLog, error) {
	if pg, ok := store.(*postgres.Store); ok {
		return audit.OpenPostgresAccessLog(ctx, pg.Pool())
	}
	return audit.OpenAccessLog(ctx, filepath.Join(cfg.DataDir, auditAccessFile))
}

// mountAudit serves the audit endpoints and brings the tree up to date in the background, so
// that the first checkpoint after a start does not wait for a large log to be hashed. stop
// waits for that and closes the audit files.
func mountAudit(ctx context.Context, cfg config.Config, store eventstore.Store, api *httpapi.Server, log *zap.Logger) (stop func(), err error) {
	ledger, closeTree, err := openLedger(ctx, cfg, store, true)
	if err != nil {
		return nil, err
	}
	access, err := openAccessLog(ctx, cfg, store)
	if err != nil {
		closeTree()
		return nil, err
	}
	api.MountAudit(httpapi.Audit{Ledger: ledger, AccessLog: access})
	key, _ := ledger.PublicKey()
	where := filepath.Join(cfg.DataDir, auditTreeFile)
	if _, ok := store.(*postgres.Store); ok {
		where = "the store's schema"
	}
	log.Info("audit", zap.String("key_id", key.ID()), zap.String("tree", where))

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
