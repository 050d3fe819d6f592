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

	"github.com/eventcrm/crm/projections"
)

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
		question, state, value string
		want                   string
		wantComputed           int64
	}{
		{"board", "s@1", "one", "one", 1},
		{"board", "s@1", "other", "one", 1},     // kept
		{"map", "s@1", "map-one", "map-one", 2}, // another question
		{"board", "s@2", "two", "two", 3},       // the tables changed
		{"board", "s@1", "late", "late", 4},     // an older state is not mixed with a newer one
		{"map", "s@1", "map-two", "map-one", 4},
	}
	for i, st := range steps {
		got, err := a.get(ctx, st.question, st.state, compute(st.value))
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
			v, err := a.get(context.Background(), "q", "s@1", func(context.Context) (any, error) {
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
	if _, err := a.get(context.Background(), "q", "s@1", func(context.Context) (any, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	v, err := a.get(context.Background(), "q", "s@1", func(context.Context) (any, error) { return "fine", nil })
	if err != nil || v != "fine" {
		t.Fatalf("after an error: %v, %v", v, err)
	}
}

func TestAnswersForgetTheLeastRecentlyUsed(t *testing.T) {
	a := newAnswers(3)
	ctx := context.Background()
	get := func(q string) (computed bool) {
		_, _ = a.get(ctx, q, "s@1", func(context.Context) (any, error) { computed = true; return q, nil })
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
		_, _ = a.get(context.Background(), "q", "s@1", func(context.Context) (any, error) { <-release; return "late", nil })
	}()
	time.Sleep(20 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := a.get(ctx, "q", "s@1", nil); !errors.Is(err, context.DeadlineExceeded) {
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
	f := projections.Freshness{Projection: "pipeline_board", Position: 42, Head: 50, Lag: projections.Lag{Events: 8, Seconds: 0.25}}
	encoded, appended := httptest.NewRecorder(), httptest.NewRecorder()
	writeJSON(encoded, http.StatusOK, ReadAnswer{Data: data, Freshness: f})
	writeReadAnswer(appended, appending{data}, f)
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
