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
	l := latencies{b: b, ask: ask}
	i := 0
	for b.Loop() {
		if clients == 1 {
			l.one()
			continue
		}
		if i%10 == 0 {
			l.round(clients)
		}
		i++
	}
	l.report()
}

// Rounds asks a question from clients clients at once, one round of clients requests per
// iteration, and reports the latency's p50 and p99 over the requests (p50-ms, p99-ms).
func Rounds(b *testing.B, clients int, ask func(ctx context.Context) error) {
	b.Helper()
	l := latencies{b: b, ask: ask}
	for b.Loop() {
		l.round(clients)
	}
	l.report()
}

// latencies are the times of a benchmark's answers.
type latencies struct {
	b   *testing.B
	ask func(ctx context.Context) error
	mu  sync.Mutex
	lat []time.Duration
}

// one asks once and keeps the time it took.
func (l *latencies) one() {
	start := time.Now()
	if err := l.ask(context.Background()); err != nil {
		l.b.Error(err)
		return
	}
	took := time.Since(start)
	l.mu.Lock()
	l.lat = append(l.lat, took)
	l.mu.Unlock()
}

// round asks from clients clients at once.
func (l *latencies) round(clients int) {
	var wg sync.WaitGroup
	for range clients {
		wg.Go(l.one)
	}
	wg.Wait()
}

// report reports the p50 and p99 of the times kept.
func (l *latencies) report() {
	if len(l.lat) == 0 {
		l.b.Fatal("no answer")
	}
	slices.Sort(l.lat)
	l.b.ReportMetric(float64(l.lat[len(l.lat)/2].Microseconds())/1000, "p50-ms")
	l.b.ReportMetric(float64(l.lat[len(l.lat)*99/100].Microseconds())/1000, "p99-ms")
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
		projections.Every(ctx, every, func() bool {
			if _, err := db.Apply(ctx, p, tables, []eventstore.Event{next()}); err != nil && ctx.Err() == nil {
				failed.Store(err)
				return false
			}
			return true
		})
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
