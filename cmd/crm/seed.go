package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/eventcrm/crm/cmd/crm/internal/config"
	"github.com/eventcrm/crm/cmd/crm/internal/seed"
	"github.com/eventcrm/crm/commands"
)

func runSeed(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("seed", flag.ContinueOnError)
	var sc seed.Config
	fs.IntVar(&sc.Contacts, "contacts", 1000, "number of contacts (about 10 events each)")
	fs.Uint64Var(&sc.Seed, "seed", 1, "random seed: the same seed writes the same history")
	fs.IntVar(&sc.Workers, "workers", 64, "concurrent writers")
	start := fs.String("start", "2024-01-01", "earliest lead date (YYYY-MM-DD)")
	fs.IntVar(&sc.Days, "days", 640, "leads arrive over this many days")
	fs.StringVar(&cfg.DataDir, "data", cfg.DataDir, "data directory (CRM_DATA_DIR)")
	quiet := fs.Bool("quiet", false, "no progress bar")
	if err := parseArgs(fs, args, &cfg, stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("seed takes no arguments, got %q", fs.Args())}
	}
	if sc.Contacts <= 0 || sc.Workers <= 0 || sc.Days <= 0 {
		return usageError{"--contacts, --workers and --days must be positive"}
	}
	t, err := time.Parse("2006-01-02", *start)
	if err != nil {
		return usageError{fmt.Sprintf("--start %q is not a date of the form YYYY-MM-DD", *start)}
	}
	sc.Start = t.Add(9 * time.Hour)
	store, err := config.OpenSealedStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()

	bar := newProgressBar(stderr, int64(sc.Contacts)*10)
	if !*quiet {
		sc.Progress = bar.set
	}
	stats, err := seed.Run(ctx, commands.NewHandler(store, commands.WithRequestKeys(store.Codec())), sc)
	if !*quiet {
		bar.finish()
	}
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	fmt.Fprintf(stdout, "seeded %d contacts: %d commands, %d events in %s (%.0f events/s, %.0f commands/s)\n",
		stats.Contacts, stats.Commands, stats.Events, stats.Elapsed.Round(time.Millisecond),
		float64(stats.Events)/stats.Elapsed.Seconds(), float64(stats.Commands)/stats.Elapsed.Seconds())
	return nil
}

// progressBar draws "[#####.....] n/~total rate" on one terminal line, at most 10 times a second.
type progressBar struct {
	w        io.Writer
	estimate int64
	start    time.Time

	mu   sync.Mutex
	last time.Time
	n    int64
}

func newProgressBar(w io.Writer, estimate int64) *progressBar {
	return &progressBar{w: w, estimate: estimate, start: time.Now()}
}

func (p *progressBar) set(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n = max(p.n, n)
	if time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last = time.Now()
	p.draw()
}

func (p *progressBar) draw() {
	const width = 30
	total := max(p.estimate, p.n)
	filled := int(float64(width) * float64(p.n) / float64(total))
	rate := float64(p.n) / time.Since(p.start).Seconds()
	fmt.Fprintf(p.w, "\r[%s%s] %d/~%d events  %.0f events/s", strings.Repeat("#", filled), strings.Repeat(".", width-filled), p.n, total, rate)
}

func (p *progressBar) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.estimate = p.n
	p.draw()
	fmt.Fprintln(p.w)
}
