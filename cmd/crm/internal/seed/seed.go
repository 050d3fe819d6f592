// Package seed writes a realistic, deterministic sales history through the command path:
// contacts from several channels moving through the lifecycle with channel-dependent
// conversion, deals won and lost with reasons, touchpoints and notes, purchases, surveys,
// usage, tasks (done, rescheduled, reassigned, cancelled), accounts of the contacts'
// companies, duplicates merged, churn and win-backs. The same seed always writes the same history: every command carries an
// idempotency key derived from the seed, so ids are reproducible and a re-run adds nothing.
package seed

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventcrm/crm/commands"
)

// Config sizes a seed run.
type Config struct {
	// Contacts is the number of contacts to create (default 1000).
	Contacts int
	// Seed makes the history reproducible (default 1).
	Seed uint64
	// Workers is the number of concurrent writers (default 64).
	Workers int
	// Start is the earliest lead date (default 2024-01-01); leads arrive over Days days.
	Start time.Time
	Days  int
	// Until ends the history (default 270 days after the last lead can arrive): a journey
	// stops at its first step that would happen later, so nothing is recorded as happening
	// after the moment the history describes.
	Until time.Time
	// Progress, when not nil, is called with the number of events written so far.
	Progress func(events int64)
}

// Stats is what a run wrote.
type Stats struct {
	Contacts int
	Commands int64
	Events   int64
	Elapsed  time.Duration
}

// Run writes the history. It stops at the first error (a refused command would be a bug of
// the generator, not of the data).
func Run(ctx context.Context, h *commands.Handler, cfg Config) (Stats, error) {
	if cfg.Contacts <= 0 {
		cfg.Contacts = 1000
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 64
	}
	if cfg.Start.IsZero() {
		cfg.Start = time.Date(2024, 1, 1, 9, 0, 0, 0, time.UTC)
	}
	if cfg.Days <= 0 {
		cfg.Days = 640
	}
	if cfg.Until.IsZero() {
		cfg.Until = cfg.Start.AddDate(0, 0, cfg.Days+270)
	}
	start := time.Now()
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	accounts, err := createAccounts(ctx, h, cfg)
	if err != nil {
		return Stats{}, err
	}
	var (
		commandsDone, eventsDone atomic.Int64
		firstErr                 error
		errOnce                  sync.Once
		wg                       sync.WaitGroup
	)
	next := make(chan int)
	for w := 0; w < cfg.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				j := &journey{h: h, cfg: cfg, index: i, rng: rand.New(rand.NewPCG(cfg.Seed, uint64(i))),
					more: rand.New(rand.NewPCG(cfg.Seed, uint64(i)|1<<63)), accounts: accounts}
				err := j.run(ctx)
				if errors.Is(err, errPresent) {
					err = nil
				}
				commandsDone.Add(j.commands)
				if n := eventsDone.Add(j.events); cfg.Progress != nil {
					cfg.Progress(n)
				}
				if err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("contact %d: %w", i, err); cancel() })
					return
				}
			}
		}()
	}
feed:
	for i := 0; i < cfg.Contacts; i++ {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	stats := Stats{Contacts: cfg.Contacts, Commands: commandsDone.Load() + int64(len(accounts)),
		Events: eventsDone.Load() + int64(len(accounts)), Elapsed: time.Since(start)}
	if firstErr == nil && parent.Err() != nil {
		firstErr = fmt.Errorf("seed interrupted: %w", parent.Err())
	}
	return stats, firstErr
}

// createAccounts creates one account per company of the generator, before any journey (whose
// contacts link to them), at the history's start; it returns their ids by company name.
func createAccounts(ctx context.Context, h *commands.Handler, cfg Config) (map[string]string, error) {
	ids := map[string]string{}
	for i, name := range companies {
		domainName := strings.ToLower(strings.Fields(name)[0]) + ".example"
		res, err := h.CreateAccount(ctx, commands.Meta{Actor: "seed", IdempotencyKey: fmt.Sprintf("seed:%d:account:%d", cfg.Seed, i),
			OccurredAt: cfg.Start}, commands.CreateAccount{Name: name, Domain: domainName, Industry: industries[i%len(industries)]})
		if err != nil {
			return nil, fmt.Errorf("account %s: %w", name, err)
		}
		ids[name] = res.ID
	}
	return ids, nil
}
