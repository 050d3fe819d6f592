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
	a := newAnswers(10)
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
		got, _, err := a.get(ctx, st.question, st.state, none, compute(st.value))
		if err != nil || got != st.want || computed.Load() != st.wantComputed {
			t.Fatalf("step %d: got %v, %v, computed %d; want %q, computed %d", i, got, err, computed.Load(), st.want, st.wantComputed)
		}
	}
}

func TestAnswersShareOneReadingAmongConcurrentRequests(t *testing.T) {
	a := newAnswers(10)
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
			})
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
	a := newAnswers(10)
	boom := errors.New("boom")
	if _, _, err := a.get(context.Background(), "q", tablesState{"s_", 1}, none, func(context.Context) (any, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	v, _, err := a.get(context.Background(), "q", tablesState{"s_", 1}, none, func(context.Context) (any, error) { return "fine", nil })
	if err != nil || v != "fine" {
		t.Fatalf("after an error: %v, %v", v, err)
	}
}

func TestAnswersForgetTheLeastRecentlyUsed(t *testing.T) {
	a := newAnswers(3)
	ctx := context.Background()
	get := func(q string) (computed bool) {
		_, _, _ = a.get(ctx, q, tablesState{"s_", 1}, none, func(context.Context) (any, error) { computed = true; return q, nil })
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
	a := newAnswers(10)
	release := make(chan struct{})
	defer close(release)
	go func() {
		_, _, _ = a.get(context.Background(), "q", tablesState{"s_", 1}, none, func(context.Context) (any, error) { <-release; return "late", nil })
	}()
	waitRequests(t, a, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, _, err := a.get(ctx, "q", tablesState{"s_", 1}, none, nil); !errors.Is(err, context.DeadlineExceeded) {
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
	a := newAnswers(10)
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
		v, _, _ := a.get(ctx, "q", tablesState{"s_", 1}, runtime.Freshness{Position: 10}, slow("at 10"))
		first <- v.(string)
	}()
	waitRequests(t, a, 1) // the reading at 10 is in progress

	type result struct {
		v     any
		fresh runtime.Freshness
	}
	joined, own := make(chan result, 1), make(chan result, 1)
	go func() {
		v, f, _ := a.get(ctx, "q", tablesState{"s_", 2}, runtime.Freshness{Position: 12, MinPosition: 9}, slow("at 12"))
		joined <- result{v, f}
	}()
	waitRequests(t, a, 2) // it has joined
	go func() {
		v, f, _ := a.get(ctx, "q", tablesState{"s_", 3}, runtime.Freshness{Position: 13, MinPosition: 13}, func(context.Context) (any, error) {
			computed.Add(1)
			return "at 13", nil
		})
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
	v, f, _ := a.get(ctx, "q", tablesState{"s_", 4}, runtime.Freshness{Position: 14}, func(context.Context) (any, error) { return "at 14", nil })
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
	a := newAnswers(10)
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
			func(context.Context) (any, error) { return "no contact", nil })
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
		})
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
	a := newAnswers(10)
	for _, q := range []string{"directory q=quillon", "timeline c-1"} {
		if _, _, err := a.get(ctx, q, tablesState{"s_", 1}, none, func(context.Context) (any, error) { return "Quillon Erasable", nil }); err != nil {
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
	got, _, _ := a.get(ctx, "timeline c-1", tablesState{"s_", 1}, none, func(context.Context) (any, error) { return "erased", nil })
	if got != "erased" {
		t.Errorf("an answer from before the clear: %v", got)
	}
	(*answers)(nil).clear() // no kept answers configured
}

// A reading in progress when the answers are cleared answers the requests that wait for it,
// and is not kept once done: it may have read a set from before the purge.
func TestAnswersClearDropsAReadingInProgress(t *testing.T) {
	a := newAnswers(10)
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
