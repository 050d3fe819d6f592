package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/eventcrm/crm/cmd/crm/internal/config"
	"github.com/eventcrm/crm/cmd/crm/internal/readmodels"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/diff"
	"github.com/eventcrm/crm/projections/rebuild"
)

// projectionNamed finds the projection of a read model, as cfg configures it, by its
// persisted name.
func projectionNamed(cfg config.Config, name string) (projections.Projection, error) {
	rms, err := readModels(cfg)
	if err != nil {
		return nil, err
	}
	p, err := readmodels.Named(rms, name)
	if err != nil {
		return nil, usageError{err.Error()}
	}
	return p, nil
}

func runRebuild(ctx context.Context, cfg config.Config, getenv func(string) string, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rebuild", flag.ContinueOnError)
	name := fs.String("projection", "", "the projection to rebuild")
	all := fs.Bool("all", false, "rebuild every projection, in one pass over the log")
	batch := fs.Int("batch", projections.DefaultRebuildBatch, "events per read and per transaction")
	dropDelay := fs.Duration("drop-delay", rebuild.DefaultDropDelay, "pause before the replaced tables are dropped, so that queries a running server started on them can end")
	quiet := fs.Bool("quiet", false, "no progress bar")
	fs.StringVar(&cfg.DataDir, "data", cfg.DataDir, "data directory (CRM_DATA_DIR)")
	if err := parseArgs(fs, args, &cfg, stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("rebuild takes no arguments, got %q", fs.Args())}
	}
	if (*name == "") == !*all {
		return usageError{"rebuild needs --projection NAME or --all"}
	}
	if *batch < 1 || *dropDelay < 0 {
		return usageError{"--batch must be positive and --drop-delay not negative"}
	}
	rms, err := readModels(cfg)
	if err != nil {
		return err
	}
	ps := readmodels.Projections(rms)
	if *name != "" {
		p, err := projectionNamed(cfg, *name)
		if err != nil {
			return err
		}
		ps = []projections.Projection{p}
	}
	store, err := config.OpenSealedStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	db, err := config.OpenReadModels(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.SQL.Close()

	if getenv("GOGC") == "" {
		// A rebuild allocates fast and keeps little: collecting less often saves about a tenth
		// of its time, for a heap a few times larger (still flat as the log grows).
		defer debug.SetGCPercent(debug.SetGCPercent(400))
	}
	bar := newRebuildBar(stderr)
	rcfg := rebuild.RebuildConfig{DB: db, Store: store, Batch: *batch, DropDelay: *dropDelay}
	if *dropDelay == 0 {
		rcfg.DropDelay = -1 // none (0 in the configuration means the default)
	}
	if !*quiet {
		rcfg.Progress = bar.update
	}
	mem := sampleMemory()
	start := time.Now()
	res, err := rebuild.Rebuild(ctx, rcfg, ps...)
	elapsed := time.Since(start)
	heap := mem()
	if !*quiet {
		bar.finish()
	}
	if err != nil {
		var running *rebuild.RebuildRunningError
		if errors.As(err, &running) {
			return fmt.Errorf("%w; it resumes from its checkpoint when run again after that", err)
		}
		return err
	}
	for _, r := range res {
		parked := ""
		if r.Parked > 0 {
			parked = fmt.Sprintf(", %d events parked (GET /v1/projections/parked)", r.Parked)
		}
		resumed := ""
		if r.ResumedFrom > 0 {
			resumed = fmt.Sprintf(", resumed from position %d", r.ResumedFrom)
		}
		fmt.Fprintf(stdout, "%s: %s now serves (replaces %s), at position %d: %d events%s%s\n",
			r.Projection, r.TableSet, r.Replaces, r.Position, r.Events, resumed, parked)
	}
	if len(res) > 0 {
		fmt.Fprintf(stdout, "rebuilt %d projection(s) in %s: %.0f events/s; peak memory: Go heap %d MB, RSS %d MB\n",
			len(res), elapsed.Round(time.Millisecond), float64(res[0].Events)/elapsed.Seconds(), heap>>20, peakRSS()>>20)
	}
	return nil
}

// rebuildBar draws "[#####.....] position/total events  rate events/s  ETA" on one line, at
// most 10 times a second, for the slowest projection of the rebuild.
type rebuildBar struct {
	w io.Writer

	mu    sync.Mutex
	last  time.Time
	state map[string]rebuild.RebuildProgress
}

func newRebuildBar(w io.Writer) *rebuildBar {
	return &rebuildBar{w: w, state: map[string]rebuild.RebuildProgress{}}
}

func (b *rebuildBar) update(p rebuild.RebuildProgress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state[p.Projection] = p
	if time.Since(b.last) < 100*time.Millisecond {
		return
	}
	b.last = time.Now()
	b.draw()
}

func (b *rebuildBar) draw() {
	var slowest rebuild.RebuildProgress
	first := true
	for _, p := range b.state {
		if first || p.Position < slowest.Position {
			slowest, first = p, false
		}
	}
	if first {
		return
	}
	fmt.Fprintf(b.w, "\r%s", progressLine(slowest.Position, slowest.Total, slowest.Rate, slowest.ETASeconds, string(slowest.State)))
}

func (b *rebuildBar) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.draw()
	fmt.Fprintln(b.w)
}

// progressLine is one line of a progress bar.
func progressLine(done, total int64, rate, eta float64, state string) string {
	const width = 30
	total = max(total, done, 1)
	filled := int(float64(width) * float64(done) / float64(total))
	etaText := "-"
	if eta > 0 {
		etaText = (time.Duration(eta) * time.Second).Round(time.Second).String()
	}
	return fmt.Sprintf("[%s%s] %d/%d events  %.0f events/s  ETA %s  %-9s", strings.Repeat("#", filled),
		strings.Repeat(".", width-filled), done, total, rate, etaText, state)
}

// sampleMemory samples the Go heap until the returned function is called, which returns the
// highest value seen.
func sampleMemory() func() uint64 {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var (
		peak uint64
		wg   sync.WaitGroup
	)
	done := make(chan struct{})
	wg.Go(func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(sample)
			peak = max(peak, sample[0].Value.Uint64())
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	})
	return func() uint64 {
		close(done)
		wg.Wait()
		return peak
	}
}

// peakRSS is the process's peak resident set in bytes (Linux; 0 elsewhere).
func peakRSS() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func runProjections(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{"projections needs a subcommand: diff NAME"}
	}
	switch args[0] {
	case "diff":
		return runDiff(ctx, cfg, args[1:], stdout, stderr)
	default:
		return usageError{fmt.Sprintf("unknown projections subcommand %q (diff)", args[0])}
	}
}

func runDiff(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("projections diff", flag.ContinueOnError)
	sample := fs.Int("sample", diff.DefaultSample, "rows shown per table and kind (added, removed, changed)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	against := fs.String("against", "", "compare with this table set (its prefix) instead of the one in service")
	batch := fs.Int("batch", projections.DefaultRebuildBatch, "events per read and per transaction")
	quiet := fs.Bool("quiet", false, "no progress bar")
	fs.StringVar(&cfg.DataDir, "data", cfg.DataDir, "data directory (CRM_DATA_DIR)")
	// The name comes first (crm projections diff NAME [flags]) or last.
	var name string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if err := parseArgs(fs, args, &cfg, stdout); err != nil {
		return err
	}
	if name == "" && fs.NArg() == 1 {
		name = fs.Arg(0)
	} else if fs.NArg() > 0 || name == "" {
		return usageError{"projections diff takes one projection name"}
	}
	if *sample < 1 || *batch < 1 {
		return usageError{"--sample and --batch must be positive"}
	}
	p, err := projectionNamed(cfg, name)
	if err != nil {
		return err
	}
	store, err := config.OpenSealedStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	db, err := config.OpenReadModels(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.SQL.Close()

	served, found, err := db.ServedTables(ctx, name)
	if err != nil {
		return err
	}
	switch {
	case *against != "":
		if !strings.HasSuffix(*against, "_") {
			*against += "_"
		}
		served = projections.ServedSet{Projection: name, TableSet: *against, Tables: projections.TablesWithPrefix(*against)}
	case !found:
		t := projections.TablesFor(p, "")
		served = projections.ServedSet{Projection: name, Version: p.Version(), TableSet: t.Prefix(), Tables: t}
	}
	dcfg := diff.Config{DB: db, Store: store, Sample: *sample, Batch: *batch}
	var (
		mu   sync.Mutex
		last time.Time
	)
	start := time.Now()
	if !*quiet {
		dcfg.Progress = func(pos, goal int64) {
			mu.Lock()
			defer mu.Unlock()
			if time.Since(last) < 100*time.Millisecond {
				return
			}
			last = time.Now()
			rate := float64(pos) / time.Since(start).Seconds()
			eta := 0.0
			if rate > 0 {
				eta = float64(goal-pos) / rate
			}
			fmt.Fprintf(stderr, "\r%s", progressLine(pos, goal, rate, eta, "building"))
		}
	}
	d, err := diff.Run(ctx, dcfg, p, served)
	if !*quiet && !last.IsZero() {
		fmt.Fprintln(stderr)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(d)
	}
	printDiff(stdout, p, served, d)
	return nil
}

// printDiff writes the report for a person: per table the counts, then the sampled rows.
func printDiff(w io.Writer, p projections.Projection, served projections.ServedSet, d diff.SetDiff) {
	fmt.Fprintf(w, "%s version %d (this binary) against %s (in service), at log position %d:\n", p.Name(), p.Version(), served.TableSet, d.Position)
	if d.Identical() {
		fmt.Fprintln(w, "  identical: a rebuild with this code changes nothing")
	}
	for _, t := range d.Tables {
		switch {
		case t.Missing == "served":
			fmt.Fprintf(w, "  %-12s new table: %d rows\n", t.Table, t.CandidateRows)
		case t.Missing == "candidate":
			fmt.Fprintf(w, "  %-12s table gone: %d rows\n", t.Table, t.ServedRows)
		case t.Identical():
			fmt.Fprintf(w, "  %-12s %d rows: identical\n", t.Table, t.ServedRows)
		default:
			fmt.Fprintf(w, "  %-12s %d rows served, %d built: %d added, %d removed, %d changed\n", t.Table, t.ServedRows,
				t.CandidateRows, t.Added, t.Removed, t.Changed)
		}
		if len(t.ColumnsAdded) > 0 || len(t.ColumnsRemoved) > 0 {
			fmt.Fprintf(w, "    columns added %v, removed %v\n", t.ColumnsAdded, t.ColumnsRemoved)
		}
		for _, r := range t.SampleAdded {
			fmt.Fprintf(w, "    + %s\n", formatRow(r))
		}
		for _, r := range t.SampleRemoved {
			fmt.Fprintf(w, "    - %s\n", formatRow(r))
		}
		for _, c := range t.SampleChanged {
			var changes []string
			for _, col := range slices.Sorted(maps.Keys(c.Changes)) {
				ch := c.Changes[col]
				changes = append(changes, fmt.Sprintf("%s: %v -> %v", col, show(ch[0]), show(ch[1])))
			}
			fmt.Fprintf(w, "    ~ %s: %s\n", formatRow(c.Key), strings.Join(changes, ", "))
		}
	}
}

func formatRow(r diff.Row) string {
	var parts []string
	for _, col := range slices.Sorted(maps.Keys(r)) {
		parts = append(parts, fmt.Sprintf("%s=%v", col, show(r[col])))
	}
	return strings.Join(parts, " ")
}

func show(v any) any {
	if v == nil {
		return "NULL"
	}
	return v
}
