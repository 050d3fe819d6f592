package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/runtime"
)

// DefaultAnswerCacheSize is how many read-model answers a server keeps, by default.
const DefaultAnswerCacheSize = 512

// answers keeps read-model answers for as long as the tables they were read from do not
// change: an answer is stored under its question and the state of the projection's tables
// (the served set and runtime.Runner.Changes), and reused for the same question only in
// that same state, so it is exactly what reading the tables again would give. The least
// recently used answers go first when there are more than the limit.
//
// Requests for a question that is being read join that reading instead of reading the tables
// too (single flight), even when the tables changed since it started, as long as it started
// at or after the position the request asked for (min_position) and reads the same set: the
// request then answers with the reading's freshness, which says the position it holds. So
// under a steady stream of events, a question costs one reading at a time, not one per
// request. A reading of a set that a rebuild has since replaced is never joined: the new set
// may answer otherwise (a new version of the read model, a person erased by a purge).
type answers struct {
	mu      sync.Mutex
	entries map[string]*answerEntry
	limit   int
	tick    uint64
}

// tablesState is the state of a projection's tables an answer is read from: the served set
// (its prefix) and the count of changes of the projection's tables (runtime.Runner.Changes).
type tablesState struct {
	set     string
	changes uint64
}

type answerEntry struct {
	state tablesState
	// fresh is the freshness read before the reading: the answer holds every event up to
	// fresh.Position.
	fresh runtime.Freshness
	ready chan struct{} // closed once value and err are set
	done  bool          // set under answers.mu once value and err are
	value any
	err   error
	used  uint64
}

func newAnswers(limit int) *answers {
	if limit <= 0 {
		limit = DefaultAnswerCacheSize
	}
	return &answers{entries: map[string]*answerEntry{}, limit: limit}
}

// get returns the answer to question for a request that read the freshness fresh and then
// the tables' state: an answer kept for that state, a reading in progress that the request
// may join, or what compute returns (kept unless it is an error). It also returns the
// freshness of the answer: fresh, or the joined reading's. compute runs without the caller's
// cancellation, since other requests may be waiting for it.
func (a *answers) get(ctx context.Context, question string, state tablesState, fresh runtime.Freshness,
	compute func(ctx context.Context) (any, error)) (any, runtime.Freshness, error) {
	a.mu.Lock()
	a.tick++
	e := a.entries[question]
	switch {
	case e != nil && e.state == state:
		// the same state: fresh holds for the answer
	case e != nil && !e.done && e.state.set == state.set && e.fresh.Position >= fresh.MinPosition:
		joined := e.fresh
		joined.MinPosition, joined.Stale = fresh.MinPosition, fresh.Stale
		fresh = joined
	default:
		e = nil
	}
	if e != nil {
		e.used = a.tick
		a.mu.Unlock()
		select {
		case <-e.ready:
			return e.value, fresh, e.err
		case <-ctx.Done():
			return nil, fresh, ctx.Err()
		}
	}
	e = &answerEntry{state: state, fresh: fresh, ready: make(chan struct{}), used: a.tick}
	a.entries[question] = e
	a.evictLocked()
	a.mu.Unlock()

	func() {
		defer close(e.ready)
		defer func() {
			if v := recover(); v != nil {
				e.err = fmt.Errorf("answer panicked: %v", v)
				a.finish(question, e)
				panic(v)
			}
		}()
		e.value, e.err = compute(context.WithoutCancel(ctx))
		a.finish(question, e)
	}()
	return e.value, fresh, e.err
}

// finish marks e done, and drops it when it failed (unless another entry replaced it).
func (a *answers) finish(question string, e *answerEntry) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e.done = true
	if e.err != nil && a.entries[question] == e {
		delete(a.entries, question)
	}
}

// evictLocked drops the least recently used entries over the limit. The caller holds a.mu.
func (a *answers) evictLocked() {
	for len(a.entries) > a.limit {
		var (
			oldest string
			used   uint64
			first  = true
		)
		for q, e := range a.entries {
			if first || e.used < used {
				oldest, used, first = q, e.used, false
			}
		}
		delete(a.entries, oldest)
	}
}

// len is the number of kept answers.
func (a *answers) len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.entries)
}

// read is what a read-model query reads: the projection's tables, and a memo that answers a
// question once per state of those tables.
type read struct {
	db *projections.DB
	t  projections.Tables
	// memo returns compute's answer to question, computed at most once while the tables do
	// not change. question must name everything the answer depends on besides the tables.
	memo func(ctx context.Context, question string, compute func(ctx context.Context) (any, error)) (any, error)
}

// memoJSON is rd.memo of the question named by what and params in JSON.
func memoJSON(ctx context.Context, rd read, what string, params any, compute func(ctx context.Context) (any, error)) (any, error) {
	question, err := json.Marshal(params)
	if err != nil {
		return nil, fmt.Errorf("%s question: %w", what, err)
	}
	return rd.memo(ctx, what+" "+string(question), compute)
}

// direct is a memo that always computes: for answers from tables that are read once (time
// travel's snapshots).
func direct(ctx context.Context, _ string, compute func(ctx context.Context) (any, error)) (any, error) {
	return compute(ctx)
}

// clear forgets every answer, so that no answer read before an erasure stays in memory:
// readings in progress finish for the requests that wait for them, and are not kept.
func (a *answers) clear() {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	clear(a.entries)
}
