package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
	"github.com/jackc/pgx/v5"
)

// The benchmarks measure the store next to a raw baseline in the same run and database:
// plain INSERTs of equivalent rows into a plain table with the same columns and unique
// constraints (no stream heads, no hash chain, no watermark), and a plain SELECT of it.
// Compare the events/s metrics:
//
//	go test -bench . -run '^$' ./eventstore/postgres
//
// Payloads are those of PERFORMANCE.md: ~230 B of data and ~110 B of metadata, over 10,000
// streams.

const (
	benchStreams    = 10_000
	benchWriters    = 64
	benchReadEvents = 100_000
)

func benchData(i int) []byte {
	return fmt.Appendf(nil, `{"contact_id":"c-%08d","name":"Ada Lovelace","email":"ada@example.com",`+
		`"phase":"qualified","owner":"user:grace","source":"import","tags":["vip","emea","q3"],`+
		`"note":"met at the analytical engines meetup, wants a demo","score":%d}`, i, i%100)
}

func benchEvent(i int) eventstore.EventData {
	return eventstore.EventData{
		ID:   newID(),
		Type: "contact.phase_changed.v1",
		Data: benchData(i),
		Metadata: eventstore.Metadata{
			Actor:         "user:grace",
			CommandID:     newID(),
			CorrelationID: newID(),
		},
	}
}

func benchEvents(n, seed int) []eventstore.EventData {
	events := make([]eventstore.EventData, n)
	for i := range events {
		events[i] = benchEvent(seed + i)
	}
	return events
}

func reportRate(b *testing.B, events int) {
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}

func benchStore(b *testing.B) *Store {
	b.Helper()
	s := mustOpen(b, newSchema(b), WithMaxConns(benchWriters+4), WithPollInterval(time.Hour))
	if _, err := s.Pool().Exec(context.Background(), rawTableSQL); err != nil {
		b.Fatal(err)
	}
	return s
}

// appender appends to the 10,000 streams of a benchmark, each writer to its own streams,
// with the expected version a command would know.
type appender struct {
	s        *Store
	versions []int64
}

func (a *appender) append(b *testing.B, stream int, events []eventstore.EventData) {
	res, err := a.s.Append(context.Background(), fmt.Sprintf("contact-%d", stream), a.versions[stream], events)
	if err != nil {
		b.Error(err)
		return
	}
	a.versions[stream] = res.Version
}

// rawInserter inserts equivalent rows into the plain table.
type rawInserter struct {
	s    *Store
	next atomic.Int64 // rows inserted: keeps (stream, version) unique
}

func (r *rawInserter) insert(b *testing.B, n int) {
	v := r.next.Add(int64(n)) - int64(n)
	rows := newRawRows(n, fmt.Sprintf("contact-%d", v%benchStreams), v, int(v))
	if _, err := r.s.Pool().Exec(context.Background(), rawInsertSQL, rows.args()...); err != nil {
		b.Error(err)
	}
}

// concurrently runs op b.N times on benchWriters goroutines; op gets the writer's number and
// how many ops that writer ran before.
func concurrently(b *testing.B, op func(w, k int)) {
	var done atomic.Int64
	var wg sync.WaitGroup
	for w := range benchWriters {
		wg.Go(func() {
			for k := 0; done.Add(1) <= int64(b.N); k++ {
				op(w, k)
			}
		})
	}
	wg.Wait()
}

// Each benchmark runs the store and its raw baseline back to back, so that their ratio is
// taken under the same load of a shared machine; run with -count to see the spread.

func BenchmarkAppend1(b *testing.B) {
	s := benchStore(b)
	a := &appender{s: s, versions: make([]int64, benchStreams)}
	r := &rawInserter{s: s}
	b.Run("Store", func(b *testing.B) {
		for i := range b.N {
			a.append(b, i%benchStreams, benchEvents(1, i))
		}
		reportRate(b, b.N)
	})
	b.Run("Raw", func(b *testing.B) {
		for range b.N {
			r.insert(b, 1)
		}
		reportRate(b, b.N)
	})
}

func BenchmarkAppend1Concurrent64(b *testing.B) {
	s := benchStore(b)
	a := &appender{s: s, versions: make([]int64, benchStreams)}
	r := &rawInserter{s: s}
	b.Run("Store", func(b *testing.B) {
		perWriter := benchStreams / benchWriters
		concurrently(b, func(w, k int) {
			// Writer w owns its streams: no conflicts, as with commands spread over contacts.
			a.append(b, w*perWriter+k%perWriter, benchEvents(1, k))
		})
		reportRate(b, b.N)
	})
	b.Run("Raw", func(b *testing.B) {
		concurrently(b, func(int, int) { r.insert(b, 1) })
		reportRate(b, b.N)
	})
}

func BenchmarkAppend100(b *testing.B) {
	s := benchStore(b)
	a := &appender{s: s, versions: make([]int64, benchStreams)}
	r := &rawInserter{s: s}
	b.Run("Store", func(b *testing.B) {
		for i := range b.N {
			a.append(b, i%benchStreams, benchEvents(100, i))
		}
		reportRate(b, 100*b.N)
	})
	b.Run("Raw", func(b *testing.B) {
		for range b.N {
			r.insert(b, 100)
		}
		reportRate(b, 100*b.N)
	})
}

func BenchmarkReadAll(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	r := &rawInserter{s: s}
	for i := range benchReadEvents / 100 {
		if _, err := s.Append(ctx, fmt.Sprintf("contact-%d", i), eventstore.NoStream, benchEvents(100, i)); err != nil {
			b.Fatal(err)
		}
		r.insert(b, 100)
	}
	readStore := func(b *testing.B, page int) int {
		n := 0
		for after := int64(0); ; {
			events, err := s.ReadAll(ctx, after, page)
			if err != nil {
				b.Fatal(err)
			}
			n += len(events)
			if len(events) < page {
				break
			}
			after = events[len(events)-1].Position
		}
		if n != benchReadEvents {
			b.Fatalf("read %d events, want %d", n, benchReadEvents)
		}
		return n
	}
	cols := strings.Join([]string{"position", "id", "stream", "version", "type", "data", "metadata",
		"occurred_at", "recorded_at", "prev_hash", "hash"}, ", ")
	readRaw := func(b *testing.B) int {
		rows, err := s.Pool().Query(ctx, "SELECT "+cols+" FROM raw_events ORDER BY position")
		if err != nil {
			b.Fatal(err)
		}
		var (
			e                  eventstore.Event
			meta               []byte
			occurred, recorded time.Time
		)
		n := 0
		_, err = pgx.ForEachRow(rows, []any{&e.Position, &e.ID, &e.Stream, &e.Version, &e.Type, &e.Data,
			&meta, &occurred, &recorded, &e.PrevHash, &e.Hash}, func() error {
			n++
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		return n
	}
	for _, page := range []int{1000, 10_000} {
		b.Run(fmt.Sprintf("StorePage%d", page), func(b *testing.B) {
			n := 0
			for range b.N {
				n += readStore(b, page)
			}
			reportRate(b, n)
		})
	}
	b.Run("RawSelect", func(b *testing.B) {
		n := 0
		for range b.N {
			n += readRaw(b)
		}
		reportRate(b, n)
	})
	// Both in turns, each timed on its own: the ratio of a noisy machine's good and bad
	// moments would otherwise be measured.
	for _, page := range []int{1000, 10_000} {
		b.Run(fmt.Sprintf("PairedPage%d", page), func(b *testing.B) {
			var store, raw time.Duration
			for range b.N {
				start := time.Now()
				readStore(b, page)
				store += time.Since(start)
				start = time.Now()
				readRaw(b)
				raw += time.Since(start)
			}
			events := float64(b.N * benchReadEvents)
			b.ReportMetric(events/store.Seconds(), "store-events/s")
			b.ReportMetric(events/raw.Seconds(), "raw-events/s")
			b.ReportMetric(raw.Seconds()/store.Seconds(), "store/raw")
		})
	}
}

const rawTableSQL = `CREATE TABLE raw_events (
    position    bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          text        NOT NULL UNIQUE,
    stream      text        NOT NULL,
    version     bigint      NOT NULL,
    type        text        NOT NULL,
    data        bytea,
    metadata    json        NOT NULL,
    occurred_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL,
    prev_hash   bytea,
    hash        bytea       NOT NULL,
    UNIQUE (stream, version)
)`

const rawInsertSQL = `INSERT INTO raw_events (id, stream, version, type, data, metadata, occurred_at, recorded_at, prev_hash, hash)
SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bytea[], $6::json[],
    $7::timestamptz[], $8::timestamptz[], $9::bytea[], $10::bytea[])`

// rawRows are n rows as the plain table takes them.
type rawRows struct {
	ids, streams, types []string
	versions            []int64
	data, prev, hash    [][]byte
	meta                []string
	occurred, recorded  []time.Time
}

func newRawRows(n int, stream string, version int64, seed int) rawRows {
	var r rawRows
	now := eventstore.NormalizeTime(time.Now())
	for i := range n {
		e := benchEvent(seed + i)
		meta, _ := json.Marshal(e.Metadata)
		r.ids = append(r.ids, e.ID)
		r.streams = append(r.streams, stream)
		r.versions = append(r.versions, version+int64(i)+1)
		r.types = append(r.types, e.Type)
		r.data = append(r.data, e.Data)
		r.meta = append(r.meta, string(meta))
		r.occurred = append(r.occurred, now)
		r.recorded = append(r.recorded, now)
		r.prev = append(r.prev, make([]byte, 32))
		r.hash = append(r.hash, make([]byte, 32))
	}
	return r
}

func (r rawRows) args() []any {
	return []any{r.ids, r.streams, r.versions, r.types, r.data, r.meta, r.occurred, r.recorded, r.prev, r.hash}
}
