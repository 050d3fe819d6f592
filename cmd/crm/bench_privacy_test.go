package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"go.uber.org/zap"

	"github.com/eventcrm/crm/cmd/crm/internal/auth"
	"github.com/eventcrm/crm/cmd/crm/internal/config"
	"github.com/eventcrm/crm/cmd/crm/internal/httpapi"
	"github.com/eventcrm/crm/cmd/crm/internal/seed"
	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/codec"
	keystore "github.com/eventcrm/crm/eventstore/keys"
	"github.com/eventcrm/crm/eventstore/postgres"
	"github.com/eventcrm/crm/eventstore/sqlite"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/rebuild"
)

// privacyVariant opens a store of the benchmark: plain (no codec), sealed with a key written
// before each new subject's first event (direct: as before key pools) or sealed with keys
// taken from a pool made ahead of need (sealed).
type privacyVariant struct {
	name string
	open func(b *testing.B) eventstore.Store
}

// privacyVariants are the variants over backend: "sqlite" (a file in a fresh directory) or
// "postgres" (a fresh schema, its keys in <schema>_keys).
func privacyVariants(backend string) []privacyVariant {
	ctx := context.Background()
	type opened struct {
		store eventstore.Store
		keys  func(b *testing.B, pool int) keystore.Keys
	}
	open := func(b *testing.B) opened {
		if backend == "postgres" {
			u, _ := url.Parse(freshSchema(b))
			schema := u.Query().Get("schema")
			s, err := postgres.Open(ctx, postgresURL(), postgres.WithSchema(schema))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = s.Close() })
			return opened{s, func(b *testing.B, pool int) keystore.Keys {
				k, err := keystore.OpenPostgres(ctx, postgresURL(), schema+"_keys", keystore.WithPool(pool))
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = k.Close() })
				return k
			}}
		}
		dir := b.TempDir()
		s, err := sqlite.Open(ctx, filepath.Join(dir, "crm.db"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = s.Close() })
		return opened{s, func(b *testing.B, pool int) keystore.Keys {
			k, err := keystore.OpenSQLite(ctx, filepath.Join(dir, "keys.db"), keystore.WithPool(pool))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = k.Close() })
			return k
		}}
	}
	sealed := func(pool int) func(b *testing.B) eventstore.Store {
		return func(b *testing.B) eventstore.Store {
			o := open(b)
			c, err := config.NewCodec(o.keys(b, pool))
			if err != nil {
				b.Fatal(err)
			}
			return codec.NewStore(o.store, c)
		}
	}
	return []privacyVariant{
		{"plain", func(b *testing.B) eventstore.Store { return open(b).store }},
		{"direct", sealed(0)},
		{"sealed", sealed(keystore.DefaultPool)},
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkPrivacyCost measures what sealing personal data costs, on SQLite and PostgreSQL,
// each figure beside its baseline in the same run, rounds interleaved (PRIVACY_ROUNDS,
// default 3; the median is reported). Three variants: plain (no sealing, the baseline),
// direct (sealed, each new subject's key written before its first event, as before key
// pools) and sealed (keys taken from the pool):
//
//   - commands: commands/s over HTTP with 64 clients (the command path: HTTP, the handler, the
//     codec and the store; no projections), each client creating contacts with a name, email
//     and phone and recording nine touchpoints with a note for each (about ten events per
//     contact, as `crm seed` writes), so that every command seals and one in ten needs a new
//     key, for PRIVACY_SECONDS (default 5) per round;
//   - rebuild: events/s of reading the whole log through the store (the codec's share of a
//     rebuild), then of a rebuild of every read model (into a SQLite file) over the same
//     seeded history (PRIVACY_CONTACTS contacts, default 3000, about 10 events each) written
//     once per variant, each rebuilt through its store.
func BenchmarkPrivacyCost(b *testing.B) {
	rounds := envInt("PRIVACY_ROUNDS", 3)
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			variants := privacyVariants(backend)
			b.Run("commands", func(b *testing.B) {
				seconds := time.Duration(envInt("PRIVACY_SECONDS", 5)) * time.Second
				rates, cpu := map[string][]float64{}, map[string][]float64{}
				for range b.N {
					for r := range rounds {
						for _, v := range variants {
							rate, perOp := commandRate(b, v, seconds)
							rates[v.name], cpu[v.name] = append(rates[v.name], rate), append(cpu[v.name], perOp)
							b.Logf("round %d %s: %.0f commands/s, %.0f µs of CPU each", r+1, v.name, rate, perOp)
						}
					}
				}
				report(b, rates, "commands/s", false)
				report(b, cpu, "cpu_µs/command", true)
			})
			b.Run("rebuild", func(b *testing.B) {
				contacts := envInt("PRIVACY_CONTACTS", 3000)
				stores := map[string]eventstore.Store{}
				for _, v := range variants {
					s := v.open(b)
					if _, err := seed.Run(context.Background(), commands.NewHandler(s), seed.Config{Contacts: contacts, Seed: 1, Workers: 64}); err != nil {
						b.Fatal(err)
					}
					stores[v.name] = s
				}
				reads, readCPU := map[string][]float64{}, map[string][]float64{}
				for range b.N {
					for r := range rounds {
						for _, v := range variants {
							rate, perOp := readRate(b, stores[v.name])
							reads[v.name], readCPU[v.name] = append(reads[v.name], rate), append(readCPU[v.name], perOp)
							b.Logf("round %d %s: read %.0f events/s, %.2f µs of CPU each", r+1, v.name, rate, perOp)
						}
					}
				}
				report(b, reads, "read_events/s", false)
				report(b, readCPU, "read_cpu_µs/event", true)
				rates, cpu := map[string][]float64{}, map[string][]float64{}
				for range b.N {
					for r := range rounds {
						for _, v := range variants {
							rate, perOp := rebuildRate(b, stores[v.name])
							rates[v.name], cpu[v.name] = append(rates[v.name], rate), append(cpu[v.name], perOp)
							b.Logf("round %d %s: %.0f events/s, %.1f µs of CPU each", r+1, v.name, rate, perOp)
						}
					}
				}
				report(b, rates, "events/s", false)
				report(b, cpu, "cpu_µs/event", true)
			})
		})
	}
}

// cpuTime is the CPU time this process has used (user and system): a figure that the other
// work of a shared machine disturbs less than a rate does (it leaves out the database
// server's CPU and the waits for disk flushes).
func cpuTime() time.Duration {
	var u syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &u)
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}

// report reports the median of each variant and the cost of each sealed variant: the median
// of the costs of each round against plain (the variants of a round ran one after the other,
// so their ratio holds better than one of medians on a shared machine).
func report(b *testing.B, rates map[string][]float64, unit string, lowerIsBetter bool) {
	median := func(v []float64) float64 {
		s := slices.Sorted(slices.Values(v))
		return s[len(s)/2]
	}
	plain := median(rates["plain"])
	b.ReportMetric(plain, "plain_"+unit)
	for _, variant := range []string{"direct", "sealed"} {
		var costs []float64
		for i := range rates["plain"] {
			cost := 100 * (rates["plain"][i] - rates[variant][i]) / rates["plain"][i]
			if lowerIsBetter {
				cost = -cost
			}
			costs = append(costs, cost)
		}
		rate, cost := median(rates[variant]), median(costs)
		b.ReportMetric(rate, variant+"_"+unit)
		b.ReportMetric(cost, variant+"_"+unit+"_cost_%") // one name per figure: the CPU cost must not replace the rate's
		b.Logf("%s: plain %.0f, %s %.0f (medians of %d); cost per round %.1f%%, median %.1f%%",
			unit, plain, variant, rate, len(costs), costs, cost)
	}
}

// readRate reads the whole log through store in batches of 10,000; events/s.
func readRate(b *testing.B, store eventstore.Store) (rate, cpuPerEvent float64) {
	ctx := context.Background()
	start, cpu, n := time.Now(), cpuTime(), 0
	for after := int64(0); ; {
		events, err := store.ReadAll(ctx, after, 10_000)
		if err != nil {
			b.Fatal(err)
		}
		n += len(events)
		if len(events) < 10_000 {
			break
		}
		after = events[len(events)-1].Position
	}
	return float64(n) / time.Since(start).Seconds(), float64((cpuTime() - cpu).Microseconds()) / float64(n)
}

// commandRate serves the command API over a fresh store of variant v and sends commands from
// 64 clients for d; it returns commands/s.
func commandRate(b *testing.B, v privacyVariant, d time.Duration) (rate, cpuPerCommand float64) {
	store := v.open(b)
	const token = "bench-admin-token-0123456789"
	tokens, err := auth.ParseTokens("bench:admin:" + token)
	if err != nil {
		b.Fatal(err)
	}
	api := httpapi.New(httpapi.Config{Store: store, Commands: commands.NewHandler(store), Tokens: tokens, Log: zap.NewNop()})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	base := "http://" + ln.Addr().String()
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}}
	post := func(path, body string) (string, error) {
		req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 300 {
			return "", fmt.Errorf("%s: %d %s", path, resp.StatusCode, out)
		}
		return string(out), nil
	}
	var done atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	start, cpu := time.Now(), cpuTime()
	for c := range 64 {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				out, err := post("/v1/contacts", fmt.Sprintf(`{"name":"佐藤 花子 %d-%d","email":"hanako%d.%d@example.jp","phone":"+81 3-1234-%04d","channel":"web_form"}`, c, i, c, i, i%10000))
				if err != nil {
					errs <- err
					return
				}
				id := out[strings.Index(out, `"id":"`)+6:]
				id = id[:strings.IndexByte(id, '"')]
				done.Add(1)
				for range 9 { // about 10 events per contact, as `crm seed` writes
					if time.Now().After(deadline) {
						break
					}
					if _, err := post("/v1/contacts/"+id+"/touchpoints", `{"kind":"meeting","note":"話した内容: 予算は4月に確定、担当者は田中さん"}`); err != nil {
						errs <- err
						return
					}
					done.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed, used := time.Since(start), cpuTime()-cpu
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return float64(done.Load()) / elapsed.Seconds(), float64(used.Microseconds()) / float64(done.Load())
}

// rebuildRate rebuilds every read model from store into a fresh read-model file; events/s.
func rebuildRate(b *testing.B, store eventstore.Store) (rate, cpuPerEvent float64) {
	ctx := context.Background()
	db, err := projections.OpenSQLite(ctx, filepath.Join(b.TempDir(), "readmodels.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.SQL.Close()
	start, cpu := time.Now(), cpuTime()
	res, err := rebuild.Rebuild(ctx, rebuild.RebuildConfig{DB: db, Store: store, Logger: watermill.NopLogger{}, DropDelay: -1}, utcReadModels()...)
	if err != nil {
		b.Fatal(err)
	}
	return float64(res[0].Events) / time.Since(start).Seconds(), float64((cpuTime() - cpu).Microseconds()) / float64(res[0].Events)
}
