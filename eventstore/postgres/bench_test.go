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
	return mustOpen(b, newSchema(b), WithMaxConns(benchWriters+4), WithPollInterval(time.Hour))
}

func BenchmarkAppend(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	versions := make([]int64, benchStreams) // what the callers know of each stream
	var next atomic.Int64                   // the next stream to append to

	appendTo := func(b *testing.B, stream int, events []eventstore.EventData) {
		res, err := s.Append(ctx, fmt.Sprintf("contact-%d", stream), versions[stream], events)
		if err != nil {
			b.Fatal(err)
		}
		versions[stream] = res.Version
	}
	b.Run("Single", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			appendTo(b, int(next.Add(1)%benchStreams), benchEvents(1, i))
		}
		reportRate(b, b.N)
	})
	b.Run(fmt.Sprintf("Concurrent%d", benchWriters), func(b *testing.B) {
		var done atomic.Int64
		var wg sync.WaitGroup
		for w := range benchWriters {
			wg.Go(func() {
				// Each writer owns its streams: no conflicts, as with commands spread over
				// many contacts.
				perWriter := benchStreams / benchWriters
				for k := 0; done.Add(1) <= int64(b.N); k++ {
					stream := w*perWriter + k%perWriter
					res, err := s.Append(ctx, fmt.Sprintf("contact-%d", stream), versions[stream], benchEvents(1, k))
					if err != nil {
						b.Error(err)
						return
					}
					versions[stream] = res.Version
				}
			})
		}
		wg.Wait()
		reportRate(b, b.N)
	})
	b.Run("Batch100", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			appendTo(b, int(next.Add(1)%benchStreams), benchEvents(100, i))
		}
		reportRate(b, 100*b.N)
	})
}

func BenchmarkReadAll(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	for i := 0; i < benchReadEvents/100; i++ {
		if _, err := s.Append(ctx, fmt.Sprintf("contact-%d", i), eventstore.NoStream, benchEvents(100, i)); err != nil {
			b.Fatal(err)
		}
	}
	waitForPositionB(b, s, benchReadEvents)
	for _, page := range []int{1000, 10_000} {
		b.Run(fmt.Sprintf("Page%d", page), func(b *testing.B) {
			n := 0
			for i := 0; i < b.N; i++ {
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
			}
			reportRate(b, n)
		})
	}
}

// waitForPositionB waits until ReadAll reaches position.
func waitForPositionB(b *testing.B, s *Store, position int64) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		events, err := s.ReadAll(context.Background(), position-1, 1)
		if err != nil {
			b.Fatal(err)
		}
		if len(events) == 1 {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("position %d not readable after 30s", position)
		}
		time.Sleep(10 * time.Millisecond)
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

// BenchmarkRaw is the baseline: what PostgreSQL does for plain INSERTs and a plain SELECT.
func BenchmarkRaw(b *testing.B) {
	s := benchStore(b)
	pool := s.Pool()
	ctx := context.Background()
	if _, err := pool.Exec(ctx, rawTableSQL); err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64 // a version counter per row keeps (stream, version) unique
	insert := func(n int) error {
		v := next.Add(int64(n)) - int64(n)
		r := newRawRows(n, fmt.Sprintf("contact-%d", v%benchStreams), v, int(v))
		_, err := pool.Exec(ctx, rawInsertSQL, r.args()...)
		return err
	}
	b.Run("Insert1", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if err := insert(1); err != nil {
				b.Fatal(err)
			}
		}
		reportRate(b, b.N)
	})
	b.Run(fmt.Sprintf("Concurrent%d", benchWriters), func(b *testing.B) {
		var done atomic.Int64
		var wg sync.WaitGroup
		for range benchWriters {
			wg.Go(func() {
				for done.Add(1) <= int64(b.N) {
					if err := insert(1); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		reportRate(b, b.N)
	})
	b.Run("Insert100", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if err := insert(100); err != nil {
				b.Fatal(err)
			}
		}
		reportRate(b, 100*b.N)
	})
	b.Run("Select", func(b *testing.B) {
		if _, err := pool.Exec(ctx, "TRUNCATE raw_events"); err != nil {
			b.Fatal(err)
		}
		for i := 0; i < benchReadEvents/100; i++ {
			if err := insert(100); err != nil {
				b.Fatal(err)
			}
		}
		cols := strings.Join([]string{"position", "id", "stream", "version", "type", "data", "metadata",
			"occurred_at", "recorded_at", "prev_hash", "hash"}, ", ")
		b.ResetTimer()
		n := 0
		for i := 0; i < b.N; i++ {
			rows, err := pool.Query(ctx, "SELECT "+cols+" FROM raw_events ORDER BY position")
			if err != nil {
				b.Fatal(err)
			}
			var (
				e                  eventstore.Event
				meta               []byte
				occurred, recorded time.Time
			)
			_, err = pgx.ForEachRow(rows, []any{&e.Position, &e.ID, &e.Stream, &e.Version, &e.Type, &e.Data,
				&meta, &occurred, &recorded, &e.PrevHash, &e.Hash}, func() error {
				n++
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		reportRate(b, n)
	})
}
