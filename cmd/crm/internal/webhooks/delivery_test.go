package webhooks_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventcrm/crm/cmd/crm/internal/webhooks"
	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// receiver is a real local HTTP receiver that verifies every signature and keeps what it
// took, in order; misbehave decides, per request, to fail it.
type receiver struct {
	t         *testing.T
	secret    string
	mu        sync.Mutex
	taken     []int64 // positions answered 2xx, in the order taken
	bodies    []string
	ids       map[string]int64
	requests  int
	misbehave func(n int) string // "", "fail", "slow", "drop"
	srv       *httptest.Server
	now       func() time.Time // the receiver's clock, to check timestamps
}

func newReceiver(t *testing.T, misbehave func(n int) string) *receiver {
	r := &receiver{t: t, ids: map[string]int64{}, misbehave: misbehave, now: time.Now}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return
	}
	r.mu.Lock()
	r.requests++
	n, secret, now := r.requests, r.secret, r.now
	r.mu.Unlock()
	if err := webhooks.Verify(secret, req.Header.Get("webhook-id"), req.Header.Get("webhook-timestamp"),
		req.Header.Get("webhook-signature"), body, now(), 5*time.Minute); err != nil {
		r.t.Errorf("request %d: %v", n, err)
	}
	switch r.misbehave(n) {
	case "fail":
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	case "slow":
		time.Sleep(300 * time.Millisecond) // beyond the sender's timeout
	case "drop":
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	var msg struct {
		Data struct {
			Position int64 `json:"position"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &msg); err != nil {
		r.t.Errorf("body %s: %v", body, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.ids[req.Header.Get("webhook-id")]; !dup {
		r.taken = append(r.taken, msg.Data.Position)
		r.bodies = append(r.bodies, string(body))
	}
	r.ids[req.Header.Get("webhook-id")] = msg.Data.Position
	w.WriteHeader(http.StatusNoContent)
}

// subscribe creates a subscription of svc to types sent to the receiver, which then checks
// its signatures.
func (r *receiver) subscribe(t *testing.T, svc *webhooks.Service, types ...string) webhooks.Subscription {
	t.Helper()
	sub, err := svc.Create(context.Background(), admin, webhooks.CreateRequest{URL: r.srv.URL, EventTypes: types})
	if err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	r.secret = sub.Secret
	r.mu.Unlock()
	return sub
}

func (r *receiver) positions() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int64(nil), r.taken...)
}

func newService(t *testing.T, base webhooks.Config, now func() time.Time) *webhooks.Service {
	t.Helper()
	svc, err := webhooks.New(context.Background(), with(base, webhooks.Config{AllowPrivate: true, Now: now,
		Timeout: 150 * time.Millisecond, MinBackoff: 2 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		PollInterval: 10 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// run runs svc until the returned stop is called.
func run(t *testing.T, svc *webhooks.Service) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { svc.Run(ctx); close(done) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

// contacts creates n contacts with a touchpoint each and returns the positions of the events.
func contacts(t *testing.T, cmds *commands.Handler, n int) []int64 {
	t.Helper()
	var positions []int64
	for i := range n {
		c, err := cmds.CreateContact(context.Background(), commands.Meta{Actor: "rep"}, commands.CreateContact{Name: fmt.Sprint("Contact ", i), Channel: "seminar"})
		if err != nil {
			t.Fatal(err)
		}
		tp, err := cmds.RecordTouchpoint(context.Background(), commands.Meta{Actor: "rep"}, commands.RecordTouchpoint{ContactID: c.ID, Kind: "call"})
		if err != nil {
			t.Fatal(err)
		}
		positions = append(positions, c.Position, tp.Position)
	}
	return positions
}

// Every event reaches a receiver that fails, answers too slowly and drops connections, once
// each in log order (duplicates are possible, at least once, and carry the same webhook-id),
// also across a restart of the sender in the middle; a receiver that never answers in time
// holds up nobody else.
func TestDeliveryIsAtLeastOnceInOrderThroughFailuresAndRestarts(t *testing.T) {
	projectiontest.ForEachBackend(t, func(t *testing.T, store eventstore.Store, db *projections.DB) {
		ctx := context.Background()
		rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
		var rngMu sync.Mutex
		flaky := newReceiver(t, func(int) string {
			rngMu.Lock()
			defer rngMu.Unlock()
			switch x := rng.IntN(8); {
			case x < 2:
				return "fail"
			case x < 3:
				return "slow"
			case x < 4:
				return "drop"
			}
			return ""
		})
		stuck := newReceiver(t, func(int) string { return "slow" })
		base := deps(t, store, db)
		svc := newService(t, base, time.Now)
		a, err := svc.Create(ctx, admin, webhooks.CreateRequest{URL: flaky.srv.URL + "/hooks", EventTypes: []string{"*"}})
		if err != nil {
			t.Fatal(err)
		}
		flaky.mu.Lock()
		flaky.secret = a.Secret
		flaky.mu.Unlock()
		b := stuck.subscribe(t, svc, "contact.*")
		cmds := commands.NewHandler(store)
		stop := run(t, svc)
		want := contacts(t, cmds, 10)
		projectiontest.WaitUntil(t, 2*time.Minute, "a first delivery", func() bool { return len(flaky.positions()) > 3 })
		stop() // in the middle of it
		want = append(want, contacts(t, cmds, 10)...)
		svc = newService(t, base, time.Now)
		run(t, svc)
		projectiontest.WaitUntil(t, 2*time.Minute, "every event delivered", func() bool { return len(flaky.positions()) >= len(want) })
		got := flaky.positions()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("delivered %v, want %v", got, want)
		}
		// The receiver may hold an event whose answer came too late (a slow answer): its
		// delivery is retried, and recorded as delivered, a little later.
		var deliveries []webhooks.Delivery
		projectiontest.WaitUntil(t, 2*time.Minute, "every delivery recorded as delivered", func() bool {
			deliveries, err = svc.Deliveries(ctx, a.ID, 1000)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range deliveries {
				if d.Status != webhooks.StatusDelivered {
					return false
				}
			}
			return len(deliveries) >= len(want)
		})
		if len(deliveries) != len(want) {
			t.Fatalf("%d deliveries, want %d", len(deliveries), len(want))
		}
		retried := 0
		for _, d := range deliveries {
			if d.Status != webhooks.StatusDelivered || d.ResponseCode != http.StatusNoContent {
				t.Errorf("delivery %+v", d)
			}
			if d.Attempts > 1 {
				retried++
			}
		}
		if retried == 0 {
			t.Error("no delivery needed a retry: the receiver did not misbehave")
		}
		// The stuck receiver timed out every time, and is still at its first event.
		stuckList, err := svc.Deliveries(ctx, b.ID, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(stuckList) != 1 || stuckList[0].Status != webhooks.StatusPending || stuckList[0].Attempts < 2 || stuckList[0].LastError == "" {
			t.Fatalf("stuck deliveries %+v", stuckList)
		}
	})
}

// A day of failures disables a subscription; an admin enables it again and it resumes with
// the event it could not deliver. A delivery can be sent again on request.
func TestFailingForADayDisablesUntilEnabled(t *testing.T) {
	projectiontest.ForEachBackend(t, func(t *testing.T, store eventstore.Store, db *projections.DB) {
		ctx := context.Background()
		var (
			mu      sync.Mutex
			now     = time.Now()
			failing = true
		)
		clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		rec := newReceiver(t, func(int) string {
			mu.Lock()
			defer mu.Unlock()
			if failing {
				now = now.Add(5 * time.Hour) // each failure is 5 hours after the last
				return "fail"
			}
			return ""
		})
		svc := newService(t, deps(t, store, db), clock)
		sub, err := svc.Create(ctx, admin, webhooks.CreateRequest{URL: rec.srv.URL, EventTypes: []string{"contact.created.v2"}})
		if err != nil {
			t.Fatal(err)
		}
		rec.mu.Lock()
		rec.secret, rec.now = sub.Secret, clock
		rec.mu.Unlock()
		want := contacts(t, commands.NewHandler(store), 2)
		run(t, svc)
		projectiontest.WaitUntil(t, 2*time.Minute, "disabled", func() bool {
			s, err := svc.Get(ctx, sub.ID)
			return err == nil && !s.Enabled
		})
		s, _ := svc.Get(ctx, sub.ID)
		list, _ := svc.Deliveries(ctx, sub.ID, 10)
		// Failures at +5h, +10h, ... +30h: the sixth is a day after the first.
		if s.DisabledReason == "" || len(list) != 1 || list[0].Status != webhooks.StatusFailed || list[0].Attempts != 6 || list[0].ResponseCode != 503 {
			t.Fatalf("subscription %+v, deliveries %+v", s, list)
		}
		mu.Lock()
		failing = false
		mu.Unlock()
		if d, err := svc.Redeliver(ctx, sub.ID, list[0].ID); err != nil || d.Status != webhooks.StatusDelivered || d.Attempts != 7 {
			t.Fatalf("redelivered %+v, %v", d, err)
		}
		enabled := true
		if _, err := svc.Update(ctx, admin, sub.ID, webhooks.Patch{Enabled: &enabled}); err != nil {
			t.Fatal(err)
		}
		projectiontest.WaitUntil(t, 2*time.Minute, "both delivered", func() bool { return len(rec.positions()) == 2 })
		if got := rec.positions(); got[0] != want[0] || got[1] != want[2] {
			t.Fatalf("delivered %v of %v", got, want)
		}
		if _, err := svc.Redeliver(ctx, sub.ID, "msg_nothing"); !errors.Is(err, webhooks.ErrNotFound) {
			t.Errorf("redeliver unknown: %v", err)
		}
	})
}

// Only http(s) URLs; private, loopback and link-local addresses are refused unless allowed,
// also when a name resolves to one at delivery time.
func TestPrivateAddressesAreRefused(t *testing.T) {
	store, db := projectiontest.Backends()[0].Open(t)
	ctx := context.Background()
	svc, err := webhooks.New(ctx, with(deps(t, store, db), webhooks.Config{Timeout: time.Second, MinBackoff: time.Millisecond,
		MaxBackoff: 5 * time.Millisecond, PollInterval: 5 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		url   string
		field string
	}{
		{"ftp://example.com/x", "url"},
		{"example.com/hook", "url"},
		{"http://127.0.0.1:9/x", "url"},
		{"http://10.1.2.3/x", "url"},
		{"http://192.168.0.10/x", "url"},
		{"http://169.254.169.254/latest", "url"},
		{"http://[::1]/x", "url"},
		{"http://[fe80::1]/x", "url"},
		{"http://user:pw@example.com/x", "url"},
		{"https://hooks.example.com/crm", ""},
	} {
		_, err := svc.Create(ctx, admin, webhooks.CreateRequest{URL: tt.url, EventTypes: []string{"*"}})
		var inv *webhooks.InvalidError
		if tt.field == "" && err != nil || tt.field != "" && (!errors.As(err, &inv) || inv.Field != tt.field) {
			t.Errorf("%s: %v, want invalid %q", tt.url, err, tt.field)
		}
	}
	if _, err := svc.Create(ctx, admin, webhooks.CreateRequest{URL: "https://hooks.example.com", EventTypes: []string{"contact.nothing.v1"}}); err == nil {
		t.Error("an unknown event type was accepted")
	}
	// A name is checked on the address dialled.
	rec := newReceiver(t, func(int) string { return "" })
	u, err := url.Parse(rec.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := svc.Create(ctx, admin, webhooks.CreateRequest{URL: "http://localhost:" + u.Port() + "/x", EventTypes: []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	contacts(t, commands.NewHandler(store), 1)
	run(t, svc)
	projectiontest.WaitUntil(t, 2*time.Minute, "a refused attempt", func() bool {
		list, err := svc.Deliveries(ctx, sub.ID, 1)
		return err == nil && len(list) == 1 && strings.Contains(list[0].LastError, webhooks.ErrPrivateAddress.Error())
	})
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.requests != 0 {
		t.Fatalf("the loopback receiver got %d requests", rec.requests)
	}
}

// observer records what the delivery reports.
type observer struct {
	mu                  sync.Mutex
	delivered, failed   int
	latencies           []time.Duration
	enabled, disabled   int
	subscriptionReports int
}

func (o *observer) Attempt(delivered bool, latency time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !delivered {
		o.failed++
		return
	}
	o.delivered++
	o.latencies = append(o.latencies, latency)
}

func (o *observer) Subscriptions(enabled, disabled int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.enabled, o.disabled = enabled, disabled
	o.subscriptionReports++
}

// The delivery reports each attempt and the subscriptions it reads: one event (a contact
// created; its touchpoint is of another type) to a receiver that fails twice, then takes it:
// 2 failed attempts, 1 delivered with the time from its append (between the append and the
// answer); one subscription, enabled, then disabled by an admin.
func TestDeliveryIsObserved(t *testing.T) {
	projectiontest.ForEachBackend(t, func(t *testing.T, store eventstore.Store, db *projections.DB) {
		ctx := context.Background()
		rec := newReceiver(t, func(n int) string {
			if n <= 2 {
				return "fail"
			}
			return ""
		})
		var o observer
		svc, err := webhooks.New(ctx, with(deps(t, store, db), webhooks.Config{AllowPrivate: true, Timeout: time.Second,
			MinBackoff: 2 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, PollInterval: 10 * time.Millisecond, Observer: &o}))
		if err != nil {
			t.Fatal(err)
		}
		sub, err := svc.Create(ctx, admin, webhooks.CreateRequest{URL: rec.srv.URL, EventTypes: []string{"contact.created.v2"}})
		if err != nil {
			t.Fatal(err)
		}
		rec.mu.Lock()
		rec.secret = sub.Secret
		rec.mu.Unlock()
		start := time.Now()
		contacts(t, commands.NewHandler(store), 1)
		run(t, svc)
		// The receiver holds the event a moment before the sender reads its answer.
		projectiontest.WaitUntil(t, time.Minute, "delivered", func() bool {
			o.mu.Lock()
			defer o.mu.Unlock()
			return len(rec.positions()) == 1 && o.delivered > 0
		})
		elapsed := time.Since(start)
		o.mu.Lock()
		if o.failed != 2 || o.delivered != 1 || len(o.latencies) != 1 || o.latencies[0] <= 0 || o.latencies[0] > elapsed ||
			o.enabled != 1 || o.disabled != 0 || o.subscriptionReports == 0 {
			t.Errorf("observed %d failed, %d delivered in %v, %d enabled, %d disabled (%d reports); want 2 failed, 1 delivered within %v, 1 enabled",
				o.failed, o.delivered, o.latencies, o.enabled, o.disabled, o.subscriptionReports, elapsed)
		}
		o.mu.Unlock()
		disabled := false
		if _, err := svc.Update(ctx, admin, sub.ID, webhooks.Patch{Enabled: &disabled}); err != nil {
			t.Fatal(err)
		}
		projectiontest.WaitUntil(t, time.Minute, "disabled reported", func() bool {
			o.mu.Lock()
			defer o.mu.Unlock()
			return o.enabled == 0 && o.disabled == 1
		})
	})
}
