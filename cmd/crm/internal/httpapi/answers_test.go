package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventcrm/crm/projections/runtime"
)

// none is the freshness of a request that asked for no position.
var none = runtime.Freshness{}

func TestAnswersReadOncePerStateAndQuestion(t *testing.T) {
	ctx := context.Background()
	a := newAnswers(10, 0)
	var computed atomic.Int64
	compute := func(v string) func(context.Context) (any, error) {
		return func(context.Context) (any, error) {
			computed.Add(1)
			return v, nil
		}
	}
	steps := []struct {
		question     string
		state        tablesState
		value        string
		want         string
		wantComputed int64
	}{
		{"board", tablesState{"s_", 1}, "one", "one", 1},
		{"board", tablesState{"s_", 1}, "other", "one", 1},     // kept
		{"map", tablesState{"s_", 1}, "map-one", "map-one", 2}, // another question
		{"board", tablesState{"s_", 2}, "two", "two", 3},       // the tables changed
		{"board", tablesState{"s_", 1}, "late", "late", 4},     // an older state is not mixed with a newer one
		{"map", tablesState{"s_", 1}, "map-two", "map-one", 4},
	}
	for i, st := range steps {
		got, _, err := a.get(ctx, st.question, st.state, none, compute(st.value), nil)
		if err != nil || got != st.want || computed.Load() != st.wantComputed {
			t.Fatalf("step %d: got %v, %v, computed %d; want %q, computed %d", i, got, err, computed.Load(), st.want, st.wantComputed)
		}
	}
}

func TestAnswersShareOneReadingAmongConcurrentRequests(t *testing.T) {
	a := newAnswers(10, 0)
	release := make(chan struct{})
	var computed atomic.Int64
	var wg sync.WaitGroup
	results := make([]any, 50)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, _, err := a.get(context.Background(), "q", tablesState{"s_", 1}, none, func(context.Context) (any, error) {
				computed.Add(1)
				<-release
				return "answer", nil
			}, nil)
			if err != nil {
				t.Error(err)
			}
			results[i] = v
		}()
	}
	time.Sleep(50 * time.Millisecond) // let every request arrive while the first reads
	close(release)
	wg.Wait()
	if n := computed.Load(); n != 1 {
		t.Fatalf("computed %d times, want once", n)
	}
	for i, v := range results {
		if v != "answer" {
			t.Fatalf("request %d got %v", i, v)
		}
	}
}

func TestAnswersDoNotKeepErrors(t *testing.T) {
	a := newAnswers(10, 0)
	boom := errors.New("boom")
	if _, _, err := a.get(context.Background(), "q", tablesState{"s_", 1}, none, func(context.Context) (any, error) { return nil, boom }, nil); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	v, _, err := a.get(context.Background(), "q", tablesState{"s_", 1}, none, func(context.Context) (any, error) { return "fine", nil }, nil)
	if err != nil || v != "fine" {
		t.Fatalf("after an error: %v, %v", v, err)
	}
}

func TestAnswersForgetTheLeastRecentlyUsed(t *testing.T) {
	a := newAnswers(3, 0)
	ctx := context.Background()
	get := func(q string) (computed bool) {
		_, _, _ = a.get(ctx, q, tablesState{"s_", 1}, none, func(context.Context) (any, error) { computed = true; return q, nil }, nil)
		return computed
	}
	for i := range 3 {
		get(fmt.Sprint(i))
	}
	get("0") // used again: 1 is now the oldest
	get("3")
	if a.len() != 3 {
		t.Fatalf("kept %d, want 3", a.len())
	}
	for _, tt := range []struct {
		question     string
		wantComputed bool
	}{{"0", false}, {"2", false}, {"3", false}, {"1", true}} { // 1 last: reading it evicts another
		if got := get(tt.question); got != tt.wantComputed {
			t.Errorf("question %s computed = %v, want %v", tt.question, got, tt.wantComputed)
		}
	}
}

func TestAnswersWaiterGivesUpWithItsContext(t *testing.T) {
	a := newAnswers(10, 0)
	release := make(chan struct{})
	defer close(release)
	go func() {
		_, _, _ = a.get(context.Background(), "q", tablesState{"s_", 1}, none, func(context.Context) (any, error) { <-release; return "late", nil }, nil)
	}()
	waitRequests(t, a, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, _, err := a.get(ctx, "q", tablesState{"s_", 1}, none, nil, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the waiter's deadline", err)
	}
}

// appending is an answer that writes its own JSON.
type appending struct{ v any }

func (a appending) AppendJSON(dst []byte) ([]byte, error) {
	b, err := json.Marshal(a.v)
	return append(dst, b...), err
}

func TestAnswerAppendingItsJSONIsWrittenAsEncodingJSONWould(t *testing.T) {
	data := map[string]any{"stages": []any{map[string]any{"title": "<b>&", "days": 3}}, "as_of": time.Date(2024, 1, 2, 3, 4, 5, 6000, time.UTC)}
	f := runtime.Freshness{Projection: "pipeline_board", Position: 42, Head: 50, Lag: runtime.Lag{Events: 8, Seconds: 0.25}}
	encoded, appended := httptest.NewRecorder(), httptest.NewRecorder()
	writeJSON(encoded, http.StatusOK, ReadAnswer{Data: data, Freshness: f})
	(&Server{}).writeReadAnswer(appended, appending{data}, f)
	if encoded.Body.String() != appended.Body.String() {
		t.Fatalf("appended:\n%s\nencoded:\n%s", appended.Body, encoded.Body)
	}
	if got := appended.Header().Get("Content-Length"); got != strconv.Itoa(appended.Body.Len()) {
		t.Errorf("Content-Length %s for %d bytes", got, appended.Body.Len())
	}
	if appended.Header().Get("Content-Type") != "application/json" || appended.Code != http.StatusOK {
		t.Errorf("status %d, headers %v", appended.Code, appended.Header())
	}
}

// TestAnswersJoinAReadingInProgress: a request for a newer state joins a reading in progress
// when it started at or after the request's min_position, and answers with its freshness; a
// request asking for a later position reads anew; a finished reading of an older state is
// never reused.
func TestAnswersJoinAReadingInProgress(t *testing.T) {
	ctx := context.Background()
	a := newAnswers(10, 0)
	release := make(chan struct{})
	var computed atomic.Int64
	slow := func(v string) func(context.Context) (any, error) {
		return func(context.Context) (any, error) {
			computed.Add(1)
			<-release
			return v, nil
		}
	}
	first := make(chan string, 1)
	go func() {
		v, _, _ := a.get(ctx, "q", tablesState{"s_", 1}, runtime.Freshness{Position: 10}, slow("at 10"), nil)
		first <- v.(string)
	}()
	waitRequests(t, a, 1) // the reading at 10 is in progress

	type result struct {
		v     any
		fresh runtime.Freshness
	}
	joined, own := make(chan result, 1), make(chan result, 1)
	go func() {
		v, f, _ := a.get(ctx, "q", tablesState{"s_", 2}, runtime.Freshness{Position: 12, MinPosition: 9}, slow("at 12"), nil)
		joined <- result{v, f}
	}()
	waitRequests(t, a, 2) // it has joined
	go func() {
		v, f, _ := a.get(ctx, "q", tablesState{"s_", 3}, runtime.Freshness{Position: 13, MinPosition: 13}, func(context.Context) (any, error) {
			computed.Add(1)
			return "at 13", nil
		}, nil)
		own <- result{v, f}
	}()
	r := <-own
	if r.v != "at 13" || r.fresh.Position != 13 {
		t.Fatalf("a request for position 13 got %v at %d", r.v, r.fresh.Position)
	}
	close(release)
	if v := <-first; v != "at 10" {
		t.Fatalf("first got %v", v)
	}
	r = <-joined
	if r.v != "at 10" || r.fresh.Position != 10 || r.fresh.MinPosition != 9 || r.fresh.Stale {
		t.Fatalf("the joining request got %v with %+v, want the reading at 10", r.v, r.fresh)
	}
	if n := computed.Load(); n != 2 {
		t.Fatalf("computed %d times, want 2 (at 10, at 13)", n)
	}
	// Both readings are done: a newer state reads anew.
	v, f, _ := a.get(ctx, "q", tablesState{"s_", 4}, runtime.Freshness{Position: 14}, func(context.Context) (any, error) { return "at 14", nil }, nil)
	if v != "at 14" || f.Position != 14 {
		t.Fatalf("after the readings, got %v at %d", v, f.Position)
	}
}

// TestAnswersDoNotJoinAReadingOfAReplacedSet: a rebuild switched the served set while a
// question was being read from the set it replaced (a purge after an erasure, a new
// version): a request that reads the new set reads it, rather than join that reading, even
// though the reading started at or after the position the request asked for.
func TestAnswersDoNotJoinAReadingOfAReplacedSet(t *testing.T) {
	ctx := context.Background()
	a := newAnswers(10, 0)
	release := make(chan struct{})
	old := readingInProgress(t, a, "directory q=quillon", tablesState{"directory_v3_g3_", 7}, runtime.Freshness{Position: 10},
		"Quillon Erasable", release)

	type result struct {
		v     any
		fresh runtime.Freshness
	}
	rebuilt := make(chan result, 1)
	go func() {
		v, f, _ := a.get(ctx, "directory q=quillon", tablesState{"directory_v3_g4_", 8}, runtime.Freshness{Position: 11, MinPosition: 9},
			func(context.Context) (any, error) { return "no contact", nil }, nil)
		rebuilt <- result{v, f}
	}()
	waitRequests(t, a, 2)
	close(release)
	if r := <-rebuilt; r.v != "no contact" || r.fresh.Position != 11 {
		t.Errorf("a request reading the rebuilt set got %v at %d, want its own reading at 11", r.v, r.fresh.Position)
	}
	if v := <-old; v != "Quillon Erasable" {
		t.Errorf("the reading of the replaced set got %v", v)
	}
}

// readingInProgress starts a request for question in state whose reading answers value once
// release is closed, and returns once the reading is in progress: the request's answer comes
// on the channel returned.
func readingInProgress(t *testing.T, a *answers, question string, state tablesState, fresh runtime.Freshness,
	value string, release <-chan struct{}) <-chan any {
	t.Helper()
	a.mu.Lock()
	seen := a.tick
	a.mu.Unlock()
	got := make(chan any, 1)
	go func() {
		v, _, _ := a.get(context.Background(), question, state, fresh, func(context.Context) (any, error) {
			<-release
			return value, nil
		}, nil)
		got <- v
	}()
	waitRequests(t, a, seen+1)
	return got
}

// waitRequests waits until a has seen n requests.
func waitRequests(t *testing.T, a *answers, n uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		a.mu.Lock()
		seen := a.tick
		a.mu.Unlock()
		if seen >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests after 10s, want %d", seen, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// After an erasure no kept answer stays in memory: clear forgets them all.
func TestAnswersClearForgetsEveryAnswer(t *testing.T) {
	ctx := context.Background()
	a := newAnswers(10, 0)
	for _, q := range []string{"directory q=quillon", "timeline c-1"} {
		if _, _, err := a.get(ctx, q, tablesState{"s_", 1}, none, func(context.Context) (any, error) { return "Quillon Erasable", nil }, nil); err != nil {
			t.Fatal(err)
		}
	}
	if a.len() != 2 {
		t.Fatalf("%d answers kept", a.len())
	}
	a.clear()
	if a.len() != 0 {
		t.Fatalf("%d answers kept after clear", a.len())
	}
	got, _, _ := a.get(ctx, "timeline c-1", tablesState{"s_", 1}, none, func(context.Context) (any, error) { return "erased", nil }, nil)
	if got != "erased" {
		t.Errorf("an answer from before the clear: %v", got)
	}
	(*answers)(nil).clear() // no kept answers configured
}

// A reading in progress when the answers are cleared answers the requests that wait for it,
// and is not kept once done: it may have read a set from before the purge.
func TestAnswersClearDropsAReadingInProgress(t *testing.T) {
	a := newAnswers(10, 0)
	release := make(chan struct{})
	got := readingInProgress(t, a, "directory q=quillon", tablesState{"directory_v3_g3_", 7}, none, "Quillon Erasable", release)
	a.clear()
	close(release)
	if v := <-got; v != "Quillon Erasable" {
		t.Fatalf("the reading in progress answered %v", v)
	}
	if a.len() != 0 {
		t.Errorf("%d answers kept after clear", a.len())
	}
}

// clock is a time that a test moves.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

// rereads is an again func for answers.get that counts its calls and gives state and fresh,
// releasing nothing.
func rereads(calls *atomic.Int64, state tablesState, fresh runtime.Freshness) reread {
	return func() (tablesState, runtime.Freshness, func(), error) {
		calls.Add(1)
		return state, fresh, func() {}, nil
	}
}

// While the tables change, the answer of the earlier state is given at once (with its own
// freshness) and the next is read once, in the background; once read, it is given. An answer
// whose reading began more than maxStale ago, one below the request's min_position and one of
// another set are not given: the request waits for a reading.
func TestAnswersGiveTheEarlierStateWhileTheNextIsRead(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)}
	a := newAnswers(10, time.Second)
	a.now = c.now
	var computed atomic.Int64
	answer := func(v string, release <-chan struct{}) func(context.Context) (any, error) {
		return func(context.Context) (any, error) {
			computed.Add(1)
			if release != nil {
				<-release
			}
			return v, nil
		}
	}
	at := func(pos int64) runtime.Freshness { return runtime.Freshness{Position: pos} }
	s1, s2, s3 := tablesState{"s_", 1}, tablesState{"s_", 2}, tablesState{"s_", 3}
	if v, f, err := a.get(ctx, "q", s1, at(10), answer("at 10", nil), nil); v != "at 10" || f.Position != 10 || err != nil {
		t.Fatalf("first reading = %v at %d, %v", v, f.Position, err)
	}

	// The tables moved to state 2 (position 12): the answer at 10 is given at once, and many
	// requests start one reading in the background.
	c.add(500 * time.Millisecond)
	release := make(chan struct{})
	var again atomic.Int64
	given := make(chan error, 1)
	go func() {
		for i := range 20 {
			if i == 1 { // from the second on, while the reading the first started is in progress
				waitFor(t, func() bool {
					a.mu.Lock()
					defer a.mu.Unlock()
					return a.entries["q"].state == s2 && !a.entries["q"].done
				})
			}
			v, f, err := a.get(ctx, "q", s2, runtime.Freshness{Position: 12, MinPosition: 9}, answer("at 12", release), rereads(&again, s2, at(12)))
			if v != "at 10" || f.Position != 10 || f.MinPosition != 9 || err != nil {
				given <- fmt.Errorf("request %d while the next is read = %v at %d (min %d), %v; want the answer at 10", i, v, f.Position, f.MinPosition, err)
				return
			}
		}
		given <- nil
	}()
	select {
	case err := <-given:
		close(release)
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		close(release)
		t.Fatal("the requests waited for the next reading")
	}
	waitFor(t, func() bool {
		v, f, _ := a.get(ctx, "q", s2, at(12), answer("read again", nil), nil)
		return v == "at 12" && f.Position == 12
	})
	if n, m := again.Load(), computed.Load(); n != 1 || m != 2 {
		t.Fatalf("read again %d times and computed %d; want one reading in the background", n, m)
	}

	cases := []struct {
		name  string
		state tablesState
		fresh runtime.Freshness
		after time.Duration
	}{
		{"its reading began more than maxStale ago", s3, at(13), 1100 * time.Millisecond},
		{"below the request's min_position", s3, runtime.Freshness{Position: 13, MinPosition: 13}, 0},
		{"of another set", tablesState{"t_", 3}, at(13), 0},
	}
	for _, cs := range cases {
		t.Run(cs.name, func(t *testing.T) {
			b := newAnswers(10, time.Second)
			b.now = c.now
			if v, _, _ := b.get(ctx, "q", s2, at(12), answer("at 12", nil), nil); v != "at 12" {
				t.Fatalf("first reading = %v", v)
			}
			c.add(cs.after)
			var again atomic.Int64
			v, f, err := b.get(ctx, "q", cs.state, cs.fresh, answer("at 13", nil), rereads(&again, cs.state, cs.fresh))
			if v != "at 13" || f.Position != 13 || err != nil || again.Load() != 0 {
				t.Fatalf("got %v at %d, %v (read again %d); want the reading at 13, in the request", v, f.Position, err, again.Load())
			}
		})
	}

	// Without maxStale every request waits for a reading of its state.
	b := newAnswers(10, 0)
	b.get(ctx, "q", s1, at(10), answer("at 10", nil), nil) //nolint:errcheck
	var none atomic.Int64
	if v, _, _ := b.get(ctx, "q", s2, at(12), answer("at 12", nil), rereads(&none, s2, at(12))); v != "at 12" || none.Load() != 0 {
		t.Fatalf("without maxStale = %v (read again %d), want the reading at 12", v, none.Load())
	}
}

// A reading in the background that the tables' set has left (a rebuild switched), that an
// erasure's clear overtook, or that failed, keeps nothing; the next request reads.
func TestAnswersBackgroundReadingKeepsNothingUnsure(t *testing.T) {
	ctx := context.Background()
	at := func(pos int64) runtime.Freshness { return runtime.Freshness{Position: pos} }
	s1, s2 := tablesState{"s_", 1}, tablesState{"s_", 2}
	for _, c := range []struct {
		name   string
		again  reread
		before func(a *answers) // while the background reading waits for its tables
		fails  bool
	}{
		{name: "switched to another set", again: func() (tablesState, runtime.Freshness, func(), error) {
			return tablesState{"t_", 1}, at(12), func() {}, nil
		}},
		{name: "cleared for an erasure", before: func(a *answers) { a.clear() }},
		{name: "failed", fails: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := newAnswers(10, time.Second)
			a.get(ctx, "q", s1, at(10), func(context.Context) (any, error) { return "at 10", nil }, nil) //nolint:errcheck
			tablesRead := make(chan struct{})
			proceed := make(chan struct{})
			again := c.again
			if again == nil {
				again = func() (tablesState, runtime.Freshness, func(), error) {
					close(tablesRead)
					<-proceed
					return s2, at(12), func() {}, nil
				}
			}
			finished := make(chan struct{})
			background := func(context.Context) (any, error) {
				defer close(finished)
				if c.fails {
					return nil, errors.New("boom")
				}
				return "at 12", nil
			}
			if v, _, _ := a.get(ctx, "q", s2, at(12), background, again); v != "at 10" {
				t.Fatalf("answer while the next is read = %v, want at 10", v)
			}
			if c.again == nil {
				select {
				case <-tablesRead:
				case <-time.After(5 * time.Second):
					t.Fatal("no reading started in the background")
				}
				if c.before != nil {
					c.before(a)
				}
				close(proceed)
			}
			if !c.fails {
				select {
				case <-finished:
					t.Fatalf("the background reading ran")
				case <-time.After(100 * time.Millisecond):
				}
			} else {
				select {
				case <-finished:
				case <-time.After(5 * time.Second):
					t.Fatal("no reading ran in the background")
				}
			}
			waitFor(t, func() bool {
				a.mu.Lock()
				defer a.mu.Unlock()
				e := a.entries["q"]
				return e == nil || (e.done && !e.renewing)
			})
			v, _, err := a.get(ctx, "q", s2, at(12), func(context.Context) (any, error) { return "read in the request", nil }, nil)
			want := "read in the request"
			if c.name == "switched to another set" {
				want = "at 10" // still the set's latest answer, and recent: given, its renewal given up
			}
			if v != want || err != nil {
				t.Fatalf("next request = %v, %v; want %q", v, err, want)
			}
		})
	}
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

// Requests given the answer a reading replaces, while that reading ends, each get that
// answer or the new one: never nothing (the reading drops the answer it replaced when it is
// done).
func TestAnswersGivenWhileTheReadingEnds(t *testing.T) {
	ctx := context.Background()
	s1, s2 := tablesState{"s_", 1}, tablesState{"s_", 2}
	again := func() (tablesState, runtime.Freshness, func(), error) {
		return s2, runtime.Freshness{Position: 12}, func() {}, nil
	}
	for range 2000 {
		a := newAnswers(10, time.Second)
		a.get(ctx, "q", s1, runtime.Freshness{Position: 10}, func(context.Context) (any, error) { return "at 10", nil }, nil) //nolint:errcheck
		release := make(chan struct{})
		a.get(ctx, "q", s2, runtime.Freshness{Position: 12}, func(context.Context) (any, error) { <-release; return "at 12", nil }, again) //nolint:errcheck
		waitFor(t, func() bool {
			a.mu.Lock()
			defer a.mu.Unlock()
			return a.entries["q"].state == s2 && !a.entries["q"].done
		})
		var wg sync.WaitGroup
		failed := make(chan string, 8)
		for range 8 {
			wg.Go(func() {
				defer func() {
					if v := recover(); v != nil {
						failed <- fmt.Sprint("panicked: ", v)
					}
				}()
				for range 100 {
					v, _, err := a.get(ctx, "q", s2, runtime.Freshness{Position: 12}, func(context.Context) (any, error) { return "x", nil }, again)
					if err != nil || (v != "at 10" && v != "at 12") {
						failed <- fmt.Sprintf("got %v, %v", v, err)
						return
					}
				}
			})
		}
		close(release)
		wg.Wait()
		close(failed)
		if msg, ok := <-failed; ok {
			t.Fatal(msg)
		}
	}
}
