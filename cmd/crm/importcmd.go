package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/eventcrm/crm/cmd/crm/internal/config"
	"github.com/eventcrm/crm/cmd/crm/internal/csvimport"
	"github.com/eventcrm/crm/commands"
)

// importActor is the actor of an import from the command line, unless --actor names another.
const importActor = "crm-import"

// importArgs are the command line of `crm import`.
type importArgs struct {
	kind     csvimport.Kind
	file     string
	dryRun   bool
	encoding string
	mapping  string
	actor    string
	workers  int
	progress string
}

// runImport runs `crm import [flags] contacts|deals|touchpoints FILE`: the report, JSON, on
// stdout; a progress bar on stderr. It exits 1 when a row was refused.
func runImport(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	a, err := parseImportArgs(&cfg, args, stdout)
	if err != nil {
		return err
	}
	zone, err := cfg.BusinessZone()
	if err != nil {
		return err
	}
	opts := csvimport.Options{Kind: a.kind, Encoding: a.encoding, DryRun: a.dryRun, Actor: a.actor, Zone: zone, Workers: a.workers}
	if a.mapping != "" {
		if opts.Mapping, err = readMapping(a.mapping); err != nil {
			return err
		}
	}
	file, err := os.Open(a.file)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	defer file.Close()
	st, err := file.Stat()
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	var progress csvimport.Progress
	f, err := csvimport.Open(file, st.Size(), opts, &progress)
	if err != nil {
		return fmt.Errorf("import %s: %w", a.file, err)
	}
	// Sealed as the server seals: personal data under each contact's key, request hashes keyed.
	store, err := config.OpenSealedStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	stop := showProgress(stderr, &progress, a.progress)
	report, err := csvimport.Run(ctx, commands.NewHandler(store, commands.WithRequestKeys(store.Codec())), f, opts, &progress)
	stop()
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if werr := enc.Encode(report); werr != nil {
		return fmt.Errorf("write the report: %w", werr)
	}
	if err != nil {
		return fmt.Errorf("import %s: %w", a.file, err)
	}
	if report.Refused > 0 {
		verb := "refused"
		if a.dryRun {
			verb = "bad"
		}
		return fmt.Errorf("import %s: %d of %d rows %s (see the report's problems)", a.file, report.Refused, report.Rows, verb)
	}
	return nil
}

// parseImportArgs takes flags before, between and after the kind and the file.
func parseImportArgs(cfg *config.Config, args []string, stdout io.Writer) (importArgs, error) {
	a := importArgs{}
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.BoolVar(&a.dryRun, "dry-run", false, "check every row and report the bad ones; append nothing")
	fs.StringVar(&a.encoding, "encoding", csvimport.EncodingAuto, "the file's encoding: auto, utf-8 or shift_jis (cp932)")
	fs.StringVar(&a.mapping, "mapping", "", "a JSON file mapping the file's header names to column names")
	fs.StringVar(&a.actor, "actor", importActor, "the actor recorded on the events (and owner of the idempotency keys)")
	fs.IntVar(&a.workers, "workers", csvimport.DefaultWorkers, "rows imported at once")
	fs.StringVar(&a.progress, "progress", "auto", "progress bar on stderr: auto (when stderr is a terminal), bar, lines or none")
	fs.StringVar(&cfg.DataDir, "data", cfg.DataDir, "data directory (CRM_DATA_DIR)")
	var positional []string
	rest := args
	for {
		if err := parseArgs(fs, rest, cfg, stdout); err != nil {
			return a, err
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(positional) != 2 {
		return a, usageError{"import takes a kind and a file: crm import [flags] contacts|deals|touchpoints FILE"}
	}
	kind, err := csvimport.ParseKind(positional[0])
	if err != nil {
		return a, usageError{"import: " + err.Error()}
	}
	if _, err := csvimport.ParseEncoding(a.encoding); err != nil {
		return a, usageError{"import: --encoding: " + err.Error()}
	}
	switch a.progress {
	case "auto", "bar", "lines", "none":
	default:
		return a, usageError{fmt.Sprintf("import: --progress %q: want auto, bar, lines or none", a.progress)}
	}
	if a.workers < 1 || a.workers > 256 {
		return a, usageError{fmt.Sprintf("import: --workers %d: want 1 to 256", a.workers)}
	}
	if strings.TrimSpace(a.actor) == "" {
		return a, usageError{"import: --actor must not be empty"}
	}
	a.kind, a.file = kind, positional[1]
	return a, nil
}

// readMapping reads a mapping file: a JSON object from the file's header names to column
// names ("" ignores a column).
func readMapping(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("mapping: %w", err)
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("mapping %s: want a JSON object of header names to column names: %w", path, err)
	}
	return m, nil
}

// showProgress draws the import's progress on w until the returned stop is called: a bar
// redrawn in place on a terminal, or a line per 10% of the file read (lines); then a last
// line once every row is done.
func showProgress(w io.Writer, p *csvimport.Progress, mode string) (stop func()) {
	if mode == "auto" {
		mode = "none"
		if f, ok := w.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				mode = "bar"
			}
		}
	}
	if mode == "none" {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		start, lastTenth := time.Now(), -1.0
		for {
			select {
			case <-done:
				s := p.Snapshot()
				if mode == "bar" {
					fmt.Fprint(w, "\r")
				}
				fmt.Fprintln(w, importBar(s, time.Since(start))) // the last line: every row done
				return
			case <-tick.C:
				s := p.Snapshot()
				switch tenth := float64(int(s.Percent / 10)); {
				case mode == "bar":
					fmt.Fprintf(w, "\r%s", importBar(s, time.Since(start)))
				case tenth > lastTenth:
					lastTenth = tenth
					fmt.Fprintln(w, importBar(s, time.Since(start)))
				}
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// importBar is one line: [#####.....]  52.0%  52,000 rows  4,100 rows/s
func importBar(s csvimport.ProgressSnapshot, elapsed time.Duration) string {
	const width = 30
	filled := int(s.Percent / 100 * width)
	rate := 0.0
	if elapsed > 0 {
		rate = float64(s.Rows) / elapsed.Seconds()
	}
	return fmt.Sprintf("[%s%s] %5.1f%%  %d rows  %.0f rows/s",
		strings.Repeat("#", filled), strings.Repeat(".", width-filled), s.Percent, s.Rows, rate)
}
