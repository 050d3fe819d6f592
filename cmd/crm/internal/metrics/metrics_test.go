package metrics_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/eventcrm/crm/cmd/crm/internal/metrics"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/sqlite"
	"github.com/eventcrm/crm/projections/rebuild"
	"github.com/eventcrm/crm/projections/runtime"
)

func newMetrics(t *testing.T) (*metrics.Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	return m, reg
}

func events(n int) []eventstore.EventData {
	out := make([]eventstore.EventData, n)
	for i := range out {
		out[i] = eventstore.EventData{ID: uuid.NewString(), Type: "test.happened.v1", Data: []byte(`{}`), OccurredAt: time.Now()}
	}
	return out
}

// Appends through the measured store are counted by outcome, with their batch sizes: two
// appends of 1 and 3 events, then one at a wrong expected version (a conflict, 1 event).
func TestStoreAppends(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	raw, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "crm.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = raw.Close() })
	m, reg := newMetrics(t)
	store := m.Store(raw)
	if _, err := store.Append(ctx, "s-1", eventstore.NoStream, events(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Append(ctx, "s-2", eventstore.NoStream, events(3)); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Append(ctx, "s-1", eventstore.NoStream, events(1)); !errors.Is(err, eventstore.ErrWrongExpectedVersion) {
		t.Fatalf("append at a wrong version: %v", err)
	}
	want := `
# HELP crm_store_appends_total Appends to the event store, by outcome: ok, conflict (expected version or duplicate id), error.
# TYPE crm_store_appends_total counter
crm_store_appends_total{outcome="conflict"} 1
crm_store_appends_total{outcome="ok"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "crm_store_appends_total"); err != nil {
		t.Error(err)
	}
	// Batch sizes 1, 3, 1: count 3, sum 5; 1 <= bucket 1 twice, 3 <= bucket 3.
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP crm_store_append_events Events per append (the batch size).
# TYPE crm_store_append_events histogram
crm_store_append_events_bucket{le="1"} 2
crm_store_append_events_bucket{le="2"} 2
crm_store_append_events_bucket{le="3"} 3
crm_store_append_events_bucket{le="5"} 3
crm_store_append_events_bucket{le="10"} 3
crm_store_append_events_bucket{le="20"} 3
crm_store_append_events_bucket{le="50"} 3
crm_store_append_events_bucket{le="100"} 3
crm_store_append_events_bucket{le="500"} 3
crm_store_append_events_bucket{le="1000"} 3
crm_store_append_events_bucket{le="+Inf"} 3
crm_store_append_events_sum 5
crm_store_append_events_count 3
`), "crm_store_append_events"); err != nil {
		t.Error(err)
	}
}

// A nil *Metrics records nothing and leaves the store as it is.
func TestNilMetrics(t *testing.T) {
	t.Parallel()
	var m *metrics.Metrics
	m.Command("CreateContact", metrics.OutcomeOK, time.Millisecond)
	m.Request("GET", "/healthz", 200, time.Millisecond)
	m.TimeTravel("tasks", time.Millisecond)
	if err := m.Register(prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})); err != nil {
		t.Fatal(err)
	}
	var s eventstore.Store
	if m.Store(s) != s {
		t.Fatal("a nil Metrics wraps the store")
	}
}

type statuses struct {
	list []runtime.Status
	feed runtime.Feed
}

func (s statuses) Status(context.Context) ([]runtime.Status, error) { return s.list, nil }
func (s statuses) Feed() runtime.Feed                               { return s.feed }

type failing struct{}

func (failing) Status(context.Context) ([]runtime.Status, error) { return nil, errors.New("closed") }
func (failing) Feed() runtime.Feed                               { return runtime.Feed{} }

// The projection collector reports what the runner's status says, one series per
// projection, the feed's alarm, and whether the runner answered.
func TestProjections(t *testing.T) {
	t.Parallel()
	c := metrics.Projections(statuses{list: []runtime.Status{
		{Name: "tasks", Checkpoint: 90, Head: 100, Lag: runtime.Lag{Events: 10, Seconds: 1.5}, State: runtime.StateCatchingUp, Parked: 2},
	}, feed: runtime.Feed{StoreHead: 100, Reached: 90}})
	want := `
# HELP crm_feed_reached The furthest checkpoint of the projections.
# TYPE crm_feed_reached gauge
crm_feed_reached 90
# HELP crm_feed_stalled 1 while events committed in the store reach no projection for longer than the stall threshold, else 0.
# TYPE crm_feed_stalled gauge
crm_feed_stalled 0
# HELP crm_feed_stalled_seconds How long the oldest event not reached has been committed, while the feed is stalled (else 0).
# TYPE crm_feed_stalled_seconds gauge
crm_feed_stalled_seconds 0
# HELP crm_feed_store_head The store's last committed position, as the runner last read it.
# TYPE crm_feed_store_head gauge
crm_feed_store_head 100
# HELP crm_projection_checkpoint Last log position applied (or parked) by the projection.
# TYPE crm_projection_checkpoint gauge
crm_projection_checkpoint{projection="tasks"} 90
# HELP crm_projection_head Last log position the runner knows of.
# TYPE crm_projection_head gauge
crm_projection_head{projection="tasks"} 100
# HELP crm_projection_lag_events Log head minus the projection's checkpoint.
# TYPE crm_projection_lag_events gauge
crm_projection_lag_events{projection="tasks"} 10
# HELP crm_projection_lag_seconds Age of the oldest event the projection has not applied yet (0 when caught up).
# TYPE crm_projection_lag_seconds gauge
crm_projection_lag_seconds{projection="tasks"} 1.5
# HELP crm_projection_parked_events Events of the projection in the poison queue.
# TYPE crm_projection_parked_events gauge
crm_projection_parked_events{projection="tasks"} 2
# HELP crm_projection_state 1 for the projection's current state (running, catching_up, stalled, failed), else 0.
# TYPE crm_projection_state gauge
crm_projection_state{projection="tasks",state="catching_up"} 1
crm_projection_state{projection="tasks",state="failed"} 0
crm_projection_state{projection="tasks",state="running"} 0
crm_projection_state{projection="tasks",state="stalled"} 0
# HELP crm_projection_status_up 1 when the runner answered this scrape's status question, else 0.
# TYPE crm_projection_status_up gauge
crm_projection_status_up 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	stalled := metrics.Projections(statuses{list: []runtime.Status{
		{Name: "tasks", Checkpoint: 90, Head: 120, Lag: runtime.Lag{Events: 30, Seconds: 7}, State: runtime.StateStalled},
	}, feed: runtime.Feed{StoreHead: 120, Reached: 90, Stalled: true, StalledSeconds: 7.25}})
	if err := testutil.CollectAndCompare(stalled, strings.NewReader(`
# HELP crm_feed_stalled 1 while events committed in the store reach no projection for longer than the stall threshold, else 0.
# TYPE crm_feed_stalled gauge
crm_feed_stalled 1
# HELP crm_feed_stalled_seconds How long the oldest event not reached has been committed, while the feed is stalled (else 0).
# TYPE crm_feed_stalled_seconds gauge
crm_feed_stalled_seconds 7.25
# HELP crm_projection_state 1 for the projection's current state (running, catching_up, stalled, failed), else 0.
# TYPE crm_projection_state gauge
crm_projection_state{projection="tasks",state="catching_up"} 0
crm_projection_state{projection="tasks",state="failed"} 0
crm_projection_state{projection="tasks",state="running"} 0
crm_projection_state{projection="tasks",state="stalled"} 1
`), "crm_feed_stalled", "crm_feed_stalled_seconds", "crm_projection_state"); err != nil {
		t.Error(err)
	}
	if err := testutil.CollectAndCompare(metrics.Projections(failing{}), strings.NewReader(`
# HELP crm_projection_status_up 1 when the runner answered this scrape's status question, else 0.
# TYPE crm_projection_status_up gauge
crm_projection_status_up 0
`)); err != nil {
		t.Error(err)
	}
}

type progress map[string]rebuild.RebuildProgress

func (p progress) Progress(_ context.Context, name string) (rebuild.RebuildProgress, error) {
	if pr, ok := p[name]; ok {
		return pr, nil
	}
	return rebuild.RebuildProgress{}, rebuild.ErrNoRebuild
}

// The rebuild collector reports the last rebuild of each projection that has one.
func TestRebuilds(t *testing.T) {
	t.Parallel()
	done := time.Now()
	c := metrics.Rebuilds(progress{
		"tasks": {Position: 400, Total: 1000, Rate: 200, ETASeconds: 3},
		"board": {Position: 1000, Total: 1000, Rate: 500, FinishedAt: &done},
	}, []string{"tasks", "board", "journey"})
	want := `
# HELP crm_rebuild_eta_seconds Time the running rebuild of the projection still needs at its rate.
# TYPE crm_rebuild_eta_seconds gauge
crm_rebuild_eta_seconds{projection="board"} 0
crm_rebuild_eta_seconds{projection="tasks"} 3
# HELP crm_rebuild_events_per_second Events per second of the last rebuild of the projection.
# TYPE crm_rebuild_events_per_second gauge
crm_rebuild_events_per_second{projection="board"} 500
crm_rebuild_events_per_second{projection="tasks"} 200
# HELP crm_rebuild_position Log position the last rebuild of the projection has applied up to.
# TYPE crm_rebuild_position gauge
crm_rebuild_position{projection="board"} 1000
crm_rebuild_position{projection="tasks"} 400
# HELP crm_rebuild_running 1 while a rebuild of the projection runs, else 0.
# TYPE crm_rebuild_running gauge
crm_rebuild_running{projection="board"} 0
crm_rebuild_running{projection="tasks"} 1
# HELP crm_rebuild_total_position Log head the last rebuild of the projection works towards.
# TYPE crm_rebuild_total_position gauge
crm_rebuild_total_position{projection="board"} 1000
crm_rebuild_total_position{projection="tasks"} 1000
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

// The process managers', reminders' and webhooks' reports land in their series, exactly:
// the known series start at 0; the deal-won process acts twice and skips once; one reminder
// of kind task_due fires; a webhook fails once (no latency) then is delivered after 1.5 s
// (bucket le=2.5, not le=1); the subscriptions' last reading wins.
func TestAutomation(t *testing.T) {
	t.Parallel()
	m, reg := newMetrics(t)
	m.Known([]string{"process:deal_won_contact_phase", "process:onboarding_follow_up"}, []string{"task_due", "dormant"})
	m.ProcessEvent("process:deal_won_contact_phase", "acted")
	m.ProcessEvent("process:deal_won_contact_phase", "acted")
	m.ProcessEvent("process:deal_won_contact_phase", "skipped")
	m.ReminderFired("task_due")
	m.Attempt(false, 0)
	m.Attempt(true, 1500*time.Millisecond)
	m.Subscriptions(3, 1)
	m.Subscriptions(2, 2)

	want := `
# HELP crm_process_events_total Events a process manager reacts to, by process (its consumer group) and outcome: acted, skipped, failed (each attempt).
# TYPE crm_process_events_total counter
crm_process_events_total{outcome="acted",process="process:deal_won_contact_phase"} 2
crm_process_events_total{outcome="failed",process="process:deal_won_contact_phase"} 0
crm_process_events_total{outcome="skipped",process="process:deal_won_contact_phase"} 1
crm_process_events_total{outcome="acted",process="process:onboarding_follow_up"} 0
crm_process_events_total{outcome="failed",process="process:onboarding_follow_up"} 0
crm_process_events_total{outcome="skipped",process="process:onboarding_follow_up"} 0
# HELP crm_reminders_fired_total Deadlines the scheduler recorded as fired, by kind (task_due, task_overdue, dormant).
# TYPE crm_reminders_fired_total counter
crm_reminders_fired_total{kind="dormant"} 0
crm_reminders_fired_total{kind="task_due"} 1
# HELP crm_webhook_deliveries_total Webhook delivery attempts, by outcome: delivered (the receiver answered 2xx) or failed (tried again later).
# TYPE crm_webhook_deliveries_total counter
crm_webhook_deliveries_total{outcome="delivered"} 1
crm_webhook_deliveries_total{outcome="failed"} 1
# HELP crm_webhook_subscriptions Webhook subscriptions, by state (enabled, disabled), as the delivering server last read them.
# TYPE crm_webhook_subscriptions gauge
crm_webhook_subscriptions{state="disabled"} 2
crm_webhook_subscriptions{state="enabled"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "crm_process_events_total", "crm_reminders_fired_total",
		"crm_webhook_deliveries_total", "crm_webhook_subscriptions"); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "crm_webhook_delivery_latency_seconds" {
			continue
		}
		h := f.GetMetric()[0].GetHistogram()
		if h.GetSampleCount() != 1 || h.GetSampleSum() != 1.5 {
			t.Fatalf("latency: %d samples, sum %v; want 1, 1.5", h.GetSampleCount(), h.GetSampleSum())
		}
		for _, b := range h.GetBucket() {
			want := uint64(0)
			if b.GetUpperBound() >= 2.5 {
				want = 1
			}
			if b.GetCumulativeCount() != want {
				t.Errorf("latency bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
			}
		}
		return
	}
	t.Fatal("no crm_webhook_delivery_latency_seconds")
}

// A nil *Metrics records nothing and does not fail.
func TestNilAutomation(t *testing.T) {
	t.Parallel()
	var m *metrics.Metrics
	m.Known([]string{"p"}, []string{"k"})
	m.ProcessEvent("p", "acted")
	m.ReminderFired("k")
	m.Attempt(true, time.Second)
	m.Subscriptions(1, 0)
}
