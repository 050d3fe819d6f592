package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/eventcrm/crm/cmd/crm/internal/config"
	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/codec"
	keystore "github.com/eventcrm/crm/eventstore/keys"
)

func runHistory(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("history", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print one JSON object per event")
	fs.StringVar(&cfg.DataDir, "data", cfg.DataDir, "data directory (CRM_DATA_DIR)")
	if err := parseArgs(fs, args, &cfg, stdout); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{"history takes one stream name, e.g. contact-<id> or deal-<id>"}
	}
	stream := fs.Arg(0)
	store, err := config.OpenStoreReadOnly(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	cdc, closeKeys, err := historyCodec(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer closeKeys()
	// The events as stored: the chain is checked on these bytes; the codec only reads them.
	events, err := commands.NewHandler(store).History(ctx, stream)
	if err != nil {
		return err
	}
	verifier := eventstore.NewChainVerifier()
	enc := json.NewEncoder(stdout)
	for _, e := range events {
		chainErr := verifier.Check(e)
		read, reading := e, codec.NoPersonalData
		if cdc != nil {
			if read, reading, err = cdc.Read(ctx, e); err != nil {
				return err
			}
		}
		if *asJSON {
			if err := enc.Encode(historyLine(read, reading, chainErr)); err != nil {
				return fmt.Errorf("write: %w", err)
			}
		} else {
			typ, _ := read.Stored()
			if typ != read.Type {
				typ += " (read as " + read.Type + ")"
			}
			fmt.Fprintf(stdout, "v%-4d pos %-9d %-32s actor=%s reason=%q\n      occurred %s  recorded %s  hash %s%s\n      %s\n",
				e.Version, e.Position, typ, e.Metadata.Actor, e.Metadata.Reason,
				e.OccurredAt.Format(time.RFC3339), e.RecordedAt.Format(time.RFC3339Nano), hex.EncodeToString(e.Hash)[:16],
				personalNote(reading), read.Data)
		}
		if chainErr != nil {
			return chainErr
		}
	}
	return nil
}

// historyCodec opens the key store beside the log, to show personal data opened; nil when the
// data directory has none (a log written before personal data was sealed, or a copy of the
// log without its keys: the sealed boxes are then shown as stored).
func historyCodec(ctx context.Context, cfg config.Config, stderr io.Writer) (*codec.Codec, func(), error) {
	t, err := config.ParseStore(cfg.Store, cfg.DataDir)
	if err != nil {
		return nil, nil, err
	}
	if t.Backend != config.BackendPostgres {
		dir := cfg.DataDir
		if t.Backend == config.BackendSQLite {
			dir = filepath.Dir(t.Path)
		}
		if _, err := os.Stat(filepath.Join(dir, config.KeysFile)); errors.Is(err, fs.ErrNotExist) {
			return nil, func() {}, nil
		}
	}
	k, err := config.OpenKeys(ctx, cfg, t, keystore.ReadOnly())
	if err == nil {
		// A role or copy that may read the log but not the keys reads the boxes as stored.
		if _, err = k.Lookup(ctx, "", ""); errors.Is(err, keystore.ErrNoKey) {
			err = nil
		} else {
			_ = k.Close()
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "the key store cannot be read (%v): personal data is shown sealed, as stored\n", err)
		return nil, func() {}, nil
	}
	cdc, err := config.NewCodec(k)
	if err != nil {
		_ = k.Close()
		return nil, nil, err
	}
	return cdc, func() { _ = k.Close() }, nil
}

// personalNote says, in the text history, what became of an event's personal data.
func personalNote(r codec.Reading) string {
	switch r {
	case codec.Opened:
		return "  personal data opened"
	case codec.Erased:
		return "  personal data ERASED (the person's key is destroyed)"
	}
	return ""
}

func readingName(r codec.Reading) string {
	switch r {
	case codec.Opened:
		return "sealed"
	case codec.Erased:
		return "erased"
	}
	return "none"
}

// historyLine is an event of `crm history --json`: data is the event as read (personal data
// opened, or left out when erased; upcast), data_b64 the bytes as stored and hashed.
func historyLine(e eventstore.Event, reading codec.Reading, chainErr error) map[string]any {
	typ, stored := e.Stored()
	line := map[string]any{
		"id": e.ID, "stream": e.Stream, "version": e.Version, "position": e.Position, "type": typ,
		"occurred_at": e.OccurredAt, "recorded_at": e.RecordedAt, "metadata": e.Metadata,
		"data": json.RawMessage(e.Data), "prev_hash": hex.EncodeToString(e.PrevHash), "hash": hex.EncodeToString(e.Hash),
		// The bytes as stored and hashed, as GET …/history gives them.
		"data_b64": stored, "metadata_b64": e.MetadataJSON,
		"personal": readingName(reading),
	}
	if typ != e.Type {
		line["read_as"] = e.Type
	}
	if chainErr != nil {
		line["chain_error"] = chainErr.Error()
	}
	return line
}

func runVerify(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.StringVar(&cfg.DataDir, "data", cfg.DataDir, "data directory (CRM_DATA_DIR)")
	quiet := fs.Bool("quiet", false, "no progress output")
	if err := parseArgs(fs, args, &cfg, stdout); err != nil {
		return err
	}
	store, err := config.OpenStoreReadOnly(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	start := time.Now()
	progress := func(n int64) {
		if !*quiet {
			fmt.Fprintf(stderr, "\rverified %d events", n)
		}
	}
	n, err := eventstore.VerifyAll(ctx, store, progress)
	if !*quiet {
		fmt.Fprintln(stderr)
	}
	var ce *eventstore.ChainError
	if errors.As(err, &ce) {
		fmt.Fprintf(stdout, "BROKEN: %v\n", ce)
		return fmt.Errorf("verification failed at stream %s version %d (event %s)", ce.Stream, ce.Version, ce.EventID)
	}
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	fmt.Fprintf(stdout, "OK: %d events verified in %s (%.0f events/s)\n", n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds())
	return nil
}
