// Command crm is the event-sourced CRM: its HTTP server and its command-line tools.
//
//	crm serve                 run the HTTP API
//	crm seed [flags]          write a realistic, deterministic sales history
//	crm history STREAM        print a stream's events
//	crm verify                check every hash chain of the log
//	crm audit <command>       signed checkpoints, offline verification against them
//
// Settings come from environment variables (CRM_ADDR, CRM_DATA_DIR, CRM_STORE, CRM_TOKENS,
// CRM_LOG_LEVEL); see the README.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/eventcrm/crm/cmd/crm/internal/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return // the help asked for is printed
		}
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintln(os.Stderr, "crm:", err)
			os.Exit(2)
		}
		// One line: driver errors may span several.
		fmt.Fprintln(os.Stderr, "crm:", strings.Join(strings.Fields(err.Error()), " "))
		os.Exit(1)
	}
}

const usage = `usage: crm <command> [flags]

commands:
  serve     run the HTTP API (CRM_ADDR, default :8080)
  seed      write a realistic, deterministic sales history through the command path
  history   print the events of one stream: crm history contact-<id> | deal-<id>
  verify    check the hash chain of every stream; exits 1 naming the first broken event
  audit     key, checkpoint, verify (offline, against a signed checkpoint), access-log
  rebuild   rebuild read models from the log into new tables and switch: --projection NAME | --all
  projections diff NAME
            build a projection's code beside the tables in service and show what would change
  accounts link-by-company [--dry-run]
            propose accounts from the contacts' free-text company and (without --dry-run)
            create them and link the contacts
  import    contacts|deals|touchpoints FILE [--dry-run] [--encoding auto|utf-8|shift_jis] [--mapping FILE]
            import a CSV file (Excel's too) through the commands; importing it again appends nothing

Run 'crm <command> -h' for the flags of a command.
`

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// run is the whole program, so it can be tested without a process.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{"no command given (run 'crm -h' for the commands)"}
	}
	cfg := config.FromEnv(getenv)
	switch args[0] {
	case "serve":
		return runServe(ctx, cfg, args[1:], stdout, stderr)
	case "seed":
		return runSeed(ctx, cfg, args[1:], stdout, stderr)
	case "history":
		return runHistory(ctx, cfg, args[1:], stdout, stderr)
	case "verify":
		return runVerify(ctx, cfg, args[1:], stdout, stderr)
	case "audit":
		return runAudit(ctx, cfg, args[1:], stdout, stderr)
	case "rebuild":
		return runRebuild(ctx, cfg, getenv, args[1:], stdout, stderr)
	case "projections":
		return runProjections(ctx, cfg, args[1:], stdout, stderr)
	case "accounts":
		return runAccounts(ctx, cfg, args[1:], stdout, stderr)
	case "import":
		return runImport(ctx, cfg, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		return usageError{fmt.Sprintf("unknown command %q (run 'crm -h' for the commands)", args[0])}
	}
}

// parseArgs parses a command's flags into cfg and validates the whole configuration, before
// the command does anything. -h prints the command's flags on stdout and returns
// flag.ErrHelp, which ends the program with status 0; a mistake in the command line is a
// usageError of one line.
func parseArgs(fs *flag.FlagSet, args []string, cfg *config.Config, stdout io.Writer) error {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprintf(stdout, "usage: crm %s [flags]\n\nflags:\n", fs.Name())
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return flag.ErrHelp
	case err != nil:
		return usageError{fmt.Sprintf("%s: %v (run 'crm %s -h' for its flags)", fs.Name(), err, fs.Name())}
	}
	return cfg.Validate()
}
