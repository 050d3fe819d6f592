package httpapi_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/eventcrm/crm/cmd/crm/internal/auth"
	"github.com/eventcrm/crm/cmd/crm/internal/console"
	"github.com/eventcrm/crm/cmd/crm/internal/httpapi"
	"github.com/eventcrm/crm/cmd/crm/internal/readmodels"
	"github.com/eventcrm/crm/cmd/crm/internal/webhooks"
	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/audit"
	"github.com/eventcrm/crm/eventstore/postgres"
	"github.com/eventcrm/crm/eventstore/postgres/postgrestest"
	"github.com/eventcrm/crm/eventstore/sqlite"
	"github.com/eventcrm/crm/eventstore/wmstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/rebuild"
	"github.com/eventcrm/crm/projections/runtime"
)

// backend opens an event store with its read-model database and audit sources, as `crm
// serve` pairs them.
type backend struct {
	name string
	open func(t testing.TB) opened
}

type opened struct {
	store     eventstore.Store
	db        *projections.DB
	feed, src audit.Source
	// head reads the log's last position from the store's table: unlike ReadAll on
	// PostgreSQL, it does not wait for transactions elsewhere in the cluster.
	head func(ctx context.Context) (int64, error)
}

// backends are the embedded default and PostgreSQL (CRM_TEST_POSTGRES_URL; a test fails,
// never skips, when it is unreachable).
func backends() []backend {
	return []backend{
		{"sqlite", func(t testing.TB) opened {
			dir := t.TempDir()
			store, err := sqlite.Open(context.Background(), filepath.Join(dir, "crm.db"), sqlite.WithPollInterval(50*time.Millisecond))
			if err != nil {
				t.Fatalf("open sqlite store: %v", err)
			}
			t.Cleanup(func() { _ = store.Close() })
			db, err := projections.OpenSQLite(context.Background(), filepath.Join(dir, "readmodels.db"))
			if err != nil {
				t.Fatalf("open read models: %v", err)
			}
			t.Cleanup(func() { _ = db.SQL.Close() })
			raw := audit.SQLiteSource(store.DB())
			return opened{store, db, raw, raw, func(ctx context.Context) (int64, error) {
				var head int64
				err := store.DB().QueryRowContext(ctx, `SELECT coalesce(max(position), 0) FROM events`).Scan(&head)
				return head, err
			}}
		}},
		{"postgres", func(t testing.TB) opened {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			url := projectiontest.PostgresURL()
			storeSchema, rmSchema := freshSchema(t, "httpapi_test_store_"), freshSchema(t, "httpapi_test_rm_")
			store, err := postgres.Open(ctx, url, postgres.WithSchema(storeSchema), postgres.WithPollInterval(50*time.Millisecond))
			if err != nil {
				t.Fatalf("open postgres store at %s (set CRM_TEST_POSTGRES_URL): %v", url, err)
			}
			t.Cleanup(func() { store.Close() })
			db, err := projections.OpenPostgres(ctx, url, rmSchema)
			if err != nil {
				t.Fatalf("open postgres read models: %v", err)
			}
			t.Cleanup(func() { _ = db.SQL.Close() })
			return opened{store, db, audit.StoreSource(store), audit.PostgresSource(store.Pool()), func(ctx context.Context) (int64, error) {
				var head int64
				err := store.Pool().QueryRow(ctx, `SELECT coalesce(max(position), 0) FROM `+pgx.Identifier{storeSchema, "events"}.Sanitize()).Scan(&head)
				return head, err
			}}
		}},
	}
}

// freshSchema names a schema no other test uses and drops it when t ends (after the pools
// registered later were closed).
func freshSchema(t testing.TB, prefix string) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	schema := prefix + hex.EncodeToString(b)
	postgrestest.DropWhenDone(t, projectiontest.PostgresURL(), schema)
	return schema
}

// wholeAPI is every endpoint of the API (commands, histories, read models with their live
// runner, rebuilds, audit) on a real listener over one backend.
type wholeAPI struct {
	*api
	logHead func(ctx context.Context) (int64, error)
	server  *httpapi.Server
	// handler is the server, to serve it again with other settings.
	handler http.Handler
}

func newWholeAPI(t testing.TB, b backend) *wholeAPI {
	t.Helper()
	ctx := context.Background()
	o := b.open(t)
	store, db := o.store, o.db
	ps := readmodels.Projections(readmodels.All(readmodels.Options{}))
	runner, err := runtime.NewRunner(runtime.RunnerConfig{
		DB: db, Store: store, Decode: wmstore.EventFromMessage,
		NewSubscriber: func(group string) (message.Subscriber, error) {
			return wmstore.NewSubscriber(store, wmstore.SubscriberConfig{ConsumerGroup: group, NackDelay: 10 * time.Millisecond}, nil)
		},
		Retry: runtime.RetryConfig{MaxRetries: 1, InitialInterval: time.Millisecond, MaxInterval: time.Millisecond},
	}, ps...)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	if err := runner.Init(runCtx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- runner.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	rebuilds, err := rebuild.NewRebuilds(rebuild.RebuildConfig{DB: db, Store: store, Runner: runner}, ps...)
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.ParseTokens("web:app:" + appToken + ",ana:analyst:" + analystToken + ",aud:auditor:" + auditorToken + ",root:admin:" + adminToken)
	if err != nil {
		t.Fatal(err)
	}
	server := httpapi.New(httpapi.Config{Store: store, Commands: commands.NewHandler(store), Tokens: tokens, Log: zap.NewNop()})
	server.MountReadModels(httpapi.ReadModels{Runner: runner, MaxWait: 5 * time.Second, Rebuilds: rebuilds, Queries: readmodels.HTTPQueries(readmodels.All(readmodels.Options{}))})
	server.MountAudit(httpapi.Audit{Ledger: newLedger(t, o.feed, o.src), AccessLog: newAccessLog(t)})
	// The routes of erasure and export, for the description; their tests run crm serve.
	server.MountPrivacy(httpapi.Privacy{Raw: store})
	hooks, err := webhooks.New(ctx, webhookConfig(t, store, db, runner))
	if err != nil {
		t.Fatal(err)
	}
	server.MountWebhooks(hooks)
	if err := server.MountImports(httpapi.Imports{DB: db, Dir: filepath.Join(t.TempDir(), "imports"), Workers: 8}); err != nil {
		t.Fatal(err)
	}
	assets, err := console.Load()
	if err != nil {
		t.Fatal(err)
	}
	server.MountConsole(httpapi.Console{Assets: assets, Zone: time.UTC})
	srv := describedServer(t, server)
	return &wholeAPI{api: &api{t: t, url: srv.URL}, logHead: o.head, server: server, handler: server}
}

func newLedger(t testing.TB, feed, src audit.Source) *audit.Ledger {
	t.Helper()
	dir := t.TempDir()
	tree, err := audit.OpenTree(context.Background(), filepath.Join(dir, "tree.db"), audit.WithTileHeight(2))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tree.Close() })
	signer, _, err := audit.LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	ledger, err := audit.NewLedger(audit.LedgerConfig{Tree: tree, Feed: feed, Source: src, Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	return ledger
}

func newAccessLog(t testing.TB) *audit.AccessLog {
	t.Helper()
	access, err := audit.OpenAccessLog(context.Background(), filepath.Join(t.TempDir(), "access.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = access.Close() })
	return access
}

// head is the position of the log's last event.
func (a *wholeAPI) head(t testing.TB) int64 {
	t.Helper()
	head, err := a.logHead(context.Background())
	if err != nil {
		t.Fatalf("head of the log: %v", err)
	}
	return head
}

// send sends a request whose path is taken as the client wrote it (escapes included), and
// fails t, not the fixture's test, when it cannot.
func (a *wholeAPI) send(t testing.TB, method, path, token, body string) response {
	t.Helper()
	r, err := a.sendRaw(method, path, token, body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// sendRaw is send returning its error.
func (a *wholeAPI) sendRaw(method, path, token, body string) (response, error) {
	req, err := http.NewRequest(method, a.url+"/", strings.NewReader(body))
	if err != nil {
		return response{}, err
	}
	if req.URL, err = req.URL.Parse(path); err != nil {
		return response{}, fmt.Errorf("path %q: %w", path, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}
