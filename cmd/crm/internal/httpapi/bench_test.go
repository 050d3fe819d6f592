package httpapi_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventcrm/crm/cmd/crm/internal/httpapi"
	"github.com/eventcrm/crm/cmd/crm/internal/metrics"
	"github.com/eventcrm/crm/commands"
)

// BenchmarkHTTPCommands64Clients: 64 concurrent clients on loopback, each creating a contact
// and recording touchpoints on it (one command per request), end to end through the real
// listener, JSON decoding, authentication, the command handlers and the SQLite store.
func BenchmarkHTTPCommands64Clients(b *testing.B) { benchCommands(b, newAPI(b)) }

// BenchmarkHTTPCommandsMetricsCost is BenchmarkHTTPCommands64Clients without and with the
// Prometheus metrics (requests, commands, appends), in the same run: the ratio is their cost.
func BenchmarkHTTPCommandsMetricsCost(b *testing.B) {
	b.Run("metrics=off", func(b *testing.B) { benchCommands(b, newAPI(b)) })
	b.Run("metrics=on", func(b *testing.B) {
		m, err := metrics.New(prometheus.NewRegistry())
		if err != nil {
			b.Fatal(err)
		}
		benchCommands(b, newAPIWith(b, func(c *httpapi.Config) {
			c.Metrics = m
			c.Commands = commands.NewHandler(m.Store(c.Store))
		}))
	})
}

func benchCommands(b *testing.B, a *api) {
	const clients = 64
	transport := &http.Transport{MaxIdleConns: clients, MaxIdleConnsPerHost: clients}
	client := &http.Client{Transport: transport}
	defer transport.CloseIdleConnections()

	post := func(path, body string) (map[string]any, error) {
		req, err := http.NewRequest("POST", a.url+path, strings.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+appToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode >= 300 {
			return nil, fmt.Errorf("%s: %d %s", path, resp.StatusCode, raw)
		}
		var m map[string]any
		return m, json.Unmarshal(raw, &m)
	}

	elapsed := closedLoop(b, clients, func() func() error {
		var (
			contactID string
			n         int
		)
		return func() error {
			defer func() { n++ }()
			if n%10 == 0 {
				res, err := post("/v1/contacts", `{"name":"Bench Contact","channel":"web_form"}`)
				if err == nil {
					contactID = res["id"].(string)
				}
				return err
			}
			_, err := post("/v1/contacts/"+contactID+"/touchpoints", `{"kind":"call","note":"bench"}`)
			return err
		}
	})
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "commands/s")
	b.ReportMetric(0, "ns/op")
}

// closedLoop sends b.N requests from clients clients at once, each client sending its next
// request when the previous one is answered (client makes a client's ask, which sends one
// request), reports the latency's p50 and p99 (p50-ms, p99-ms), and returns the time the
// requests took. The benchmark fails at the first request that fails.
func closedLoop(b *testing.B, clients int, client func() func() error) time.Duration {
	var (
		remaining atomic.Int64
		wg        sync.WaitGroup
		mu        sync.Mutex
		latencies = make([]time.Duration, 0, b.N)
		failure   atomic.Value
	)
	remaining.Store(int64(b.N))
	b.ResetTimer()
	start := time.Now()
	for range clients {
		ask := client()
		wg.Go(func() {
			local := make([]time.Duration, 0, b.N/clients+1)
			for remaining.Add(-1) >= 0 {
				t0 := time.Now()
				if err := ask(); err != nil {
					failure.Store(err)
					return
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			latencies = append(latencies, local...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err, ok := failure.Load().(error); ok {
		b.Fatal(err)
	}
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	return elapsed
}
