package audit_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/audit"
	"github.com/eventcrm/crm/eventstore/postgres"
	"github.com/eventcrm/crm/eventstore/postgres/postgrestest"
	"github.com/eventcrm/crm/eventstore/sqlite"
)

// logEvents is the size of the log every mutation starts from.
const logEvents = 300

// mutations is how many random mutations each backend's tamper test applies.
func mutations(t *testing.T) int {
	if testing.Short() {
		return 300
	}
	return 2000
}

// buildLog appends a log of n events over 40 streams, in appends of one to three events,
// with metadata of every kind.
func buildLog(t *testing.T, s eventstore.Store, n int) {
	t.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(42, 42))
	at := time.Date(2024, 1, 1, 9, 0, 0, 0, time.UTC)
	for i := 0; i < n; {
		stream := fmt.Sprintf("contact-%d", rng.IntN(40))
		k := min(n-i, 1+rng.IntN(3))
		events := make([]eventstore.EventData, k)
		for j := range events {
			events[j] = eventstore.EventData{
				ID:   fmt.Sprintf("%08d-0000-4000-8000-%012d", i+j, rng.IntN(1e9)),
				Type: []string{"contact.created.v1", "contact.phase_changed.v1", "deal.won.v1"}[rng.IntN(3)],
				Data: fmt.Appendf(nil, `{"i":%d,"name":"Ada Lovelace","amount":%d,"note":"ünïcode"}`, i+j, rng.IntN(1e6)),
				Metadata: eventstore.Metadata{Actor: fmt.Sprintf("user:%d", rng.IntN(5)), CommandID: fmt.Sprint(i + j),
					CorrelationID: "corr", Reason: []string{"", "call <notes> & \"quotes\""}[rng.IntN(2)]},
				OccurredAt: at.Add(time.Duration(i+j) * time.Minute),
			}
		}
		if _, err := s.Append(ctx, stream, eventstore.AnyVersion, events); err != nil {
			t.Fatal(err)
		}
		i += k
	}
}

// mutTx is a transaction that changes stored rows, through which verification then reads.
type mutTx interface {
	source() audit.Source
	setBytes(ctx context.Context, position int64, column string, v []byte) error
	setText(ctx context.Context, position int64, column, v string) error
	// setInt sets an integer column; occurred_at and recorded_at in unix microseconds.
	setInt(ctx context.Context, position int64, column string, v int64) error
	delete(ctx context.Context, position int64) error
	// shift moves every event at position >= from one position up.
	shift(ctx context.Context, from int64) error
	insert(ctx context.Context, r audit.Row) error
	rollback(ctx context.Context) error
}

// mutation changes stored rows in a transaction and returns the event it aimed at.
type mutation struct {
	name  string
	apply func(ctx context.Context, tx mutTx, rows []audit.Row, rng *rand.Rand) (target audit.Row, err error)
}

func pick(rows []audit.Row, rng *rand.Rand) audit.Row { return rows[rng.IntN(len(rows))] }

// flipBit flips one random bit; in text, one of the low seven, never making a NUL, so the
// result stays text every database accepts.
func flipBit(b []byte, rng *rand.Rand, text bool) []byte {
	b = bytes.Clone(b)
	for {
		i := rng.IntN(len(b))
		bit := byte(1) << rng.IntN(8)
		if text {
			bit = byte(1) << rng.IntN(7)
		}
		if !text || b[i]^bit != 0 {
			b[i] ^= bit
			return b
		}
	}
}

func chain(r *audit.Row) []byte {
	e := eventstore.Event{ID: r.ID, Stream: r.Stream, Version: r.Version, Type: r.Type, Data: r.Data,
		OccurredAt: audit.Time(r.OccurredAt), RecordedAt: audit.Time(r.RecordedAt)}
	// Forged rows carry metadata written like the store's, so only their place can tell.
	e.Metadata = eventstore.Metadata{Actor: "user:forger"}
	r.Metadata = []byte(`{"actor":"user:forger"}`)
	return eventstore.ChainHash(r.PrevHash, e)
}

// lastOf returns the last row of stream.
func lastOf(rows []audit.Row, stream string) audit.Row {
	var last audit.Row
	for _, r := range rows {
		if r.Stream == stream {
			last = r
		}
	}
	return last
}

// insertAt makes room at position p and inserts r there.
func insertAt(ctx context.Context, tx mutTx, p int64, r audit.Row) error {
	if err := tx.shift(ctx, p); err != nil {
		return err
	}
	r.Position = p
	return tx.insert(ctx, r)
}

var mutationKinds = []mutation{
	{"flip a bit of data", func(ctx context.Context, tx mutTx, rows []audit.Row, rng *rand.Rand) (audit.Row, error) {
		r := pick(rows, rng)
		return r, tx.setBytes(ctx, r.Position, "data", flipBit(r.Data, rng, false))
	}},
	{"flip a bit of metadata", func(ctx context.Context, tx mutTx, rows []audit.Row, rng *rand.Rand) (audit.Row, error) {
		r := pick(rows, rng)
		return r, tx.setBytes(ctx, r.Position, "metadata", flipBit(r.Metadata, rng, true))
	}},
	{"change the case of a metadata key", func(ctx context.Context, tx mutTx, rows []audit.Row, rng *rand.Rand) (audit.Row, error) {
		// A decoder matches JSON keys without regard to case: the decoded event is the same.
		r := pick(rows, rng)
		return r, tx.setBytes(ctx, r.Position, "metadata", bytes.Replace(r.Metadata, []byte(`"actor"`), []byte(`"Actor"`), 1))
	}},
	{"flip a bit of the type", func(ctx context.Context, tx mutTx, rows []audit.Row, rng *rand.Rand) (audit.Row, error) {
		r := pick(rows, rng)
		return r, tx.setText(ctx, r.Position, "type", string(flipBit([]byte(r.Type), rng, true)))
	}},
	{"flip a bit of the id", func(ctx context.Context, tx mutTx, rows []audit.Row, rng *rand.Rand) (audit.Row, error) {
		r := pick(rows, rng)
		return r, tx.setText(ctx, r.Position, "id", string(flipBit([]byte(r.ID), rng, true)))
	}},
	{"flip a bit of the stream", func(ctx context.Context, tx mutTx, rows []audit.Row, rng *rand.Rand) (audit.Row, error) {
		r := pick(rows, rng)
		return r, tx.setText(ctx, r.Position, "stream", string(flipBit([]byte(r.Stream), rng, true)))
	}},
	{"change a business time", func(ctx context.Context, tx mutTx, rows []audit.Row, rng *rand.Rand) (audit.Row, error) {
		r := pick(rows, rng)
		return r, tx.setInt(ctx, r.Position, "occurred_at", r.OccurredAt+1+rng.Int64N(1e9))
	}},
	{"change a recorded time", func(ctx context.Context, tx mutTx, rows []audit.Row, rng *rand.Rand) (audit.Row, error) {
		r := pick(rows, rng)
		return r, tx.setInt(ctx, r.Position, "recorded_at", r.RecordedAt-1-rng.Int64N(1e6))
	}},
	{"change a version", func(ctx context.Context, tx mutTx, rows []audit.Row, rng *rand.Rand) (audit.Row, error) {
		r := pick(rows, rng)
		return r, tx.setInt(ctx, r.Position, "version", r.Version+1000)
	}},
	{"flip a bit of the hash column", func(ctx context.Context, tx mutTx, rows []audit.Row, rng *rand.Rand) (audit.Row, error) {
		r := pick(rows, rng)
		return r, tx.setBytes(ctx, r.Position, "hash", flipBit(r.Hash, rng, false))
	}},
	{"change the previous-hash column", func(ctx context.Context, tx mutTx, rows []audit.Row, rng *rand.Rand) (audit.Row, error) {
		r := pick(rows, rng)
		if len(r.PrevHash) == 0 {
			sum := sha256.Sum256([]byte(r.ID))
			return r, tx.setBytes(ctx, r.Position, "prev_hash", sum[:])
		}
		return r, tx.setBytes(ctx, r.Position, "prev_hash", flipBit(r.PrevHash, rng, false))
	}},
	{"delete an event", func(ctx context.Context, tx mutTx, rows []audit.Row, rng *rand.Rand) (audit.Row, error) {
		r := pick(rows, rng)
		return r, tx.delete(ctx, r.Position)
	}},
	{"delete the last event of a stream", func(ctx context.Context, tx mutTx, rows []audit.Row, rng *rand.Rand) (audit.Row, error) {
		r := lastOf(rows, pick(rows, rng).Stream)
		return r, tx.delete(ctx, r.Position)
	}},
	{"delete the tail of the log", func(ctx context.Context, tx mutTx, rows []audit.Row, rng *rand.Rand) (audit.Row, error) {
		k := 1 + rng.IntN(3)
		for _, r := range rows[len(rows)-k:] {
			if err := tx.delete(ctx, r.Position); err != nil {
				return r, err
			}
		}
		return rows[len(rows)-k], nil
	}},
	{"swap two events' positions", func(ctx context.Context, tx mutTx, rows []audit.Row, rng *rand.Rand) (audit.Row, error) {
		i := rng.IntN(len(rows))
		j := (i + 1 + rng.IntN(len(rows)-1)) % len(rows)
		a, b := rows[i], rows[j]
		for _, step := range [][2]int64{{a.Position, -1}, {b.Position, a.Position}, {-1, b.Position}} {
			if err := tx.setInt(ctx, step[0], "position", step[1]); err != nil {
				return a, err
			}
		}
		return a, nil
	}},
	{"move the last event to a later position", func(ctx context.Context, tx mutTx, rows []audit.Row, rng *rand.Rand) (audit.Row, error) {
		r := rows[len(rows)-1]
		return r, tx.setInt(ctx, r.Position, "position", r.Position+1+rng.Int64N(1000))
	}},
	{"insert a new stream's event", func(ctx context.Context, tx mutTx, rows []audit.Row, rng *rand.Rand) (audit.Row, error) {
		r := audit.Row{ID: fmt.Sprintf("forged-%d", rng.Int()), Stream: "contact-forged", Version: 1, Type: "contact.created.v1",
			Data: []byte(`{"forged":true}`), OccurredAt: rows[0].OccurredAt, RecordedAt: rows[0].RecordedAt, PrevHash: []byte{}}
		r.Hash = chain(&r)
		r.Position = pick(rows, rng).Position
		return r, insertAt(ctx, tx, r.Position, r)
	}},
	{"insert a well-chained event after a stream's last", func(ctx context.Context, tx mutTx, rows []audit.Row, rng *rand.Rand) (audit.Row, error) {
		// Its chain holds: only its place in the global log gives it away. The stream must
		// not end the log, or the event would be a later append, which is no tampering.
		end := rows[len(rows)-1].Position
		last := lastOf(rows, pick(rows, rng).Stream)
		for last.Position == end {
			last = lastOf(rows, pick(rows, rng).Stream)
		}
		r := audit.Row{ID: fmt.Sprintf("forged-%d", rng.Int()), Stream: last.Stream, Version: last.Version + 1,
			Type: "deal.won.v1", Data: []byte(`{"amount":1000000}`), OccurredAt: last.OccurredAt, RecordedAt: last.RecordedAt,
			PrevHash: last.Hash}
		r.Hash = chain(&r)
		r.Position = last.Position + 1 + rng.Int64N(end-last.Position)
		return r, insertAt(ctx, tx, r.Position, r)
	}},
	{"rewrite an event and re-chain its stream", func(ctx context.Context, tx mutTx, rows []audit.Row, rng *rand.Rand) (audit.Row, error) {
		// Whoever can write the database can recompute the chain: only the checkpoint holds.
		target := pick(rows, rng)
		var prev []byte
		for _, r := range rows {
			if r.Stream != target.Stream || r.Version < target.Version {
				continue
			}
			if r.Version == target.Version {
				r.Data = []byte(`{"amount":0}`)
				if err := tx.setBytes(ctx, r.Position, "data", r.Data); err != nil {
					return target, err
				}
			} else {
				r.PrevHash = prev
				if err := tx.setBytes(ctx, r.Position, "prev_hash", prev); err != nil {
					return target, err
				}
			}
			meta := r.Metadata
			e := eventstore.Event{ID: r.ID, Stream: r.Stream, Version: r.Version, Type: r.Type, Data: r.Data,
				OccurredAt: audit.Time(r.OccurredAt), RecordedAt: audit.Time(r.RecordedAt)}
			if err := jsonMetadata(meta, &e.Metadata); err != nil {
				return target, err
			}
			prev = eventstore.ChainHash(r.PrevHash, e)
			if err := tx.setBytes(ctx, r.Position, "hash", prev); err != nil {
				return target, err
			}
		}
		return target, nil
	}},
}

// tamperRun applies random mutations, each in a transaction, and checks that verification
// against the checkpoint taken before detects every one; it also checks the mutated event
// alone where a mutation targets one.
type tamperRun struct {
	key    audit.PublicKey
	cp     audit.Checkpoint
	tree   *audit.Tree
	feed   audit.Source
	begin  func(ctx context.Context) (mutTx, error)
	counts map[string]int
	// reasons counts what verification reported, by kind of problem.
	reasons map[string]int
}

func (r *tamperRun) run(t *testing.T, n int, seed uint64) {
	t.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, seed))
	refused := 0
	for applied := 0; applied < n; {
		kind := mutationKinds[applied%len(mutationKinds)]
		tx, err := r.begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := tx.source().ReadAfter(ctx, 0, 10*logEvents)
		if err != nil {
			t.Fatal(err)
		}
		target, err := kind.apply(ctx, tx, rows, rng)
		if err != nil {
			// A constraint refused it (a flipped stream that collides, JSON PostgreSQL rejects):
			// the database already protects that row; try another mutation.
			if rerr := tx.rollback(ctx); rerr != nil {
				t.Fatal(rerr)
			}
			if refused++; refused > n {
				t.Fatalf("%d mutations refused, the last: %s: %v", refused, kind.name, err)
			}
			continue
		}
		v := audit.Verifier{Key: r.key, Source: tx.source()}
		_, verr := v.Log(ctx, r.cp)
		if verr == nil {
			t.Errorf("mutation %d (%s of %s version %d at position %d) went undetected", applied, kind.name, target.Stream, target.Version, target.Position)
		}
		r.counts[kind.name]++
		r.reasons[reason(verr)]++
		// The single-event check, for the mutations that change one event in place.
		if strings.HasPrefix(kind.name, "flip a bit of data") || strings.HasPrefix(kind.name, "change the case") ||
			strings.HasPrefix(kind.name, "rewrite") || strings.HasPrefix(kind.name, "change a business") {
			ledger, err := audit.NewLedger(audit.LedgerConfig{Tree: r.tree, Feed: r.feed, Source: tx.source()})
			if err != nil {
				t.Fatal(err)
			}
			v.Ledger = ledger
			if _, err := v.Event(ctx, r.cp, target.Stream, target.Version); err == nil {
				t.Errorf("mutation %d (%s of %s version %d): the event's own verification passed", applied, kind.name, target.Stream, target.Version)
			}
		}
		if err := tx.rollback(ctx); err != nil {
			t.Fatal(err)
		}
		applied++
		if applied%500 == 0 { // the rollbacks leave the log as it was
			tx, err := r.begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := (audit.Verifier{Key: r.key, Source: tx.source()}).Log(ctx, r.cp); err != nil {
				t.Fatalf("after %d rolled-back mutations the log does not verify: %v", applied, err)
			}
			if err := tx.rollback(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	total := 0
	for _, c := range r.counts {
		total += c
	}
	if total != n || len(r.counts) != len(mutationKinds) {
		t.Fatalf("%d mutations of %d kinds, want %d of %d", total, len(r.counts), n, len(mutationKinds))
	}
	t.Logf("%d mutations (%d refused by the database), all detected: %v", total, refused, r.reasons)
}

func reason(err error) string {
	var ce *eventstore.ChainError
	switch {
	case err == nil:
		return "undetected"
	case errors.As(err, &ce):
		return "chain: " + strings.SplitN(ce.Problem, " ", 3)[0] + " " + strings.SplitN(ce.Problem, " ", 3)[1]
	case errors.Is(err, audit.ErrLogAltered):
		switch {
		case strings.Contains(err.Error(), "root"):
			return "merkle root"
		case strings.Contains(err.Error(), "position"):
			return "last position"
		default:
			return "size"
		}
	default:
		return "read error"
	}
}

func newSigner(t *testing.T) *audit.Signer {
	t.Helper()
	s, _, err := audit.LoadOrCreateKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// checkpoint builds the tree of the log as it is and signs it.
func checkpoint(t *testing.T, feed, src audit.Source) (*audit.Tree, audit.Checkpoint, audit.PublicKey) {
	t.Helper()
	ctx := context.Background()
	tree, err := audit.OpenTree(ctx, filepath.Join(t.TempDir(), "tree.db"), audit.WithTileHeight(4))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tree.Close() })
	signer := newSigner(t)
	ledger, err := audit.NewLedger(audit.LedgerConfig{Tree: tree, Feed: feed, Source: src, Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	cp, err := ledger.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != logEvents {
		t.Fatalf("checkpoint of %d events", cp.Size)
	}
	if _, err := (audit.Verifier{Key: signer.Public(), Source: src}).Log(ctx, cp); err != nil {
		t.Fatalf("the untouched log: %v", err)
	}
	return tree, cp, signer.Public()
}

// SQLite

type sqliteTx struct{ tx *sql.Tx }

func (s sqliteTx) source() audit.Source { return audit.SQLiteSource(s.tx) }

func (s sqliteTx) exec(ctx context.Context, query string, args ...any) error {
	res, err := s.tx.ExecContext(ctx, query, args...)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("%s: %d rows changed (%v)", query, n, err)
	}
	return nil
}

func (s sqliteTx) setBytes(ctx context.Context, p int64, col string, v []byte) error {
	return s.exec(ctx, "UPDATE events SET "+col+" = ? WHERE position = ?", v, p)
}

func (s sqliteTx) setText(ctx context.Context, p int64, col, v string) error {
	return s.exec(ctx, "UPDATE events SET "+col+" = ? WHERE position = ?", v, p)
}

func (s sqliteTx) setInt(ctx context.Context, p int64, col string, v int64) error {
	return s.exec(ctx, "UPDATE events SET "+col+" = ? WHERE position = ?", v, p)
}

func (s sqliteTx) delete(ctx context.Context, p int64) error {
	return s.exec(ctx, "DELETE FROM events WHERE position = ?", p)
}

func (s sqliteTx) shift(ctx context.Context, from int64) error {
	// Through negative positions: the primary key is checked row by row.
	if _, err := s.tx.ExecContext(ctx, "UPDATE events SET position = -position - 1 WHERE position >= ?", from); err != nil {
		return err
	}
	_, err := s.tx.ExecContext(ctx, "UPDATE events SET position = -position WHERE position < 0")
	return err
}

func (s sqliteTx) insert(ctx context.Context, r audit.Row) error {
	return s.exec(ctx, `INSERT INTO events (position, id, stream, version, type, data, metadata, occurred_at, recorded_at, prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, r.Position, r.ID, r.Stream, r.Version, r.Type, r.Data, r.Metadata,
		r.OccurredAt, r.RecordedAt, r.PrevHash, r.Hash)
}

func (s sqliteTx) rollback(context.Context) error { return s.tx.Rollback() }

func openSQLiteStore(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func writableDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestTamperingIsDetectedOnSQLite(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "crm.db")
	store := openSQLiteStore(t, path)
	buildLog(t, store, logEvents)
	src := audit.SQLiteSource(store.DB())
	tree, cp, key := checkpoint(t, src, src)
	db := writableDB(t, path)
	run := &tamperRun{key: key, cp: cp, tree: tree, feed: src, counts: map[string]int{}, reasons: map[string]int{},
		begin: func(ctx context.Context) (mutTx, error) {
			tx, err := db.BeginTx(ctx, nil)
			return sqliteTx{tx}, err
		}}
	start := time.Now()
	run.run(t, mutations(t), 1)
	t.Logf("in %s", time.Since(start).Round(time.Millisecond))
}

// The same on copies of the file, committed, then verified the way `crm audit verify` does:
// through a store opened on the copy.
func TestTamperingIsDetectedOnSQLiteCopies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "crm.db")
	store := openSQLiteStore(t, path)
	buildLog(t, store, logEvents)
	src := audit.SQLiteSource(store.DB())
	_, cp, key := checkpoint(t, src, src)
	rng := rand.New(rand.NewPCG(2, 2))
	writable := writableDB(t, path)
	n := 2 * len(mutationKinds)
	for i := range n {
		kind := mutationKinds[i%len(mutationKinds)]
		cpy := filepath.Join(dir, fmt.Sprintf("copy-%d.db", i))
		if _, err := writable.ExecContext(ctx, "VACUUM INTO ?", cpy); err != nil {
			t.Fatal(err)
		}
		db := writableDB(t, cpy)
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := audit.SQLiteSource(tx).ReadAfter(ctx, 0, 10*logEvents)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kind.apply(ctx, sqliteTx{tx}, rows, rng); err != nil {
			t.Fatalf("%s: %v", kind.name, err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		db.Close()
		copied := openSQLiteStore(t, cpy)
		if _, err := (audit.Verifier{Key: key, Source: audit.SQLiteSource(copied.DB())}).Log(ctx, cp); err == nil {
			t.Errorf("%s on a copy went undetected", kind.name)
		}
		copied.Close()
		os.Remove(cpy)
	}
}

// PostgreSQL

func postgresURL() string {
	if u := os.Getenv("CRM_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// openPostgres opens a store in a fresh schema, dropped when t ends. It fails, never skips,
// when PostgreSQL cannot be reached.
func openPostgres(t testing.TB) *postgres.Store {
	t.Helper()
	ctx := context.Background()
	var b [6]byte
	sum := sha256.Sum256([]byte(t.Name() + time.Now().String()))
	copy(b[:], sum[:])
	schema := "audit_test_" + hex.EncodeToString(b[:])
	s, err := postgres.Open(ctx, postgresURL(), postgres.WithSchema(schema))
	if err != nil {
		t.Fatalf("open PostgreSQL at %s (set CRM_TEST_POSTGRES_URL): %v", redact(postgresURL()), err)
	}
	postgrestest.DropWhenDone(t, postgresURL(), schema)
	t.Cleanup(func() { s.Close() })
	return s
}

func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(the URL)"
	}
	return p.Redacted()
}

type postgresTx struct{ tx pgx.Tx }

func (p postgresTx) source() audit.Source { return audit.PostgresSource(p.tx) }

func (p postgresTx) exec(ctx context.Context, query string, args ...any) error {
	tag, err := p.tx.Exec(ctx, query, args...)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%s: no row changed", query)
	}
	return nil
}

func (p postgresTx) setBytes(ctx context.Context, pos int64, col string, v []byte) error {
	if col == "metadata" { // a json column: it takes the text as it is, if it is JSON
		return p.exec(ctx, "UPDATE events SET metadata = $1::text::json WHERE position = $2", string(v), pos)
	}
	return p.exec(ctx, "UPDATE events SET "+col+" = $1 WHERE position = $2", v, pos)
}

func (p postgresTx) setText(ctx context.Context, pos int64, col, v string) error {
	return p.exec(ctx, "UPDATE events SET "+col+" = $1 WHERE position = $2", v, pos)
}

func (p postgresTx) setInt(ctx context.Context, pos int64, col string, v int64) error {
	if col == "occurred_at" || col == "recorded_at" {
		return p.exec(ctx, "UPDATE events SET "+col+" = $1 WHERE position = $2", audit.Time(v), pos)
	}
	return p.exec(ctx, "UPDATE events SET "+col+" = $1 WHERE position = $2", v, pos)
}

func (p postgresTx) delete(ctx context.Context, pos int64) error {
	return p.exec(ctx, "DELETE FROM events WHERE position = $1", pos)
}

func (p postgresTx) shift(ctx context.Context, from int64) error {
	if _, err := p.tx.Exec(ctx, "UPDATE events SET position = -position - 1 WHERE position >= $1", from); err != nil {
		return err
	}
	_, err := p.tx.Exec(ctx, "UPDATE events SET position = -position WHERE position < 0")
	return err
}

func (p postgresTx) insert(ctx context.Context, r audit.Row) error {
	return p.exec(ctx, `INSERT INTO events (position, id, stream, version, type, data, metadata, occurred_at, recorded_at, prev_hash, hash, tx)
		VALUES ($1, $2, $3, $4, $5, $6, $7::text::json, $8, $9, $10, $11, pg_current_xact_id())`, r.Position, r.ID, r.Stream, r.Version,
		r.Type, r.Data, string(r.Metadata), audit.Time(r.OccurredAt), audit.Time(r.RecordedAt), r.PrevHash, r.Hash)
}

func (p postgresTx) rollback(ctx context.Context) error { return p.tx.Rollback(ctx) }

func TestTamperingIsDetectedOnPostgres(t *testing.T) {
	t.Parallel()
	store := openPostgres(t)
	buildLog(t, store, logEvents)
	feed, src := audit.StoreSource(store), audit.PostgresSource(store.Pool())
	tree, cp, key := checkpoint(t, feed, src)
	run := &tamperRun{key: key, cp: cp, tree: tree, feed: feed, counts: map[string]int{}, reasons: map[string]int{},
		begin: func(ctx context.Context) (mutTx, error) {
			tx, err := store.Pool().Begin(ctx)
			return postgresTx{tx}, err
		}}
	start := time.Now()
	run.run(t, mutations(t), 3)
	t.Logf("in %s", time.Since(start).Round(time.Millisecond))
}

// A raw source reads exactly what the store's own reads return.
func TestSourcesAgreeWithTheStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sq := openSQLiteStore(t, filepath.Join(t.TempDir(), "crm.db"))
	pg := openPostgres(t)
	for name, s := range map[string]struct {
		store eventstore.Store
		raw   audit.Source
	}{"sqlite": {sq, audit.SQLiteSource(sq.DB())}, "postgres": {pg, audit.PostgresSource(pg.Pool())}} {
		buildLog(t, s.store, 50)
		want, err := audit.StoreSource(s.store).ReadAfter(ctx, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.raw.ReadAfter(ctx, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		norm := func(rows []audit.Row) []audit.Row {
			for i := range rows {
				if len(rows[i].PrevHash) == 0 {
					rows[i].PrevHash = nil
				}
			}
			return rows
		}
		if !slices.EqualFunc(norm(got), norm(want), rowsEqual) {
			t.Fatalf("%s: raw rows differ from the store's", name)
		}
		stream := want[7].Stream
		gotS, err := s.raw.ReadStream(ctx, stream, 2, 3)
		if err != nil || len(gotS) == 0 || gotS[0].Version != 2 {
			t.Fatalf("%s: read stream: %v, %v", name, gotS, err)
		}
		if none, err := s.raw.ReadStream(ctx, "no-such-stream", 1, 3); err != nil || len(none) != 0 {
			t.Fatalf("%s: read a missing stream: %v, %v", name, none, err)
		}
	}
}

func rowsEqual(a, b audit.Row) bool {
	return a.Position == b.Position && a.ID == b.ID && a.Stream == b.Stream && a.Version == b.Version && a.Type == b.Type &&
		bytes.Equal(a.Data, b.Data) && bytes.Equal(a.Metadata, b.Metadata) && a.OccurredAt == b.OccurredAt &&
		a.RecordedAt == b.RecordedAt && bytes.Equal(a.PrevHash, b.PrevHash) && bytes.Equal(a.Hash, b.Hash)
}

func jsonMetadata(b []byte, m *eventstore.Metadata) error { return json.Unmarshal(b, m) }
