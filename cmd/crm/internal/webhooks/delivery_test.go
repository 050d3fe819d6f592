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
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventcrm/crm/cmd/crm/internal/webhooks"
	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/domain/webhook"
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

// subscribe subscribes the receiver to the event types and gives it the secret to verify with.
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
		{"http://0.1.2.3/x", "url"},
		{"http://[::ffff:10.1.2.3]/x", "url"},
		// NAT64 and 6to4 addresses reach the IPv4 address they embed.
		{"http://[64:ff9b::7f00:1]/x", "url"},
		{"http://[64:ff9b::a01:203]/x", "url"},
		{"http://[64:ff9b:1::a9fe:a9fe]/x", "url"},
		{"http://[2002:c0a8:a::1]/x", "url"},
		{"http://[64:ff9b::5db8:d822]/x", ""},
		{"http://[2002:5db8:d822::1]/x", ""},
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

// A subscription disabled or deleted while its worker is in the middle of a batch of events
// receives nothing after the event being sent then: the worker does not finish the batch.
func TestNothingIsDeliveredAfterADisablingOrADeletion(t *testing.T) {
	for _, tt := range []struct {
		name   string
		change func(ctx context.Context, svc *webhooks.Service, id string) error
		gone   func(webhooks.Subscription) bool
	}{
		{"disabled", func(ctx context.Context, svc *webhooks.Service, id string) error {
			off := false
			_, err := svc.Update(ctx, admin, id, webhooks.Patch{Enabled: &off})
			return err
		}, func(s webhooks.Subscription) bool { return !s.Enabled }},
		{"deleted", func(ctx context.Context, svc *webhooks.Service, id string) error {
			return svc.Delete(ctx, admin, id)
		}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			projectiontest.ForEachBackend(t, func(t *testing.T, store eventstore.Store, db *projections.DB) {
				ctx := context.Background()
				held, release := make(chan struct{}), make(chan struct{})
				var once sync.Once
				rec := newReceiver(t, func(n int) string {
					if n == 1 {
						once.Do(func() { close(held) })
						<-release
					}
					return ""
				})
				svc, err := webhooks.New(ctx, with(deps(t, store, db), webhooks.Config{AllowPrivate: true, Timeout: time.Minute,
					MinBackoff: 2 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, PollInterval: 10 * time.Millisecond}))
				if err != nil {
					t.Fatal(err)
				}
				sub := rec.subscribe(t, svc, "*")
				want := contacts(t, commands.NewHandler(store), 5)
				run(t, svc)
				select {
				case <-held:
				case <-time.After(time.Minute):
					t.Fatal("no first delivery")
				}
				if err := tt.change(ctx, svc, sub.ID); err != nil {
					close(release)
					t.Fatal(err)
				}
				projectiontest.WaitUntil(t, time.Minute, "the change in the list", func() bool {
					list, err := svc.List(ctx)
					if err != nil {
						t.Fatal(err)
					}
					for _, s := range list {
						if s.ID == sub.ID {
							return tt.gone != nil && tt.gone(s)
						}
					}
					return true
				})
				time.Sleep(100 * time.Millisecond) // the delivery hears of the change
				close(release)
				time.Sleep(500 * time.Millisecond)
				if got := rec.positions(); len(got) != 1 || got[0] != want[0] {
					t.Fatalf("delivered %v after the subscription was %s, want only %d (being sent then)", got, tt.name, want[0])
				}
			})
		})
	}
}

// A subscription deleted while its worker waits to try an event again leaves no delivery
// state behind: the worker writes none after the deletion removed it.
func TestADeletionLeavesNoDeliveryState(t *testing.T) {
	projectiontest.ForEachBackend(t, func(t *testing.T, store eventstore.Store, db *projections.DB) {
		ctx := context.Background()
		rec := newReceiver(t, func(int) string { return "fail" })
		svc, err := webhooks.New(ctx, with(deps(t, store, db), webhooks.Config{AllowPrivate: true, Timeout: time.Second,
			MinBackoff: 50 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, PollInterval: 10 * time.Millisecond}))
		if err != nil {
			t.Fatal(err)
		}
		sub := rec.subscribe(t, svc, "contact.touchpoint_recorded.v1")
		contacts(t, commands.NewHandler(store), 2)
		run(t, svc)
		projectiontest.WaitUntil(t, time.Minute, "a failed attempt", func() bool {
			list, err := svc.Deliveries(ctx, sub.ID, 10)
			return err == nil && len(list) == 1 && list[0].Attempts > 0
		})
		if err := svc.Delete(ctx, admin, sub.ID); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond) // several retries' worth
		noDeliveryState(t, db, sub.ID)
	})
}

// noDeliveryState fails t when the delivery tables hold a row of the subscription id.
func noDeliveryState(t *testing.T, db *projections.DB, id string) {
	t.Helper()
	for _, table := range []string{"webhook_positions", "webhook_deliveries"} {
		var n int
		if err := db.SQL.QueryRowContext(context.Background(), db.Dialect.Rebind(`SELECT COUNT(*) FROM `+table+` WHERE subscription_id = ?`), id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%s holds %d rows of the deleted subscription", table, n)
		}
	}
}

// steppingClock is a clock that a receiver moves on by 5 hours at each attempt it fails: a
// day of failures is a few attempts.
type steppingClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *steppingClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *steppingClock) step() { c.mu.Lock(); defer c.mu.Unlock(); c.now = c.now.Add(5 * time.Hour) }

// failingDisable is the real store, but for the first append of a subscription's disabling,
// which fails as a database may (a lost connection).
type failingDisable struct {
	eventstore.Store
	failed atomic.Bool
}

func (s *failingDisable) Append(ctx context.Context, stream string, expected int64, events []eventstore.EventData) (eventstore.AppendResult, error) {
	if len(events) > 0 && events[0].Type == webhook.TypeDisabled && s.failed.CompareAndSwap(false, true) {
		return eventstore.AppendResult{}, errors.New("connection reset by peer")
	}
	return s.Store.Append(ctx, stream, expected, events)
}

func (s *failingDisable) Unwrap() eventstore.Store { return s.Store }

// A subscription failing for a day whose disabling could not be recorded is disabled at the
// next attempt: its worker does not wait for ever for a disabling that never happened.
func TestAFailedDisablingIsTriedAgain(t *testing.T) {
	projectiontest.ForEachBackend(t, func(t *testing.T, store eventstore.Store, db *projections.DB) {
		ctx := context.Background()
		clock := &steppingClock{now: time.Now()}
		rec := newReceiver(t, func(int) string {
			clock.step()
			return "fail"
		})
		rec.now = clock.Now
		failing := &failingDisable{Store: store}
		cfg := deps(t, store, db)
		cfg.Commands = commands.NewHandler(failing)
		svc := newService(t, cfg, clock.Now)
		sub := rec.subscribe(t, svc, "contact.created.v2")
		contacts(t, commands.NewHandler(store), 1)
		run(t, svc)
		projectiontest.WaitUntil(t, 20*time.Second, "disabled", func() bool {
			s, err := svc.Get(ctx, sub.ID)
			return err == nil && !s.Enabled && failing.failed.Load()
		})
	})
}

// A restart in the middle of a run of failures keeps when the run began: the subscription is
// disabled a day after its first failure, not a day after the restart.
func TestARestartKeepsWhenTheFailuresBegan(t *testing.T) {
	projectiontest.ForEachBackend(t, func(t *testing.T, store eventstore.Store, db *projections.DB) {
		ctx := context.Background()
		clock := &steppingClock{now: time.Now()}
		third, release := make(chan struct{}), make(chan struct{})
		rec := newReceiver(t, func(n int) string {
			if n == 3 {
				close(third)
				<-release
				return "fail"
			}
			clock.step()
			return "fail"
		})
		rec.now = clock.Now
		base := deps(t, store, db)
		svc := newService(t, base, clock.Now)
		// Its events come after a contact's creation, of another type, in the same batch.
		sub := rec.subscribe(t, svc, "contact.touchpoint_recorded.v1")
		contacts(t, commands.NewHandler(store), 1)
		stop := run(t, svc)
		<-third
		stop() // the third attempt cut off by the restart: not a failure of the receiver
		close(release)
		svc = newService(t, base, clock.Now)
		run(t, svc)
		projectiontest.WaitUntil(t, time.Minute, "disabled", func() bool {
			s, err := svc.Get(ctx, sub.ID)
			return err == nil && !s.Enabled
		})
		// Failures at +5h and +10h, then +15h, +20h, +25h and +30h: a day after the first.
		list, err := svc.Deliveries(ctx, sub.ID, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 || list[0].Attempts != 6 {
			t.Fatalf("deliveries %+v, want one of 6 attempts", list)
		}
	})
}

// A delivery sent again on request keeps what it is when that attempt fails: delivered stays
// delivered (the receiver took it before; nothing will send it again by itself), with the
// failure as its last error and the time it was delivered unchanged.
func TestAFailedRedeliveryKeepsTheDeliveryDelivered(t *testing.T) {
	projectiontest.ForEachBackend(t, func(t *testing.T, store eventstore.Store, db *projections.DB) {
		ctx := context.Background()
		rec := newReceiver(t, func(n int) string {
			if n > 1 {
				return "fail"
			}
			return ""
		})
		svc := newService(t, deps(t, store, db), time.Now)
		sub := rec.subscribe(t, svc, "contact.created.v2")
		contacts(t, commands.NewHandler(store), 1)
		run(t, svc)
		var first webhooks.Delivery
		projectiontest.WaitUntil(t, time.Minute, "delivered", func() bool {
			list, err := svc.Deliveries(ctx, sub.ID, 10)
			if err == nil && len(list) == 1 {
				first = list[0]
			}
			return first.Status == webhooks.StatusDelivered
		})
		d, err := svc.Redeliver(ctx, sub.ID, first.ID)
		if err != nil {
			t.Fatal(err)
		}
		if d.Status != webhooks.StatusDelivered || d.Attempts != 2 || d.ResponseCode != http.StatusServiceUnavailable || d.LastError == "" ||
			d.DeliveredAt == nil || !d.DeliveredAt.Equal(*first.DeliveredAt) {
			t.Fatalf("after a failed redelivery %+v, was %+v; want it delivered as before, with the failure as last error", d, first)
		}
	})
}

// A subscription deleted while an attempt of its worker is on its way leaves no delivery
// state behind either: what the worker records of that attempt, and of its progress, is
// removed with the rest.
func TestADeletionDuringAnAttemptLeavesNoDeliveryState(t *testing.T) {
	projectiontest.ForEachBackend(t, func(t *testing.T, store eventstore.Store, db *projections.DB) {
		ctx := context.Background()
		arrived, release := make(chan struct{}), make(chan struct{})
		var first sync.Once
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			first.Do(func() {
				close(arrived)
				<-release // answered once the subscription is deleted
			})
			w.WriteHeader(http.StatusNoContent)
		}))
		t.Cleanup(srv.Close)
		svc, err := webhooks.New(ctx, with(deps(t, store, db), webhooks.Config{AllowPrivate: true, Timeout: 30 * time.Second,
			MinBackoff: 50 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, PollInterval: 10 * time.Millisecond}))
		if err != nil {
			t.Fatal(err)
		}
		sub, err := svc.Create(ctx, admin, webhooks.CreateRequest{URL: srv.URL, EventTypes: []string{"contact.touchpoint_recorded.v1"}})
		if err != nil {
			t.Fatal(err)
		}
		contacts(t, commands.NewHandler(store), 2)
		run(t, svc)
		select {
		case <-arrived:
		case <-time.After(time.Minute):
			t.Fatal("no attempt reached the receiver")
		}
		if err := svc.Delete(ctx, admin, sub.ID); err != nil {
			t.Fatal(err)
		}
		close(release)
		time.Sleep(500 * time.Millisecond) // the worker's answer, and several polls
		noDeliveryState(t, db, sub.ID)
	})
}
