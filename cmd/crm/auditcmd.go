package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/eventcrm/crm/cmd/crm/internal/config"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/audit"
)

const auditUsage = `usage: crm audit <command> [flags]

commands:
  key          print the public key that verifies checkpoints (JSON; --pem for PEM)
  checkpoint   print a signed checkpoint of the whole log:  crm audit checkpoint > cp.json
  verify       check the stored log against a saved checkpoint, offline:
                 crm audit verify --checkpoint cp.json [--all | --stream S | --event S:V]
                 crm audit verify --checkpoint old.json --newer new.json
  access-log   list the recorded auditor reads (--after N, --limit N) and check their chain
`

func runAudit(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{"audit needs a command: key, checkpoint, verify or access-log\n\n" + auditUsage}
	}
	switch args[0] {
	case "key":
		return runAuditKey(cfg, args[1:], stdout, stderr)
	case "checkpoint":
		return runAuditCheckpoint(ctx, cfg, args[1:], stdout, stderr)
	case "verify":
		return runAuditVerify(ctx, cfg, args[1:], stdout, stderr)
	case "access-log":
		return runAuditAccessLog(ctx, cfg, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, auditUsage)
		return nil
	default:
		return usageError{fmt.Sprintf("unknown audit command %q\n\n%s", args[0], auditUsage)}
	}
}

func auditFlags(name string, cfg *config.Config) *flag.FlagSet {
	fs := flag.NewFlagSet("audit "+name, flag.ContinueOnError)
	fs.StringVar(&cfg.DataDir, "data", cfg.DataDir, "data directory (CRM_DATA_DIR): the store, audit.key and the audit tree")
	return fs
}

func runAuditKey(cfg config.Config, args []string, stdout, stderr io.Writer) error {
	fs := auditFlags("key", &cfg)
	asPEM := fs.Bool("pem", false, "print the key as PEM (PKIX), for openssl")
	if err := parseArgs(fs, args, &cfg, stdout); err != nil {
		return err
	}
	signer, err := auditSigner(cfg)
	if err != nil {
		return err
	}
	if *asPEM {
		fmt.Fprint(stdout, signer.Public().PEM())
		return nil
	}
	return writeJSON(stdout, signer.Public().Info())
}

func runAuditCheckpoint(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	fs := auditFlags("checkpoint", &cfg)
	if err := parseArgs(fs, args, &cfg, stdout); err != nil {
		return err
	}
	store, err := config.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	ledger, closeTree, err := openLedger(ctx, cfg, store, true)
	if err != nil {
		return err
	}
	defer closeTree()
	cp, err := ledger.Checkpoint(ctx)
	if err != nil {
		return err
	}
	return writeJSON(stdout, cp)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

func readCheckpoint(path string) (audit.Checkpoint, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return audit.Checkpoint{}, err
	}
	cp, err := audit.ParseCheckpoint(b)
	if err != nil {
		return audit.Checkpoint{}, fmt.Errorf("%s: %w", path, err)
	}
	return cp, nil
}

// verifyKey is the key given with --key, or the public half of the server's own key
// (CRM_AUDIT_KEY_FILE, else the data directory's audit.key).
// An auditor pins the key it got from /v1/audit/key: a key read next to the data proves
// only that whoever holds the data signed it.
func verifyKey(cfg config.Config, path string) (audit.PublicKey, string, error) {
	from := path
	switch {
	case path != "":
	case cfg.AuditKeyFile != "":
		from = cfg.AuditKeyFile
	default:
		from = filepath.Join(cfg.DataDir, audit.KeyFile)
	}
	b, err := os.ReadFile(from)
	if err != nil {
		return audit.PublicKey{}, "", fmt.Errorf("public key: %w (give the server's key with --key)", err)
	}
	k, err := audit.ParsePublicKey(b)
	if err != nil {
		return audit.PublicKey{}, "", fmt.Errorf("%s: %w", from, err)
	}
	return k, from, nil
}

func runAuditVerify(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	fs := auditFlags("verify", &cfg)
	cpPath := fs.String("checkpoint", "", "the saved checkpoint to verify against (required)")
	keyPath := fs.String("key", "", "the server's public key: the JSON of GET /v1/audit/key or a PEM file (default: CRM_AUDIT_KEY_FILE, else the data directory's audit.key)")
	all := fs.Bool("all", false, "verify the whole log: every chain and the Merkle root (the default)")
	stream := fs.String("stream", "", "verify one stream: its chain and an inclusion proof of each event")
	event := fs.String("event", "", "verify one event, STREAM:VERSION")
	newer := fs.String("newer", "", "a newer checkpoint: verify that it extends --checkpoint")
	quiet := fs.Bool("quiet", false, "no progress output")
	if err := parseArgs(fs, args, &cfg, stdout); err != nil {
		return err
	}
	modes := 0
	for _, set := range []bool{*all, *stream != "", *event != "", *newer != ""} {
		if set {
			modes++
		}
	}
	switch {
	case *cpPath == "":
		return usageError{"audit verify needs --checkpoint FILE"}
	case modes > 1:
		return usageError{"audit verify takes one of --all, --stream, --event and --newer"}
	case fs.NArg() > 0:
		return usageError{fmt.Sprintf("audit verify takes no arguments, got %q", fs.Args())}
	}
	var (
		eventStream  string
		eventVersion int64
	)
	if *event != "" {
		s, v, ok := strings.Cut(*event, ":")
		n, err := strconv.ParseInt(v, 10, 64)
		if !ok || s == "" || err != nil || n < 1 {
			return usageError{fmt.Sprintf("--event %q: want STREAM:VERSION, e.g. contact-42:3", *event)}
		}
		eventStream, eventVersion = s, n
	}
	cp, err := readCheckpoint(*cpPath)
	if err != nil {
		return err
	}
	key, keyFrom, err := verifyKey(cfg, *keyPath)
	if err != nil {
		return err
	}
	store, err := config.OpenStoreReadOnly(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	_, src := auditSources(store)
	v := audit.Verifier{Key: key, Source: src}
	_, statErr := os.Stat(filepath.Join(cfg.DataDir, auditTreeFile))
	switch {
	case *stream != "" || *event != "" || *newer != "":
		ledger, closeTree, err := openLedger(ctx, cfg, store, false)
		if err != nil {
			return err
		}
		defer closeTree()
		v.Ledger = ledger
	case statErr == nil:
		// --all needs no tree, but names where a root mismatch comes from when there is one.
		// The tree opens for writing: on a read-only copy, verify without it.
		ledger, closeTree, err := openLedger(ctx, cfg, store, false)
		if err != nil {
			fmt.Fprintf(stderr, "audit tree not used: %v\n", err)
			break
		}
		defer closeTree()
		v.Ledger = ledger
	}
	fmt.Fprintf(stdout, "checkpoint: %d events, last position %d, root %s, signed %s by key %s (%s)\n",
		cp.Size, cp.LastPosition, cp.RootHash, cp.Timestamp, cp.KeyID, keyFrom)
	start := time.Now()
	fail := func(err error) error {
		fmt.Fprintf(stdout, "FAILED: %v\n", err)
		var ce *eventstore.ChainError
		if errors.As(err, &ce) {
			return fmt.Errorf("audit verification failed at stream %s version %d (position %d, event %s)", ce.Stream, ce.Version, ce.Position, ce.EventID)
		}
		return fmt.Errorf("audit verification failed: %w", err)
	}
	switch {
	case *newer != "":
		next, err := readCheckpoint(*newer)
		if err != nil {
			return err
		}
		if err := v.Extends(ctx, cp, next); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "OK: the checkpoint of %d events (%s) extends the checkpoint of %d events (%s)\n",
			next.Size, next.Timestamp, cp.Size, cp.Timestamp)
	case *stream != "":
		rep, err := v.Stream(ctx, cp, *stream)
		if err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "OK: stream %s: chain intact, %d events proven in the checkpoint, %d newer\n", rep.Stream, rep.Covered, rep.Newer)
	case *event != "":
		p, err := v.Event(ctx, cp, eventStream, eventVersion)
		if err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "OK: %s version %d (position %d, event %s) is event %d of the checkpoint's %d, hash %s\n",
			p.Stream, p.Version, p.Position, p.EventID, p.LeafIndex+1, p.TreeSize, p.ChainHash)
	default:
		if !*quiet {
			v.Progress = func(n int64) { fmt.Fprintf(stderr, "\rverified %d events", n) }
		}
		rep, err := v.Log(ctx, cp)
		if !*quiet {
			fmt.Fprintln(stderr)
		}
		if err != nil {
			return fail(err)
		}
		elapsed := time.Since(start)
		fmt.Fprintf(stdout, "OK: %d events match the checkpoint's root, %d newer, %d streams, every chain intact, in %s (%.0f events/s)\n",
			rep.Covered, rep.Newer, rep.Streams, elapsed.Round(time.Millisecond), float64(rep.Covered+rep.Newer)/elapsed.Seconds())
	}
	return nil
}

func runAuditAccessLog(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	fs := auditFlags("access-log", &cfg)
	after := fs.Int64("after", 0, "list entries after this sequence number")
	limit := fs.Int("limit", 100, "list at most this many entries")
	if err := parseArgs(fs, args, &cfg, stdout); err != nil {
		return err
	}
	l, closeStore, err := openAccessLogToRead(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeStore()
	defer l.Close()
	n, verr := l.Verify(ctx)
	entries, err := l.List(ctx, *after, *limit)
	if err != nil {
		return err
	}
	for _, a := range entries {
		q := ""
		if a.Query != "" {
			q = "?" + a.Query
		}
		fmt.Fprintf(stdout, "%d %s %s (%s) %s %s%s -> %d %s [request %s]\n", a.Seq, a.At.Format(time.RFC3339), a.Actor, a.Role,
			a.Method, a.Path, q, a.Status, a.What, a.RequestID)
	}
	if verr != nil {
		return verr
	}
	fmt.Fprintf(stderr, "access log: %d entries, chain intact\n", n)
	return nil
}

// openAccessLogToRead opens the access log that `crm serve` keeps: in the store's schema on
// PostgreSQL, else the data directory's file, which must exist. closeStore closes the store
// it opened, if any.
func openAccessLogToRead(ctx context.Context, cfg config.Config) (l *audit.AccessLog, closeStore func(), err error) {
	t, err := config.ParseStore(cfg.Store, cfg.DataDir)
	if err != nil {
		return nil, nil, err
	}
	if t.Backend != config.BackendPostgres {
		path := filepath.Join(cfg.DataDir, auditAccessFile)
		if _, err := os.Stat(path); err != nil {
			return nil, nil, fmt.Errorf("access log: %w", err)
		}
		l, err := audit.OpenAccessLog(ctx, path)
		return l, func() {}, err
	}
	store, err := config.OpenStore(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	if l, err = openAccessLog(ctx, cfg, store); err != nil {
		store.Close()
		return nil, nil, err
	}
	return l, func() { store.Close() }, nil
}
