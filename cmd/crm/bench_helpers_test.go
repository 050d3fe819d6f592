package main

// Shared by the read-model benchmarks (bench_*_test.go), which give the figures of issue 4.
// Their data sets take minutes to write, so each is built once and kept for later runs: SQLite
// files under CRM_BENCH_CACHE (default $TMPDIR/crm-bench), PostgreSQL logs in schemas of the
// database crm_bench (see benchDatabase). `make bench-clean` removes both. `make test` never runs them: benchmarks run
// only with -bench (`make bench-projections`).

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eventcrm/crm/cmd/crm/internal/auth"
	"github.com/eventcrm/crm/cmd/crm/internal/config"
	"github.com/eventcrm/crm/cmd/crm/internal/console"
	"github.com/eventcrm/crm/cmd/crm/internal/httpapi"
	"github.com/eventcrm/crm/cmd/crm/internal/readmodels"
	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/postgres/postgrestest"
	"github.com/eventcrm/crm/eventstore/wmstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/runtime"
)

// benchCacheDir is where the benchmarks keep the data sets they built.
func benchCacheDir() string {
	if d := os.Getenv("CRM_BENCH_CACHE"); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), "crm-bench")
}

// benchCacheMarker is written into a cached directory once it is complete: a build that
// failed or was interrupted leaves none, and the next run builds again from scratch.
const benchCacheMarker = "complete"

// cachedDir returns the cache directory name, calling build to fill it unless an earlier
// run did.
func cachedDir(b *testing.B, name string, build func(dir string) error) string {
	b.Helper()
	dir := filepath.Join(benchCacheDir(), name)
	if _, err := os.Stat(filepath.Join(dir, benchCacheMarker)); err == nil {
		return dir
	}
	if err := os.RemoveAll(dir); err != nil {
		b.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		b.Fatal(err)
	}
	b.Logf("building %s (once: later runs reuse it)", dir)
	start := time.Now()
	if err := build(dir); err != nil {
		b.Fatalf("build %s: %v", dir, err)
	}
	if err := os.WriteFile(filepath.Join(dir, benchCacheMarker), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	b.Logf("built %s in %s", dir, time.Since(start).Round(time.Second))
	return dir
}

// copyFiles copies the named files of dir (those that exist) into a new temporary directory.
func copyFiles(b *testing.B, dir string, names ...string) string {
	b.Helper()
	to := b.TempDir()
	for _, n := range names {
		src, err := os.Open(filepath.Join(dir, n))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			b.Fatal(err)
		}
		dst, err := os.Create(filepath.Join(to, n))
		if err == nil {
			_, err = io.Copy(dst, src)
			err = errors.Join(err, dst.Close())
		}
		src.Close()
		if err != nil {
			b.Fatal(err)
		}
	}
	return to
}

// benchDatabase is the PostgreSQL database the benchmarks use, on the server of the tests
// (CRM_TEST_POSTGRES_URL), unless CRM_BENCH_POSTGRES_URL names another. A database of their
// own: the read models' transactions take advisory locks, which are per database, not per
// schema, so tests of the same read models running beside a benchmark (`make test`) would
// otherwise wait for the benchmark's locks, and it for theirs.
const benchDatabase = "crm_bench"

var (
	benchPostgresOnce sync.Once
	benchPostgres     string
	benchPostgresErr  error
)

// benchPostgresURL returns the URL of the benchmarks' database, creating it on first use.
func benchPostgresURL(b *testing.B) string {
	b.Helper()
	benchPostgresOnce.Do(func() {
		if u := os.Getenv("CRM_BENCH_POSTGRES_URL"); u != "" {
			benchPostgres = u
			return
		}
		u, err := url.Parse(postgresURL())
		if err != nil {
			benchPostgresErr = err
			return
		}
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, postgresURL())
		if err != nil {
			benchPostgresErr = err
			return
		}
		defer conn.Close(ctx)
		var exists bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)`, benchDatabase).Scan(&exists); err != nil {
			benchPostgresErr = err
			return
		}
		if !exists {
			if _, err := conn.Exec(ctx, "CREATE DATABASE "+benchDatabase); err != nil {
				benchPostgresErr = err
				return
			}
		}
		u.Path = "/" + benchDatabase
		benchPostgres = u.String()
	})
	if benchPostgresErr != nil {
		b.Fatalf("benchmark database on %s (set CRM_TEST_POSTGRES_URL): %v", postgresURL(), benchPostgresErr)
	}
	return benchPostgres
}

// benchSchemaURL is a CRM_STORE value naming schema in the benchmarks' database.
func benchSchemaURL(b *testing.B, schema string) string {
	u := benchPostgresURL(b)
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	return u + sep + "schema=" + schema
}

// dropSchemas drops PostgreSQL schemas of the benchmarks' database with everything in them.
func dropSchemas(ctx context.Context, b *testing.B, schemas ...string) error {
	return postgrestest.DropSchemas(ctx, benchPostgresURL(b), schemas...)
}

// tempSchema returns a new schema name, dropped when b ends.
func tempSchema(b *testing.B, prefix string) string {
	b.Helper()
	raw := make([]byte, 6)
	_, _ = rand.Read(raw)
	s := prefix + hex.EncodeToString(raw)
	b.Cleanup(func() {
		if err := dropSchemas(context.Background(), b, s); err != nil {
			b.Errorf("drop schema %s: %v", s, err)
		}
	})
	return s
}

// logHead is the position of the last event of the log: it gallops from the start, then
// halves its step, with reads of one event.
func logHead(ctx context.Context, store eventstore.Store) (int64, error) {
	var head int64
	for step := int64(1 << 20); step > 0; {
		next, err := store.ReadAll(ctx, head+step-1, 1)
		if err != nil {
			return 0, err
		}
		if len(next) > 0 {
			head = next[0].Position
			continue
		}
		step /= 2
	}
	return head, nil
}

// resetGroups moves consumer groups of the global feed back to the start of the log, so a
// cached log is delivered again from its first event.
func resetGroups(ctx context.Context, cps eventstore.Checkpoints, groups ...string) error {
	for _, g := range groups {
		if err := cps.SaveCheckpoint(ctx, wmstore.CheckpointName(g, wmstore.AllTopic), 0); err != nil {
			return err
		}
	}
	return nil
}

// utcReadModels are the projections `crm serve` runs with the default business time zone.
func utcReadModels() []projections.Projection {
	return readmodels.Projections(readmodels.All(readmodels.Options{Zone: time.UTC}))
}

// projectionGroups are the consumer groups of the projections `crm serve` runs.
func projectionGroups() []string {
	var groups []string
	for _, p := range utcReadModels() {
		groups = append(groups, runtime.ConsumerGroup(projections.TablesFor(p, "")))
	}
	return groups
}

// benchServer is `crm serve` in-process, built as runServe builds it: the configured store
// and read-model database, the command handler, the background work (the projections and
// the deal-won process) and the HTTP API with the read-model endpoints, on a loopback
// listener. The logger is the server's, at info level, writing nowhere.
type benchServer struct {
	url    string
	token  string
	store  eventstore.Store
	cmds   *commands.Handler
	runner *runtime.Runner
	client *http.Client
}

func startBenchServer(b *testing.B, cfg config.Config) *benchServer {
	b.Helper()
	s, stop := newBenchServer(b, cfg)
	b.Cleanup(stop)
	return s
}

// newBenchServer starts the server; stop stops it and closes its databases.
func newBenchServer(b *testing.B, cfg config.Config) (s *benchServer, stop func()) {
	b.Helper()
	ctx := context.Background()
	log, err := newLogger("info", io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	store, err := config.OpenStore(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	readModels, err := config.OpenReadModels(ctx, cfg)
	if err != nil {
		store.Close()
		b.Fatal(err)
	}
	cmds := commands.NewHandler(store)
	bg, err := newBackground(ctx, store, readModels, cmds, utcReadModels(), snapshotPolicy{}, 0, newWatermillLogger(log))
	if err != nil {
		b.Fatal(err)
	}
	stopBackground := bg.start()

	const token = "bench-admin-token-0123456789"
	tokens, err := auth.ParseTokens("bench:admin:" + token)
	if err != nil {
		b.Fatal(err)
	}
	api := httpapi.New(httpapi.Config{Store: store, Commands: cmds, Tokens: tokens, Log: log})
	answerCache, err := cfg.AnswerCacheSize()
	if err != nil {
		b.Fatal(err)
	}
	api.MountReadModels(httpapi.ReadModels{Runner: bg.runner, MaxWait: httpapi.DefaultReadWait, Rebuilds: bg.rebuilds,
		Queries:    readmodels.HTTPQueries(readmodels.All(readmodels.Options{})),
		TimeTravel: bg.travel, AnswerCache: answerCache})
	assets, err := console.Load()
	if err != nil {
		b.Fatal(err)
	}
	api.MountConsole(httpapi.Console{Assets: assets})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() { _ = srv.Serve(ln) }()
	transport := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}
	s = &benchServer{url: "http://" + ln.Addr().String(), token: token, store: store, cmds: cmds,
		runner: bg.runner, client: &http.Client{Transport: transport}}
	var once sync.Once
	return s, func() {
		once.Do(func() {
			transport.CloseIdleConnections()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = srv.Shutdown(ctx)
			stopBackground()
			readModels.SQL.Close()
			store.Close()
		})
	}
}

// do sends a request and returns the response body; a status of 300 or more is an error.
func (s *benchServer) do(method, path string, body io.Reader) ([]byte, error) {
	req, err := http.NewRequest(method, s.url+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		return nil, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	return raw, nil
}

// read sends a GET and reads the response body into nothing, as a client that parses it as
// it arrives would, without keeping it; a status of 300 or more is an error.
func (s *benchServer) read(path string) error {
	req, err := http.NewRequest("GET", s.url+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		return fmt.Errorf("GET %s: %d", path, resp.StatusCode)
	}
	return nil
}

// waitCaughtUp waits until every projection of runner has applied the log up to head.
func waitCaughtUp(ctx context.Context, runner *runtime.Runner, head int64) error {
	for _, name := range runner.Names() {
		f, err := runner.WaitFor(ctx, name, head, 24*time.Hour)
		if err != nil {
			return err
		}
		if f.Stale {
			return fmt.Errorf("projection %s at %d, want %d", name, f.Position, head)
		}
	}
	return nil
}

// percentile is the nearest-rank p-th percentile (0 < p <= 1) of sorted durations, in ms.
func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	return float64(sorted[max(0, min(i, len(sorted)-1))].Microseconds()) / 1000
}
