package audit_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/audit"
	"github.com/eventcrm/crm/eventstore/sqlite"
)

// benchEvents is the size of the benchmark log: CRM_BENCH_AUDIT_EVENTS, default 200,000.
func benchEvents(b *testing.B) int {
	if v := os.Getenv("CRM_BENCH_AUDIT_EVENTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1000 {
			b.Fatalf("CRM_BENCH_AUDIT_EVENTS=%q: want a number of at least 1000", v)
		}
		return n
	}
	return 200_000
}

// appendLog writes n events of ~230 B data and ~110 B metadata over n/20 streams through
// Append, in appends of 5 events from 32 writers, so that streams interleave in the log as
// they do in a CRM.
func appendLog(b *testing.B, store eventstore.Store, n int) {
	b.Helper()
	ctx := context.Background()
	streams := max(1, n/20)
	const perAppend, writers = 5, 32
	data := []byte(`{"name":"Ada Lovelace","email":"ada@example.com","phase":"qualified","owner":"rep-mori","channel":"seminar","amount":125000,"currency":"EUR","note":"met at the spring seminar, wants a demo in May"}`)
	var (
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
	)
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for round := 0; round*perAppend*streams < n; round++ {
				for s := w; s < streams; s += writers {
					events := make([]eventstore.EventData, perAppend)
					for i := range events {
						events[i] = eventstore.EventData{
							ID:   fmt.Sprintf("%08x-%04x-4000-8000-%012x", s, round*perAppend+i, rng.Uint64()&0xffffffffffff),
							Type: "contact.phase_changed.v1", Data: data,
							Metadata: eventstore.Metadata{Actor: "user:rep-mori", CommandID: fmt.Sprintf("cmd-%d-%d-%d", s, round, i),
								CorrelationID: fmt.Sprintf("corr-%d-%d", s, round), Reason: "bench"},
						}
					}
					if _, err := store.Append(ctx, fmt.Sprintf("contact-%d", s), eventstore.AnyVersion, events); err != nil {
						errMu.Lock()
						first = err
						errMu.Unlock()
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		b.Fatal(first)
	}
}

// benchLog returns a SQLite log of n events, built once and kept in the temporary directory
// for later runs.
func benchLog(b *testing.B, n int) string {
	b.Helper()
	path := filepath.Join(os.TempDir(), fmt.Sprintf("crm-audit-bench-%d.db", n))
	if _, err := os.Stat(path); err == nil {
		return path
	}
	tmp := path + ".building"
	os.Remove(tmp)
	s, err := sqlite.Open(context.Background(), tmp)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	appendLog(b, s, n)
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	b.Logf("appended %d events in %s", n, time.Since(start).Round(time.Millisecond))
	for _, suffix := range []string{"-wal", "-shm"} {
		os.Remove(tmp + suffix)
	}
	if err := os.Rename(tmp, path); err != nil {
		b.Fatal(err)
	}
	return path
}

type benchFixture struct {
	store *sqlite.Store
	src   audit.Source
	tree  *audit.Tree
	cp    audit.Checkpoint
	key   audit.PublicKey
	n     int64
}

func newBenchFixture(b *testing.B) benchFixture {
	b.Helper()
	ctx := context.Background()
	n := benchEvents(b)
	s, err := sqlite.Open(ctx, benchLog(b, n))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	tree, err := audit.OpenTree(ctx, filepath.Join(b.TempDir(), "tree.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tree.Close() })
	signer, _, err := audit.LoadOrCreateKey(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	src := audit.SQLiteSource(s.DB())
	ledger, err := audit.NewLedger(audit.LedgerConfig{Tree: tree, Feed: src, Source: src, Signer: signer})
	if err != nil {
		b.Fatal(err)
	}
	cp, err := ledger.Checkpoint(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if cp.Size != int64(n) {
		b.Fatalf("log of %d events, want %d", cp.Size, n)
	}
	return benchFixture{store: s, src: src, tree: tree, cp: cp, key: signer.Public(), n: int64(n)}
}

func reportRate(b *testing.B, events int64) {
	b.ReportMetric(float64(events)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// Full-log verification against a checkpoint: every chain, every stored hash recomputed,
// the Merkle root rebuilt: `crm audit verify --all`.
func BenchmarkVerifyLog(b *testing.B) {
	f := newBenchFixture(b)
	v := audit.Verifier{Key: f.key, Source: f.src}
	b.ResetTimer()
	for b.Loop() {
		rep, err := v.Log(context.Background(), f.cp)
		if err != nil || rep.Covered != f.n {
			b.Fatalf("%+v, %v", rep, err)
		}
	}
	reportRate(b, f.n)
}

// The same on PostgreSQL, reading the rows of the events table (the log is built afresh in a
// schema of its own on every run).
func BenchmarkVerifyLogPostgres(b *testing.B) {
	ctx := context.Background()
	n := benchEvents(b)
	s := openPostgres(b)
	start := time.Now()
	appendLog(b, s, n)
	b.Logf("appended %d events in %s", n, time.Since(start).Round(time.Millisecond))
	tree, err := audit.OpenTree(ctx, filepath.Join(b.TempDir(), "tree.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer tree.Close()
	signer, _, err := audit.LoadOrCreateKey(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	src := audit.PostgresSource(s.Pool())
	ledger, err := audit.NewLedger(audit.LedgerConfig{Tree: tree, Feed: audit.StoreSource(s), Source: src, Signer: signer})
	if err != nil {
		b.Fatal(err)
	}
	start = time.Now()
	cp, err := ledger.Checkpoint(ctx)
	if err != nil || cp.Size != int64(n) {
		b.Fatalf("%+v, %v", cp, err)
	}
	b.Logf("tree of %d events built through the store in %s", n, time.Since(start).Round(time.Millisecond))
	v := audit.Verifier{Key: signer.Public(), Source: src}
	b.ResetTimer()
	for b.Loop() {
		if _, err := v.Log(ctx, cp); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, int64(n))
}

// The chains alone through the store's decoded events: `crm verify`, for comparison.
func BenchmarkVerifyChains(b *testing.B) {
	f := newBenchFixture(b)
	b.ResetTimer()
	for b.Loop() {
		n, err := eventstore.VerifyAll(context.Background(), f.store, nil)
		if err != nil || n != f.n {
			b.Fatalf("%d, %v", n, err)
		}
	}
	reportRate(b, f.n)
}

// Reading the rows alone: the floor under both.
func BenchmarkReadRows(b *testing.B) {
	f := newBenchFixture(b)
	b.ResetTimer()
	for b.Loop() {
		var after, n int64
		for {
			rows, err := f.src.ReadAfter(context.Background(), after, 8192)
			if err != nil {
				b.Fatal(err)
			}
			n += int64(len(rows))
			if len(rows) < 8192 {
				break
			}
			after = rows[len(rows)-1].Position
		}
		if n != f.n {
			b.Fatalf("read %d", n)
		}
	}
	reportRate(b, f.n)
}

// Building the stored tree of the whole log from nothing.
func BenchmarkTreeBuild(b *testing.B) {
	f := newBenchFixture(b)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		tree, err := audit.OpenTree(ctx, filepath.Join(b.TempDir(), fmt.Sprintf("tree-%d.db", i)))
		if err != nil {
			b.Fatal(err)
		}
		h, err := tree.Update(ctx, f.src)
		if err != nil || h.Root != f.cp.RootHash {
			b.Fatalf("%+v, %v", h, err)
		}
		tree.Close()
	}
	reportRate(b, f.n)
}

// capped shows a log up to a position, as it stood earlier.
type capped struct {
	audit.Source
	last int64
}

func (c capped) ReadAfter(ctx context.Context, after int64, limit int) ([]audit.Row, error) {
	rows, err := c.Source.ReadAfter(ctx, after, limit)
	for i, r := range rows {
		if r.Position > c.last {
			return rows[:i], err
		}
	}
	return rows, err
}

// A checkpoint after 1,000 new events, over a tree of the rest: the cost does not depend on
// the size of the log.
func BenchmarkCheckpointAfter1000Events(b *testing.B) {
	f := newBenchFixture(b)
	ctx := context.Background()
	dir := b.TempDir()
	base := filepath.Join(dir, "base.db")
	tree, err := audit.OpenTree(ctx, base)
	if err != nil {
		b.Fatal(err)
	}
	rows, err := f.src.ReadAfter(ctx, 0, int(f.n))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := tree.Update(ctx, capped{f.src, rows[f.n-1001].Position}); err != nil {
		b.Fatal(err)
	}
	tree.Close()
	signer, _, err := audit.LoadOrCreateKey(dir)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		path := filepath.Join(dir, fmt.Sprintf("copy-%d.db", i))
		copyFile(b, base, path)
		tree, err := audit.OpenTree(ctx, path)
		if err != nil {
			b.Fatal(err)
		}
		ledger, err := audit.NewLedger(audit.LedgerConfig{Tree: tree, Feed: f.src, Source: f.src, Signer: signer})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		cp, err := ledger.Checkpoint(ctx)
		if err != nil || cp.RootHash != f.cp.RootHash {
			b.Fatalf("%+v, %v", cp, err)
		}
		b.StopTimer()
		tree.Close()
		os.Remove(path)
		b.StartTimer()
	}
}

func copyFile(b *testing.B, from, to string) {
	b.Helper()
	in, err := os.Open(from)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		b.Fatal(err)
	}
	if err := out.Close(); err != nil {
		b.Fatal(err)
	}
}

// An inclusion proof of a random event against the current checkpoint, verified.
func BenchmarkInclusionProof(b *testing.B) {
	f := newBenchFixture(b)
	ctx := context.Background()
	signer, _, err := audit.LoadOrCreateKey(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	ledger, err := audit.NewLedger(audit.LedgerConfig{Tree: f.tree, Feed: f.src, Source: f.src, Signer: signer})
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	streams := f.n / 20
	b.ResetTimer()
	for b.Loop() {
		p, err := ledger.Prove(ctx, fmt.Sprintf("contact-%d", rng.Int64N(streams)), 1+rng.Int64N(20), 0)
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Verify(signer.Public(), *p.Checkpoint); err != nil {
			b.Fatal(err)
		}
	}
}
