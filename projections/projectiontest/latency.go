package projectiontest

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
)

// Latency asks a question from clients clients at once and reports the latency's p50 and p99
// over the requests (p50-ms, p99-ms): with 1 client b.N requests, with more a round of clients
// requests per 10 iterations (at least one round).
func Latency(b *testing.B, clients int, ask func(ctx context.Context) error) {
	b.Helper()
	ctx := context.Background()
	var (
		mu  sync.Mutex
		lat []time.Duration
	)
	one := func() {
		start := time.Now()
		if err := ask(ctx); err != nil {
			b.Error(err)
			return
		}
		took := time.Since(start)
		mu.Lock()
		lat = append(lat, took)
		mu.Unlock()
	}
	i := 0
	for b.Loop() {
		if clients == 1 {
			one()
			continue
		}
		if i%10 == 0 {
			var wg sync.WaitGroup
			for range clients {
				wg.Go(one)
			}
			wg.Wait()
		}
		i++
	}
	if len(lat) == 0 {
		b.Fatal("no answer")
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// WriteLive applies to p's tables, live, one event every interval (every 20 ms is 50 a
// second) until stopped: the event next returns, called from one goroutine. stop fails b
// when an apply failed.
func WriteLive(b *testing.B, db *projections.DB, p projections.Projection, tables projections.Tables, every time.Duration,
	next func() eventstore.Event) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var (
		wg     sync.WaitGroup
		failed atomic.Value
	)
	wg.Go(func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if _, err := db.Apply(ctx, p, tables, []eventstore.Event{next()}); err != nil && ctx.Err() == nil {
				failed.Store(err)
				return
			}
		}
	})
	return func() {
		cancel()
		wg.Wait()
		if err, ok := failed.Load().(error); ok {
			b.Fatalf("write: %v", err)
		}
	}
}

// ForWrites runs bench twice, as the subtests "no writes" and "50 writes per s" (writes
// true: the benchmark applies events live while it measures, with WriteLive or its own).
func ForWrites(b *testing.B, bench func(b *testing.B, writes bool)) {
	for _, writes := range []bool{false, true} {
		mode := "no writes"
		if writes {
			mode = "50 writes per s"
		}
		b.Run(mode, func(b *testing.B) { bench(b, writes) })
	}
}
