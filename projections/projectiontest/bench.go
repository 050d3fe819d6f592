package projectiontest

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
)

// EnvCount is the count the environment variable name gives (at least least), def when it is
// not set; a benchmark's size.
func EnvCount(b *testing.B, name string, least, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < least {
		b.Fatalf("%s=%q is not a count of at least %d", name, v, least)
	}
	return n
}

// Loaded is a fresh database of dialect d holding the read model of p built from events, in
// batches of batch events, as a benchmark's data set: on PostgreSQL then vacuumed and
// analyzed, as autovacuum does after a load (statistics, and the visibility map that lets a
// query scan an index without the table).
func Loaded(b testing.TB, d projections.Dialect, p projections.Projection, events []eventstore.Event, batch int) (*projections.DB, projections.Tables) {
	b.Helper()
	return LoadedInto(b, Open(b, d), p, events, batch, Vacuumed)
}

// What a benchmark's data set on PostgreSQL is left with after its load (see LoadedInto).
const (
	// Vacuumed: statistics and the visibility map, as autovacuum leaves a table after a load.
	Vacuumed = "VACUUM (ANALYZE)"
	// Analyzed: statistics only, as a set built in place has them (decision 38): an empty
	// visibility map, with which an index-only scan reads the table too.
	Analyzed = "ANALYZE"
)

// LoadedInto is Loaded into the fresh database db, its tables on PostgreSQL then gathered
// (Vacuumed or Analyzed).
func LoadedInto(b testing.TB, db *projections.DB, p projections.Projection, events []eventstore.Event, batch int, gathered string) (*projections.DB, projections.Tables) {
	b.Helper()
	tables := projections.TablesFor(p, "")
	ctx := context.Background()
	if err := db.EnsureSchema(ctx, p, tables); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < len(events); i += batch {
		if _, err := db.ApplyBatch(ctx, p, tables, events[i:min(i+batch, len(events))]); err != nil {
			b.Fatal(err)
		}
	}
	if db.Dialect == projections.Postgres {
		// The tables of the benchmark's schema alone: not every table of the database.
		if _, err := db.SQL.ExecContext(ctx, gathered+" "+schemaTables(b, ctx, db.SQL)); err != nil {
			b.Fatal(err)
		}
	}
	return db, tables
}

// Asked is one question of a benchmark: Ask asks it of the read model in tables.
type Asked struct {
	Name string
	Ask  func(ctx context.Context, db *projections.DB, tables projections.Tables) error
}

// Baseline reads one constant in a read transaction, the baseline question of a benchmark:
// what any answer costs at the least under the same load.
func Baseline(ctx context.Context, db *projections.DB, _ projections.Tables) error {
	var one int
	return db.ReadOnly(ctx, func(tx *sql.Tx) error { return tx.QueryRowContext(ctx, "SELECT 1").Scan(&one) })
}

// LiveWrites is what a benchmark writes live while it measures: events of Type, each about one
// of the contacts c0000000 to c0000999 at random, a second apart after the history, with the
// Data of the contact's id and the event's number.
type LiveWrites struct {
	Type string
	Data func(contactID string, n int64) []byte
}

// AskInRounds builds the read model of p from the history h (see Loaded) on each dialect and
// asks each question from clients clients at once (see Rounds), first with no writes, then
// while 50 events of writes a second are applied live (see ForWrites).
func AskInRounds(b *testing.B, p projections.Projection, h *Generated, clients int, writes LiveWrites, questions []Asked) {
	for _, d := range []projections.Dialect{projections.SQLite, projections.Postgres} {
		b.Run(d.String(), func(b *testing.B) {
			db, tables := Loaded(b, d, p, h.Events, 10_000)
			b.ReportMetric(float64(len(h.Events)), "events")
			next := int64(len(h.Events))
			ForWrites(b, func(b *testing.B, write bool) {
				for _, q := range questions {
					b.Run(q.Name, func(b *testing.B) {
						if write {
							defer WriteLive(b, db, p, tables, 20*time.Millisecond, writes.from(&next, h.Latest))()
						}
						Rounds(b, clients, func(ctx context.Context) error { return q.Ask(ctx, db, tables) })
					})
				}
			})
		})
	}
}

// from is the events written after a history ending at latest, numbered on from *next.
func (w LiveWrites) from(next *int64, latest time.Time) func() eventstore.Event {
	rng := rand.New(rand.NewPCG(uint64(*next), 1))
	return func() eventstore.Event {
		*next++
		id := fmt.Sprintf("c%07d", rng.IntN(1000))
		at := latest.Add(time.Duration(*next) * time.Second)
		return eventstore.Event{ID: fmt.Sprintf("w%d", *next), Stream: "contact-" + id, Position: *next,
			Type: w.Type, OccurredAt: at, RecordedAt: at, Data: w.Data(id, *next)}
	}
}
