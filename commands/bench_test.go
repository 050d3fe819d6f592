package commands_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventcrm/crm/commands"
)

// writer issues a realistic mix through the command handlers: it creates a contact, records
// nine touchpoints on it, then moves on to a new contact, so streams stay short as in real use.
type writer struct {
	h       *commands.Handler
	contact string
	n       int
}

func (w *writer) next(ctx context.Context) error {
	defer func() { w.n++ }()
	if w.n%10 == 0 {
		res, err := w.h.CreateContact(ctx, commands.Meta{Actor: "bench"}, commands.CreateContact{Name: "Bench Contact", Channel: "web_form"})
		w.contact = res.ID
		return err
	}
	_, err := w.h.RecordTouchpoint(ctx, commands.Meta{Actor: "bench"}, commands.RecordTouchpoint{ContactID: w.contact, Kind: "call"})
	return err
}

// BenchmarkCommandsSequential: one writer, so every command waits for its own commit (fsync).
func BenchmarkCommandsSequential(b *testing.B) {
	h, _ := newHandler(b)
	ctx := context.Background()
	w := &writer{h: h}
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if err := w.next(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "commands/s")
}

// BenchmarkCommandsConcurrent64: 64 writers on different streams; group commit lets their
// commands share commits, each still checked and acknowledged on its own.
func BenchmarkCommandsConcurrent64(b *testing.B) {
	h, _ := newHandler(b)
	ctx := context.Background()
	const writers = 64
	var (
		remaining atomic.Int64
		wg        sync.WaitGroup
		failed    atomic.Value
	)
	remaining.Store(int64(b.N))
	b.ResetTimer()
	start := time.Now()
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &writer{h: h}
			for remaining.Add(-1) >= 0 {
				if err := w.next(ctx); err != nil {
					failed.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "commands/s")
	if err, ok := failed.Load().(error); ok {
		b.Fatal(err)
	}
}
