package projectiontest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
)

// A case is one directory under a testdata folder:
//
//	<case>/events.txt            the history (see ParseHistory); hand computations as # comments
//	<case>/<query>.params.json   the parameters of one query, written by hand
//	<case>/<query>.golden.json   its expected answer, checked by hand against the definitions
const (
	historyFile  = "events.txt"
	paramsSuffix = ".params.json"
	goldenSuffix = ".golden.json"
)

// Case is a history with the queries asked of it.
type Case struct {
	Name    string
	Dir     string
	Events  []eventstore.Event
	Queries []string // names of the queries, sorted
}

// Cases reads every case under dir.
func Cases(t testing.TB, dir string) []Case {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("read cases: %v", err)
	}
	var cases []Case
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		caseDir := filepath.Join(dir, e.Name())
		files, err := os.ReadDir(caseDir)
		if err != nil {
			t.Fatalf("read case %s: %v", e.Name(), err)
		}
		c := Case{Name: e.Name(), Dir: caseDir, Events: ReadHistory(t, filepath.Join(caseDir, historyFile))}
		for _, f := range files {
			if name, ok := strings.CutSuffix(f.Name(), paramsSuffix); ok {
				c.Queries = append(c.Queries, name)
			}
		}
		slices.Sort(c.Queries)
		cases = append(cases, c)
	}
	if len(cases) == 0 {
		t.Fatalf("no case under %s", dir)
	}
	return cases
}

// AnswerFunc answers the query named query with the parameters params (the JSON of the
// query's params file) from the tables of a read model.
type AnswerFunc func(ctx context.Context, db *projections.DB, t projections.Tables, query string, params []byte) (any, error)

// Question is one question of a read model: its parameters in, its answer out.
type Question[P, A any] func(ctx context.Context, db *projections.DB, t projections.Tables, params P) (A, error)

// AnswerWith is the AnswerFunc of a read model whose golden queries all ask q: each query's
// params file is decoded into P.
func AnswerWith[P, A any](q Question[P, A]) AnswerFunc {
	return func(ctx context.Context, db *projections.DB, t projections.Tables, _ string, raw []byte) (any, error) {
		var params P
		if err := json.Unmarshal(raw, &params); err != nil {
			return nil, fmt.Errorf("the query's parameters: %w", err)
		}
		return q(ctx, db, t, params)
	}
}

// update is the -update flag of the read models' tests (go test -run TestReadModel/golden
// -update).
var update = flag.Bool("update", false, "rewrite the golden answers in testdata (then check them by hand)")

// RunGolden applies the history of every case under dir to a fresh database of each dialect,
// in one batch through DB.Apply, asks each query and compares the answer, as indented JSON,
// with the golden file. With -update, the golden files are rewritten from SQLite's answers
// (then checked against PostgreSQL's): review the diff by hand before committing.
func RunGolden(t *testing.T, dir string, p projections.Projection, answer AnswerFunc) {
	t.Helper()
	update := *update
	for _, c := range Cases(t, dir) {
		t.Run(c.Name, func(t *testing.T) {
			forEachDialect(t, !update, func(t *testing.T, db *projections.DB) {
				ctx := context.Background()
				tables := projections.TablesFor(p, "")
				MustApply(t, db, p, tables, c.Events)
				for _, q := range c.Queries {
					params, err := os.ReadFile(filepath.Join(c.Dir, q+paramsSuffix))
					if err != nil {
						t.Fatalf("params of %s: %v", q, err)
					}
					got, err := answer(ctx, db, tables, q, params)
					if err != nil {
						t.Errorf("query %s: %v", q, err)
						continue
					}
					CompareGolden(t, filepath.Join(c.Dir, q+goldenSuffix), got, update && db.Dialect == projections.SQLite)
				}
			})
		})
	}
}

// CompareGolden compares v, as indented JSON, with the file at path; with update it writes the
// file instead.
func CompareGolden(t testing.TB, path string, v any, update bool) {
	t.Helper()
	got, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatalf("encode answer: %v", err)
	}
	got = append(got, '\n')
	if update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatalf("update golden: %v", err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden (run the test with -update to write it, then check it by hand): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("answer differs from %s\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// MustApply creates the tables of set t and applies events to it in one batch.
func MustApply(t testing.TB, db *projections.DB, p projections.Projection, tables projections.Tables, events []eventstore.Event) {
	t.Helper()
	ctx := context.Background()
	if err := db.EnsureSchema(ctx, p, tables); err != nil {
		t.Fatalf("schema: %v", err)
	}
	if _, err := db.Apply(ctx, p, tables, events); err != nil {
		t.Fatalf("apply: %v", err)
	}
}

// MustBuild builds the set of p in tables from events as a rebuild does (the batch path, in
// batches of 10,000 events): a data set of thousands of rows, such as a plan test's, in the
// time a rebuild takes rather than event by event.
func MustBuild(t testing.TB, db *projections.DB, p projections.Projection, tables projections.Tables, events []eventstore.Event) {
	t.Helper()
	ctx := context.Background()
	if err := db.EnsureSchema(ctx, p, tables); err != nil {
		t.Fatalf("schema: %v", err)
	}
	const batch = 10_000
	for i := 0; i < len(events); i += batch {
		if _, err := db.ApplyBatch(ctx, p, tables, events[i:min(i+batch, len(events))]); err != nil {
			t.Fatalf("build: %v", err)
		}
	}
}

// RunApplyModes checks, for the history of every case under dir and on both dialects, that
// the read model does not depend on how the events are delivered: applying the whole history
// again (redelivery) changes nothing, and applying it one event at a time, each event
// delivered twice and in overlapping batches, gives the same tables, row for row, as one batch.
// A BatchProjection's batch path (rebuilds) must give the same tables too, in batches of
// every size, without leaving a single event to Apply.
func RunApplyModes(t *testing.T, dir string, p projections.Projection) {
	t.Helper()
	for _, c := range Cases(t, dir) {
		t.Run(c.Name, func(t *testing.T) {
			ForEachDialect(t, func(t *testing.T, db *projections.DB) {
				ctx := context.Background()
				// Sets named so that neither prefix is a prefix of the other.
				batch := projections.TablesFor(p, "batch")
				MustApply(t, db, p, batch, c.Events)
				want := Dump(t, db, batch)
				last := int64(0)
				if n := len(c.Events); n > 0 {
					last = c.Events[n-1].Position
				}

				checkpoint, err := db.Apply(ctx, p, batch, c.Events)
				if err != nil {
					t.Fatalf("redeliver the history: %v", err)
				}
				if checkpoint != last {
					t.Errorf("checkpoint after redelivery = %d, want %d", checkpoint, last)
				}
				if got := Dump(t, db, batch); !reflect.DeepEqual(got, want) {
					t.Errorf("redelivery changed the tables\n--- after\n%v\n--- before\n%v", got, want)
				}

				single := projections.TablesFor(p, "single")
				MustApply(t, db, p, single, nil)
				for i, e := range c.Events {
					for range 2 {
						if _, err := db.Apply(ctx, p, single, []eventstore.Event{e}); err != nil {
							t.Fatalf("apply event %d alone: %v", e.Position, err)
						}
					}
					// A batch overlapping what was applied already.
					if _, err := db.Apply(ctx, p, single, c.Events[i/2:i+1]); err != nil {
						t.Fatalf("apply events %d..%d: %v", i/2+1, i+1, err)
					}
				}
				if got := Dump(t, db, single); !reflect.DeepEqual(got, want) {
					t.Errorf("one by one differs from one batch\n--- one by one\n%v\n--- batch\n%v", got, want)
				}

				bp, ok := p.(projections.BatchProjection)
				if !ok {
					return
				}
				for _, size := range []int{1, 2, 3, 5, 8, len(c.Events)} {
					if size == 0 {
						continue
					}
					set := projections.TablesFor(p, fmt.Sprintf("bulk%d", size))
					MustApply(t, db, p, set, nil)
					for i := 0; i < len(c.Events); i += size {
						chunk := c.Events[i:min(i+size, len(c.Events))]
						// Redelivered events (at or below the checkpoint) are skipped.
						chunk = append(c.Events[max(0, i-1):i:i], chunk...)
						if _, err := db.ApplyBatch(ctx, batchOnly{bp}, set, chunk); err != nil {
							t.Fatalf("batches of %d: %v", size, err)
						}
					}
					var parked int
					if err := db.SQL.QueryRowContext(ctx, db.Dialect.Rebind(`SELECT count(*) FROM projection_parked WHERE table_set = ?`),
						set.Prefix()).Scan(&parked); err != nil {
						t.Fatal(err)
					}
					if parked > 0 {
						t.Errorf("batches of %d: %d events left to Apply", size, parked)
					}
					if got := Dump(t, db, set); !reflect.DeepEqual(got, want) {
						t.Errorf("batches of %d differ from Apply\n--- batches\n%v\n--- Apply\n%v", size, got, want)
					}
				}
			})
		})
	}
}

// batchOnly is a batch projection whose Apply fails: a batch that falls back to Apply
// shows as parked events.
type batchOnly struct{ projections.BatchProjection }

func (batchOnly) Apply(context.Context, *projections.Tx, projections.Tables, eventstore.Event) error {
	return errors.New("the batch path left this event to Apply")
}

// forEachDialect is ForEachDialect, sequential (SQLite first) when parallel is false.
func forEachDialect(t *testing.T, parallel bool, test func(t *testing.T, db *projections.DB)) {
	t.Helper()
	if parallel {
		ForEachDialect(t, test)
		return
	}
	for _, d := range []projections.Dialect{projections.SQLite, projections.Postgres} {
		t.Run(d.String(), func(t *testing.T) { test(t, Open(t, d)) })
	}
}

// Tokyo is the business time zone the read models are tested in besides UTC: Asia/Tokyo, nine
// hours ahead of UTC all year.
func Tokyo(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}
