package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/runtime"
)

// DefaultAnswerCacheSize is how many read-model answers a server keeps, by default.
const DefaultAnswerCacheSize = 512

// DefaultAnswerMaxStale is how old the reading of an answer of an earlier state of the tables
// may be for it to be given while the next is read, by default.
const DefaultAnswerMaxStale = time.Second

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
//
// While events arrive, a request need not wait for a reading at all: the answer of an earlier
// state whose reading began at most maxStale ago, of the same set and at or after the
// request's min_position, is given at once with its own freshness, and the first request to
// find it so starts the next reading in the background (see reread). So a question asked
// again and again while the tables change answers in the time of a lookup, at most one
// reading (and maxStale) behind, as its freshness says; a client that must see its own write
// passes min_position, and waits for a reading that holds it.
type answers struct {
	mu       sync.Mutex
	entries  map[string]*answerEntry
	limit    int
	maxStale time.Duration // 0: no answer of an earlier state is given
	now      func() time.Time
	tick     uint64
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
	began time.Time     // when the reading began, after fresh was read
	ready chan struct{} // closed once value and err are set
	done  bool          // set under answers.mu once value and err are
	value any
	err   error
	used  uint64
	// prev, while this entry is read, is the answer it replaces (done, without error), which
	// requests may be given meanwhile; renewing is set on a done entry once a reading of a
	// later state has been started in the background from it.
	prev     *answerEntry
	renewing bool
}

// reread gives a reading in the background the projection's tables again: the state and
// freshness read before them, and the release of its hold on them (a rebuild drops a set
// it replaced only after). It is called without answers.mu held.
type reread func() (tablesState, runtime.Freshness, func(), error)

func newAnswers(limit int, maxStale time.Duration) *answers {
	if limit <= 0 {
		limit = DefaultAnswerCacheSize
	}
	return &answers{entries: map[string]*answerEntry{}, limit: limit, maxStale: max(maxStale, 0), now: time.Now}
}

// get returns the answer to question for a request that read the freshness fresh and then
// the tables' state: an answer kept for that state, an answer of an earlier state recent
// enough to give while the next is read (see answers), a reading in progress that the request
// may join, or what compute returns (kept unless it is an error). It also returns the
// freshness of the answer: fresh, or the answer's or joined reading's. compute runs without
// the caller's cancellation, since other requests may be waiting for it; again, when not nil,
// lets compute run again in the background for a later state.
func (a *answers) get(ctx context.Context, question string, state tablesState, fresh runtime.Freshness,
	compute func(ctx context.Context) (any, error), again reread) (any, runtime.Freshness, error) {
	a.mu.Lock()
	a.tick++
	e := a.entries[question]
	var prev *answerEntry // the answer a new reading replaces
	switch {
	case e == nil:
	case e.state == state && e.done:
		// the same state: fresh holds for the answer
	case !e.done && e.prev != nil && a.givable(e.prev, state, fresh):
		// read meanwhile, of this state or another: the answer it replaces is given (taken
		// under the lock: finish drops it once the reading is done)
		prev := e.prev
		e.used = a.tick
		a.mu.Unlock()
		return prev.value, answeredBy(prev, fresh), nil
	case e.state == state:
		// being read for this state: fresh holds for the answer
	case a.givable(e, state, fresh):
		if again != nil && !e.renewing {
			e.renewing = true
			go a.renew(ctx, question, e, compute, again)
		}
		e.used = a.tick
		a.mu.Unlock()
		return e.value, answeredBy(e, fresh), nil
	case !e.done && e.state.set == state.set && e.fresh.Position >= fresh.MinPosition:
		fresh = answeredBy(e, fresh)
	default:
		if e.done && e.err == nil {
			prev = e
		}
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
	e = a.startLocked(question, state, fresh, prev)
	a.mu.Unlock()
	a.read(ctx, question, e, compute)
	return e.value, fresh, e.err
}

// givable says whether e, a done answer of another state, may be given to a request that read
// state and fresh: read without error from the same set, holding the request's min_position,
// its reading begun at most maxStale ago. The caller holds a.mu.
func (a *answers) givable(e *answerEntry, state tablesState, fresh runtime.Freshness) bool {
	return a.maxStale > 0 && e.done && e.err == nil && e.state.set == state.set &&
		e.fresh.Position >= fresh.MinPosition && a.now().Sub(e.began) <= a.maxStale
}

// answeredBy is the freshness of an answer read in e, for a request that read fresh: e's
// position and lag, the request's min_position.
func answeredBy(e *answerEntry, fresh runtime.Freshness) runtime.Freshness {
	f := e.fresh
	f.MinPosition, f.Stale = fresh.MinPosition, fresh.Stale
	return f
}

// startLocked records a reading of question for state, which replaces prev meanwhile. The
// caller holds a.mu.
func (a *answers) startLocked(question string, state tablesState, fresh runtime.Freshness, prev *answerEntry) *answerEntry {
	e := &answerEntry{state: state, fresh: fresh, began: a.now(), ready: make(chan struct{}), used: a.tick, prev: prev}
	a.entries[question] = e
	a.evictLocked()
	return e
}

// read runs compute for e and keeps what it gives.
func (a *answers) read(ctx context.Context, question string, e *answerEntry, compute func(ctx context.Context) (any, error)) {
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
}

// renew reads question again in the background, for the state of the tables now, in place of
// from, an answer of an earlier state that requests are given meanwhile. It gives up when the
// tables are of another set now (a rebuild switched) or another reading replaced from.
func (a *answers) renew(ctx context.Context, question string, from *answerEntry, compute func(ctx context.Context) (any, error), again reread) {
	started := false
	defer func() {
		// A panic of compute is the reading's error (read recorded it); one of again leaves
		// from to be renewed by a later request. Neither may end the server.
		if v := recover(); v != nil && !started {
			a.mu.Lock()
			from.renewing = false
			a.mu.Unlock()
		}
	}()
	state, fresh, release, err := again()
	if err != nil {
		a.mu.Lock()
		from.renewing = false
		a.mu.Unlock()
		return
	}
	defer release()
	a.mu.Lock()
	if a.entries[question] != from || state.set != from.state.set {
		from.renewing = false
		a.mu.Unlock()
		return
	}
	e := a.startLocked(question, state, fresh, from)
	started = true
	a.mu.Unlock()
	a.read(ctx, question, e, compute)
}

// finish marks e done, and drops it when it failed (unless another entry replaced it).
func (a *answers) finish(question string, e *answerEntry) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e.done = true
	e.prev = nil
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
