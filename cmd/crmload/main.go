// Command crmload measures the whole CRM server under load: it starts the real `crm serve`
// as a child process on a copy of a seeded store, on a loopback port, and drives it over
// HTTP with pinned readers, paced and full-speed writers, and lag probes. It prints a
// Markdown report (and, with --json, the same figures as JSON) and stops by itself.
//
//	crmload --sqlite /path/to/seeded/crm.db
//	crmload --postgres postgres://… --schema crm_bench_rebuild_log
//
// Run `crmload -h` for every flag.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "crmload:", strings.Join(strings.Fields(err.Error()), " "))
		os.Exit(1)
	}
}

// options are the command line.
type options struct {
	crm      string // the crm binary
	sqlite   string // a seeded SQLite store file, copied for the run
	postgres string // a PostgreSQL database URL
	schema   string // the seeded store schema in it, copied for the run
	work     string // where the copies go

	duration     time.Duration // per reader round and per paced scenario
	readers      int
	rates        []int // commands/s beside the readers, one round each
	rounds       int
	lanes        int // concurrent writer clients of a paced scenario
	saturation   int // writer clients of the saturation scenario
	lagRate      int // commands/s of the lag scenario
	burst        time.Duration
	catchUp      time.Duration // longest wait for the read models to catch up
	startup      time.Duration // longest wait for a server's start: its catch-up over the whole log
	settle       time.Duration // quiet time the server needs before a measurement
	scenarios    map[string]bool
	jsonPath     string
	snapshotEach string // CRM_SNAPSHOT_EVERY for the server, when set
	questions    string // the set of questions the readers ask (see questionSets)
	keep         bool   // keep the run's copy of the store and its read models
}

// scenarioNames are the scenarios, in the order they run.
var scenarioNames = []string{"readers", "lag", "burst", "saturation"}

// startupOnly is the scenario of the first start alone: the server started on the copy of
// the seeded store until its read models have caught up (make bench-firststart). It runs
// only when asked, and is then the whole run.
const startupOnly = "startup"

const usageHead = `usage: crmload (--sqlite CRM.DB | --postgres URL --schema NAME) [flags]

Starts 'crm serve' (--crm) on a copy of a seeded store, waits until every projection has
caught up and the server is quiet, then runs, in this order:

  readers     --readers clients, each pinned to one question (board, journey map, churn
              points, one contact's journey, one contact), for --duration, beside paced
              writers at each of --rates commands/s; the rates interleaved, --rounds times
  lag         writers at --lag-rate commands/s; for every deal command, the time from its
              answer until GET /v1/pipeline/board?min_position=P answers not stale
  burst       --saturation writers at full speed for --burst, then the read models' lag
              every 250 ms until they have caught up (at most --catch-up)
  saturation  --saturation writers at full speed for --duration on an empty store of the
              same backend, beside a trivial JSON handler in this process driven by the
              same client code

  startup     only the start: the time until the read models have caught up with the
              seeded log, and the server's notices of a stalled feed meanwhile

Between scenarios it waits for the read models to catch up. Any answer that is not 2xx is
an error: it is counted and shown, and a run with errors exits 1 after its report.

flags:
`

func parseOptions(args []string, stderr io.Writer) (options, error) {
	o := options{}
	fs := flag.NewFlagSet("crmload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageHead)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.crm, "crm", "bin/crm", "the crm binary to start (make build writes bin/crm)")
	fs.StringVar(&o.sqlite, "sqlite", "", "seeded SQLite store (crm.db) to copy and serve")
	fs.StringVar(&o.postgres, "postgres", "", "PostgreSQL database URL of the seeded store")
	fs.StringVar(&o.schema, "schema", "", "seeded store schema in --postgres, copied to a fresh schema for the run")
	fs.StringVar(&o.work, "work", "", "directory for the copies and data directories (default: a temporary one, removed)")
	fs.DurationVar(&o.duration, "duration", 30*time.Second, "length of each reader round and of the lag and saturation scenarios")
	fs.IntVar(&o.readers, "readers", 100, "reader clients, each pinned to one question")
	rates := fs.String("rates", "0,50,200", "commands/s beside the readers, one round each, comma-separated")
	fs.IntVar(&o.rounds, "rounds", 3, "times the rates are repeated, interleaved")
	fs.StringVar(&o.questions, "questions", "core", "the questions the readers ask: core (journey map, churn points, board, a contact), analytics (KPIs, forecast, NPS, explain), lists (directory search, lists, timeline, tasks) or value (customer value, RFM, upsell, dormant, lead score); several comma-separated are asked together, from one start")
	fs.IntVar(&o.lanes, "lanes", 64, "writer clients of a paced scenario (each works through journeys of its own)")
	fs.IntVar(&o.saturation, "saturation", 64, "writer clients at full speed in the burst and saturation scenarios")
	fs.IntVar(&o.lagRate, "lag-rate", 500, "commands/s of the lag scenario")
	fs.DurationVar(&o.burst, "burst", 10*time.Second, "length of the full-speed burst")
	fs.DurationVar(&o.catchUp, "catch-up", 10*time.Minute, "longest wait for the read models to catch up between scenarios and after the burst")
	fs.DurationVar(&o.startup, "startup", time.Hour, "longest wait for a started server to catch up with the whole log and be quiet")
	fs.DurationVar(&o.settle, "settle", 15*time.Second, "the server must use under 10% of a CPU for this long before the first measurement (snapshots and catch-up are done)")
	only := fs.String("scenarios", strings.Join(scenarioNames, ","), "scenarios to run, comma-separated")
	fs.StringVar(&o.jsonPath, "json", "", "also write the report as JSON to this file")
	fs.StringVar(&o.snapshotEach, "snapshot-every", "", "CRM_SNAPSHOT_EVERY for the server (default: the server's)")
	fs.BoolVar(&o.keep, "keep", false, "keep the run's copy of the seeded store and the read models the server built (PostgreSQL: the schemas NAME, NAME_readmodels and NAME_keys named on stderr; SQLite: the --work directory), to look into them afterwards")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("crmload takes no arguments, got %q", fs.Args())
	}
	var err error
	if o.rates, err = parseRates(*rates); err != nil {
		return o, err
	}
	if o.scenarios, err = parseScenarios(*only); err != nil {
		return o, err
	}
	return o, o.validate()
}

func (o options) validate() error {
	var errs []error
	if (o.sqlite == "") == (o.postgres == "") {
		errs = append(errs, errors.New("give one store: --sqlite or --postgres"))
	}
	if o.postgres != "" && o.schema == "" {
		errs = append(errs, errors.New("--postgres needs --schema, the seeded store schema"))
	}
	if o.duration <= 0 || o.burst <= 0 || o.catchUp <= 0 || o.startup <= 0 || o.settle < 0 {
		errs = append(errs, errors.New("--duration, --burst, --catch-up and --startup must be positive"))
	}
	if _, ok := questionsOf(o.questions, ""); !ok {
		errs = append(errs, fmt.Errorf("--questions %q is not core, analytics, lists or value (or several, comma-separated)", o.questions))
	}
	if o.readers <= 0 || o.rounds <= 0 || o.lanes <= 0 || o.saturation <= 0 || o.lagRate <= 0 {
		errs = append(errs, errors.New("--readers, --rounds, --lanes, --saturation and --lag-rate must be positive"))
	}
	return errors.Join(errs...)
}

func parseRates(s string) ([]int, error) {
	var rates []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("--rates: %q is not a number of commands per second", f)
		}
		rates = append(rates, n)
	}
	return rates, nil
}

func parseScenarios(s string) (map[string]bool, error) {
	set := map[string]bool{}
	for _, f := range strings.Split(s, ",") {
		name := strings.TrimSpace(f)
		known := name == startupOnly
		for _, n := range scenarioNames {
			known = known || n == name
		}
		if !known {
			return nil, fmt.Errorf("--scenarios: unknown scenario %q (known: %s)", name, strings.Join(append(scenarioNames, startupOnly), ", "))
		}
		set[name] = true
	}
	return set, nil
}

// run is the whole program, so that a test can run it without a process of its own.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	work := o.work
	if work == "" {
		if work, err = os.MkdirTemp("", "crmload-"); err != nil {
			return fmt.Errorf("work directory: %w", err)
		}
		if o.keep {
			fmt.Fprintf(stderr, "crmload: work directory %s (kept)\n", work)
		} else {
			defer os.RemoveAll(work)
		}
	}
	rep, err := measure(ctx, o, work, stderr)
	if rep != nil {
		if werr := writeReport(rep, o.jsonPath, stdout); werr != nil {
			return errors.Join(err, werr)
		}
	}
	if err != nil {
		return err
	}
	if n := rep.errorCount(); n > 0 {
		return fmt.Errorf("%d requests failed: the figures above are flagged", n)
	}
	return nil
}
