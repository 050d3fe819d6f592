package sqlite_test

// Benchmarks of the store next to a raw baseline measured in the same run: plain INSERTs of the
// same rows into an equivalent table, and a plain scan. Compare ratios, not absolute figures,
// which drift between machines (see PERFORMANCE.md).
//
//	go test -bench . -run '^$' ./eventstore/sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/sqlite"
)

const benchStreams = 10_000

// benchEvent returns an event of the size PERFORMANCE.md measures with: ~230 B of data and
// ~110 B of metadata.
func benchEvent(i int) eventstore.EventData {
	data := fmt.Sprintf(`{"contact_id":"%s","name":"Contact %d","email":"contact%d@example.com","phase":"lead","owner":"user:%d","source":"import","note":"%s"}`,
		newID(), i, i, i%50, strings.Repeat("x", 60))
	return eventstore.EventData{
		ID:   newID(),
		Type: "contact.created.v1",
		Data: []byte(data),
		Metadata: eventstore.Metadata{
			Actor:         "user:alice",
			CommandID:     newID(),
			CorrelationID: newID(),
		},
	}
}

func reportRate(b *testing.B, events int64) {
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}

func reportGroups(b *testing.B, s *sqlite.Store, before sqlite.Stats) {
	st := s.Stats()
	if c := st.Commits - before.Commits; c > 0 {
		b.ReportMetric(float64(st.Requests-before.Requests)/float64(c), "appends/commit")
	}
}

func BenchmarkAppendSingleWriter(b *testing.B) {
	s := mustOpen(b, filepath.Join(b.TempDir(), "events.db"))
	defer s.Close()
	ctx := context.Background()
	heads := make([]int64, benchStreams)
	events := make([][]eventstore.EventData, b.N)
	for i := range events {
		events[i] = []eventstore.EventData{benchEvent(i)}
	}
	before := s.Stats()
	b.ResetTimer()
	for i := range b.N {
		k := i % benchStreams
		res, err := s.Append(ctx, fmt.Sprintf("contact-%d", k), heads[k], events[i])
		if err != nil {
			b.Fatal(err)
		}
		heads[k] = res.Version
	}
	b.StopTimer()
	reportRate(b, int64(b.N))
	reportGroups(b, s, before)
}

// BenchmarkAppendConcurrent runs 64 writers, each appending one event at a time to its own
// streams, the way concurrent HTTP commands do.
func BenchmarkAppendConcurrent(b *testing.B) {
	const writers = 64
	s := mustOpen(b, filepath.Join(b.TempDir(), "events.db"))
	defer s.Close()
	ctx := context.Background()
	events := make([][]eventstore.EventData, b.N)
	for i := range events {
		events[i] = []eventstore.EventData{benchEvent(i)}
	}
	var next atomic.Int64
	before := s.Stats()
	b.ResetTimer()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			// Writer w owns the streams k with k % writers == w.
			heads := make(map[int]int64)
			for n := 0; ; n++ {
				i := int(next.Add(1) - 1)
				if i >= b.N {
					return
				}
				k := w + writers*(n%(benchStreams/writers))
				res, err := s.Append(ctx, fmt.Sprintf("contact-%d", k), heads[k], events[i])
				if err != nil {
					b.Error(err)
					return
				}
				heads[k] = res.Version
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	reportRate(b, int64(b.N))
	reportGroups(b, s, before)
}

func BenchmarkAppendBatch100(b *testing.B) {
	s := mustOpen(b, filepath.Join(b.TempDir(), "events.db"))
	defer s.Close()
	ctx := context.Background()
	batches := make([][]eventstore.EventData, b.N)
	for i := range batches {
		batches[i] = make([]eventstore.EventData, 100)
		for j := range batches[i] {
			batches[i][j] = benchEvent(i*100 + j)
		}
	}
	heads := make([]int64, benchStreams)
	b.ResetTimer()
	for i := range b.N {
		k := i % benchStreams
		res, err := s.Append(ctx, fmt.Sprintf("contact-%d", k), heads[k], batches[i])
		if err != nil {
			b.Fatal(err)
		}
		heads[k] = res.Version
	}
	b.StopTimer()
	reportRate(b, int64(b.N)*100)
}

// seedLog fills a store with n events over benchStreams streams, 100 events per append.
func seedLog(b *testing.B, s *sqlite.Store, n int) {
	ctx := context.Background()
	for i := 0; i < n; i += 100 {
		batch := make([]eventstore.EventData, 100)
		for j := range batch {
			batch[j] = benchEvent(i + j)
		}
		if _, err := s.Append(ctx, fmt.Sprintf("contact-%d", i/100%benchStreams), eventstore.AnyVersion, batch); err != nil {
			b.Fatal(err)
		}
	}
}

const readEvents = 100_000

func BenchmarkReadAll(b *testing.B) {
	s := mustOpen(b, filepath.Join(b.TempDir(), "events.db"))
	defer s.Close()
	seedLog(b, s, readEvents)
	ctx := context.Background()
	b.ResetTimer()
	var read int64
	for range b.N {
		for after := int64(0); ; {
			page, err := s.ReadAll(ctx, after, 1000)
			if err != nil {
				b.Fatal(err)
			}
			read += int64(len(page))
			if len(page) < 1000 {
				break
			}
			after = page[len(page)-1].Position
		}
	}
	b.StopTimer()
	if read != int64(b.N)*readEvents {
		b.Fatalf("read %d events, want %d", read, b.N*readEvents)
	}
	reportRate(b, read)
}

// The raw baseline: the same rows, the same pragmas, no event-store logic.

func openRaw(b *testing.B) *sql.DB {
	path := filepath.Join(b.TempDir(), "raw.db")
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)")
	if err != nil {
		b.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`CREATE TABLE events (
		position INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, stream TEXT NOT NULL,
		version INTEGER NOT NULL, type TEXT NOT NULL, data BLOB NOT NULL, metadata BLOB NOT NULL,
		occurred_at INTEGER NOT NULL, recorded_at INTEGER NOT NULL, prev_hash BLOB NOT NULL,
		hash BLOB NOT NULL, UNIQUE (stream, version))`); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

type rawRow struct {
	id, stream string
	version    int64
	data, meta []byte
}

func rawRows(n int) []rawRow {
	rows := make([]rawRow, n)
	for i := range rows {
		e := benchEvent(i)
		meta, err := json.Marshal(e.Metadata)
		if err != nil {
			panic(err)
		}
		rows[i] = rawRow{id: e.ID, stream: fmt.Sprintf("contact-%d", i%benchStreams), version: int64(i/benchStreams + 1), data: e.Data, meta: meta}
	}
	return rows
}

func rawInsert(b *testing.B, db *sql.DB, rows []rawRow, perTx int) {
	hash := make([]byte, 32)
	now := time.Now().UnixMicro()
	insert, err := db.Prepare(`INSERT INTO events (id, stream, version, type, data, metadata, occurred_at, recorded_at, prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		b.Fatal(err)
	}
	defer insert.Close()
	for i := 0; i < len(rows); i += perTx {
		tx, err := db.Begin()
		if err != nil {
			b.Fatal(err)
		}
		stmt := tx.Stmt(insert)
		for _, r := range rows[i:min(i+perTx, len(rows))] {
			if _, err := stmt.Exec(r.id, r.stream, r.version, "contact.created.v1", r.data, r.meta, now, now, hash, hash); err != nil {
				b.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRawInsert1PerTx(b *testing.B) {
	db := openRaw(b)
	rows := rawRows(b.N)
	b.ResetTimer()
	rawInsert(b, db, rows, 1)
	b.StopTimer()
	reportRate(b, int64(b.N))
}

func BenchmarkRawInsert100PerTx(b *testing.B) {
	db := openRaw(b)
	rows := rawRows(b.N * 100)
	b.ResetTimer()
	rawInsert(b, db, rows, 100)
	b.StopTimer()
	reportRate(b, int64(b.N)*100)
}

func BenchmarkRawScan(b *testing.B) {
	db := openRaw(b)
	rawInsert(b, db, rawRows(readEvents), 1000)
	b.ResetTimer()
	var read int64
	for range b.N {
		rows, err := db.Query(`SELECT position, id, stream, version, type, data, metadata, occurred_at, recorded_at, prev_hash, hash
			FROM events ORDER BY position`)
		if err != nil {
			b.Fatal(err)
		}
		for rows.Next() {
			var (
				pos, version, occurred, recorded int64
				id, stream, typ                  string
				data, meta, prev, hash           []byte
			)
			if err := rows.Scan(&pos, &id, &stream, &version, &typ, &data, &meta, &occurred, &recorded, &prev, &hash); err != nil {
				b.Fatal(err)
			}
			read++
		}
		if err := rows.Err(); err != nil {
			b.Fatal(err)
		}
		rows.Close()
	}
	b.StopTimer()
	reportRate(b, read)
}
