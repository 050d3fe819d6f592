package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/eventcrm/crm/cmd/crm/internal/auth"
	"github.com/eventcrm/crm/cmd/crm/internal/config"
	"github.com/eventcrm/crm/cmd/crm/internal/console"
	"github.com/eventcrm/crm/cmd/crm/internal/httpapi"
	"github.com/eventcrm/crm/cmd/crm/internal/metrics"
	"github.com/eventcrm/crm/cmd/crm/internal/readmodels"
	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/eventstore"
)

func runServe(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.StringVar(&cfg.Addr, "addr", cfg.Addr, "listen address (CRM_ADDR)")
	fs.StringVar(&cfg.DataDir, "data", cfg.DataDir, "data directory (CRM_DATA_DIR)")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", cfg.MetricsAddr, "Prometheus metrics listen address, off when empty (CRM_METRICS_ADDR)")
	fs.StringVar(&cfg.ReadModelWait, "read-wait", cfg.ReadModelWait, "longest wait of a read-model answer for min_position (CRM_READMODEL_WAIT)")
	if err := parseArgs(fs, args, &cfg, stdout); err != nil {
		return err
	}
	log, err := newLogger(cfg.LogLevel, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	// The address is taken first: a port in use is the first and only thing reported, and
	// nothing (token, store, read models) has been made yet.
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	defer ln.Close()
	metricsLn, m, err := metricsListener(cfg)
	if err != nil {
		return err
	}
	if metricsLn != nil {
		defer metricsLn.Close()
	}
	warnIfExposed(log, cfg.DataDir)
	tokens, err := loadTokens(cfg, stdout)
	if err != nil {
		return err
	}

	sealed, err := config.OpenSealedStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer sealed.Close()
	store := eventstore.Store(sealed) // personal data sealed on append, opened on read

	readWait, err := cfg.ReadWait()
	if err != nil {
		return err
	}
	answerCache, err := cfg.AnswerCacheSize()
	if err != nil {
		return err
	}
	answerMaxStale, err := cfg.AnswerMaxStale()
	if err != nil {
		return err
	}
	snapshotEvery, err := cfg.SnapshotInterval()
	if err != nil {
		return err
	}
	snapshotSpace, err := cfg.SnapshotSpaceFactor()
	if err != nil {
		return err
	}
	stallAfter, err := cfg.StallAfter()
	if err != nil {
		return err
	}
	rms, err := readModels(cfg)
	if err != nil {
		return err
	}
	db, err := config.OpenReadModels(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.SQL.Close()
	appends := httpapi.WatchAppends(store)
	cmds := commands.NewHandler(m.Store(appends), commands.WithShredder(sealed.Codec()), commands.WithRequestKeys(sealed.Codec()))
	bg, err := newBackground(ctx, store, db, cmds, readmodels.Projections(rms), snapshotPolicy{Every: snapshotEvery, Space: snapshotSpace}, stallAfter, newWatermillLogger(log))
	if err != nil {
		return err
	}
	zone, err := cfg.BusinessZone()
	if err != nil {
		return err
	}
	if err := bg.automate(cmds, zone, m); err != nil {
		return err
	}
	hooks, err := bg.webhooks(ctx, cfg, webhookDeps{store: store, db: db, cmds: cmds, keys: sealed.Keys()}, log, m)
	if err != nil {
		return err
	}
	// Stopped after the HTTP server (deferred later, runs earlier than the closes above), so
	// answers waiting for a position are not cut off first.
	defer bg.start()()
	if err := errors.Join(m.Register(metrics.Projections(bg.runner)), m.Register(metrics.Rebuilds(bg.rebuilds, bg.runner.Names()))); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}

	api := httpapi.New(httpapi.Config{Store: store, Commands: cmds, Appends: appends, Tokens: tokens, Log: log, Metrics: m})
	api.MountReadModels(httpapi.ReadModels{Runner: bg.runner, MaxWait: readWait, Rebuilds: bg.rebuilds,
		Queries:    readmodels.HTTPQueries(rms),
		TimeTravel: bg.travel, AnswerCache: answerCache, AnswerMaxStale: answerMaxStale})
	// The purges that follow erasures are recorded in the read-model database: one cut short
	// by a stop or a crash is finished after the next start, by this server or another.
	forget := sealed.Codec().Forget
	purges, err := newPurgeQueue(ctx, db, bg.purger(cmds, forget), bg.leases.Hold, bg.log)
	if err != nil {
		return err
	}
	purges.dropCaches = []func(){cmds.DropCache, api.DropKeptAnswers, bg.travel.Forget}
	purges.forget = forget
	api.MountPrivacy(httpapi.Privacy{Raw: sealed.Unwrap(), Codec: sealed.Codec(), Purges: purges})
	defer purges.start()()
	api.MountWebhooks(hooks)
	assets, err := console.Load()
	if err != nil {
		return err
	}
	api.MountConsole(httpapi.Console{Assets: assets, Zone: zone})
	if err := api.MountImports(httpapi.Imports{DB: db, Dir: filepath.Join(cfg.DataDir, "imports"), Zone: zone, Context: ctx}); err != nil {
		return err
	}
	// The audit hashes the bytes as stored: it reads beneath the codec.
	stopAudit, err := mountAudit(ctx, cfg, sealed.Unwrap(), api, log)
	if err != nil {
		return err
	}
	defer stopAudit()
	srv := api.HTTPServer(httpapi.DefaultTimeouts().ForReadWait(readWait))
	defer serveMetrics(metricsLn, m, log)()
	log.Info("serving", zap.String("addr", ln.Addr().String()), zap.String("data_dir", cfg.DataDir))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(httpapi.ProblemListener(ln)) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// loadTokens uses CRM_TOKENS, or creates (once) an admin token in the data directory. The
// token is printed only when it is created: output is often collected into logs, and later
// starts say where it is kept instead.
func loadTokens(cfg config.Config, stdout io.Writer) (*auth.Tokens, error) {
	if cfg.Tokens != "" {
		t, err := auth.ParseTokens(cfg.Tokens)
		if err != nil {
			return nil, fmt.Errorf("CRM_TOKENS: %w", err)
		}
		return t, nil
	}
	token, created, err := auth.EnsureAdminToken(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(cfg.DataDir, auth.AdminTokenFile)
	if created {
		fmt.Fprintf(stdout, "Created an admin token (CRM_TOKENS is not set), kept in %s; it is shown only now:\n  curl -H 'Authorization: Bearer %s' http://localhost%s/v1/...\n",
			path, token, portOf(cfg.Addr))
	} else {
		fmt.Fprintf(stdout, "Using the admin token kept in %s (CRM_TOKENS is not set):\n  curl -H \"Authorization: Bearer $(cat %s)\" http://localhost%s/v1/...\n",
			path, path, portOf(cfg.Addr))
	}
	return auth.ParseTokens("admin:admin:" + token)
}

// warnIfExposed warns, once at start, about a data directory that other users may read or
// enter and about files in it they may read: the files this program creates are 0600, but a
// directory made by hand, or files of an earlier version, may expose customer data.
func warnIfExposed(log *zap.Logger, dataDir string) {
	st, err := os.Stat(dataDir)
	if err != nil {
		return // not there yet: created 0700
	}
	if perm := st.Mode().Perm(); perm&0o007 != 0 {
		log.Warn("the data directory is open to other users; run chmod 700 on it",
			zap.String("data_dir", dataDir), zap.String("mode", perm.String()))
	}
	entries, err := os.ReadDir(dataDir)
	if err != nil {
		return
	}
	var loose []string
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() && info.Mode().Perm()&0o077 != 0 {
			loose = append(loose, e.Name())
		}
	}
	if len(loose) > 0 {
		log.Warn("files in the data directory are readable by other users; run chmod 600 on them",
			zap.String("data_dir", dataDir), zap.Strings("files", loose))
	}
}

func portOf(addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	return ":" + port
}

func newLogger(level string, w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("CRM_LOG_LEVEL: %w", err)
	}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(w), lvl)
	return zap.New(core), nil
}
