package webhooks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/eventcrm/crm/cmd/crm/internal/webhooks"
	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// arrivals is a receiver that answers 204 at once and notes when each position arrived.
type arrivals struct {
	mu sync.Mutex
	at map[int64]time.Time
}

func (a *arrivals) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var msg struct {
		Data struct {
			Position int64 `json:"position"`
		} `json:"data"`
	}
	_ = json.Unmarshal(body, &msg)
	a.mu.Lock()
	if _, ok := a.at[msg.Data.Position]; !ok {
		a.at[msg.Data.Position] = time.Now()
	}
	a.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (a *arrivals) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.at)
}

// BenchmarkDelivery measures, on each backend, with the product's defaults (a worker looks
// for new events every 100 ms):
//   - paced: commands at 200/s for 10 s to one subscription of every event; it reports the
//     p50 and p99 from the command's answer to the receiver taking the event, and deliveries/s;
//   - backlog: 2,000 events waiting, then delivered as fast as the sender goes (deliveries/s),
//     beside the baseline of the same run: the same bodies POSTed by a bare loop.
func BenchmarkDelivery(b *testing.B) {
	for _, backend := range projectiontest.Backends() {
		b.Run(backend.Name, func(b *testing.B) {
			for range b.N {
				store, db := backend.Open(b)
				ctx := context.Background()
				rec := &arrivals{at: map[int64]time.Time{}}
				srv := httptest.NewServer(rec)
				defer srv.Close()
				svc, err := webhooks.New(ctx, with(deps(b, store, db), webhooks.Config{AllowPrivate: true}))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := svc.Create(ctx, admin, webhooks.CreateRequest{URL: srv.URL, EventTypes: []string{"*"}}); err != nil {
					b.Fatal(err)
				}
				cmds := commands.NewHandler(store)
				runCtx, stop := context.WithCancel(ctx)
				done := make(chan struct{})
				go func() { svc.Run(runCtx); close(done) }()

				// Paced.
				appended := map[int64]time.Time{}
				tick := time.NewTicker(5 * time.Millisecond)
				start := time.Now()
				for i := range 2000 {
					<-tick.C
					res, err := cmds.CreateContact(ctx, commands.Meta{Actor: "bench"}, commands.CreateContact{Name: fmt.Sprint("c", i), Channel: "seminar"})
					if err != nil {
						b.Fatal(err)
					}
					appended[res.Position] = time.Now()
				}
				tick.Stop()
				projectiontest.WaitUntil(b, 5*time.Minute, "paced deliveries", func() bool { return rec.count() >= len(appended) })
				elapsed := time.Since(start)
				var lat []time.Duration
				rec.mu.Lock()
				for pos, at := range appended {
					lat = append(lat, rec.at[pos].Sub(at))
				}
				rec.mu.Unlock()
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "paced-p50-ms")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "paced-p99-ms")
				b.ReportMetric(float64(len(appended))/elapsed.Seconds(), "paced-deliveries/s")

				// Backlog: stop the sender, append, start it again.
				stop()
				<-done
				before := rec.count()
				for i := range 2000 {
					if _, err := cmds.CreateContact(ctx, commands.Meta{Actor: "bench"}, commands.CreateContact{Name: fmt.Sprint("d", i), Channel: "seminar"}); err != nil {
						b.Fatal(err)
					}
				}
				runCtx, stop = context.WithCancel(ctx)
				done = make(chan struct{})
				start = time.Now()
				go func() { svc.Run(runCtx); close(done) }()
				projectiontest.WaitUntil(b, 5*time.Minute, "backlog deliveries", func() bool { return rec.count() >= before+2000 })
				b.ReportMetric(2000/time.Since(start).Seconds(), "backlog-deliveries/s")
				stop()
				<-done

				// Baseline: the same number of POSTs of a like body by a bare loop.
				body := bytes.Repeat([]byte("x"), 600)
				start = time.Now()
				for range 2000 {
					resp, err := http.Post(srv.URL, "application/json", bytes.NewReader(body))
					if err != nil {
						b.Fatal(err)
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				b.ReportMetric(2000/time.Since(start).Seconds(), "baseline-posts/s")
			}
		})
	}
}
