// Package metrics holds the server's Prometheus metrics: what the commands, the store, the
// projections, rebuilds, time travel and the HTTP edge report, registered on a registry the
// caller owns and served on a listener of its own (CRM_METRICS_ADDR), not behind the API's
// bearer tokens.
//
// A nil *Metrics is valid and records nothing, so the parts that report need no check.
package metrics

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/eventcrm/crm/eventstore"
)

// Namespace prefixes every metric of the product.
const Namespace = "crm"

// Outcomes of a command or an append that are not a problem type.
const (
	OutcomeOK       = "ok"
	OutcomeConflict = "conflict"
	OutcomeError    = "error"
)

// latencyBuckets cover a command or an append (about 0.3 ms to 1 s here) and a slow
// time-travel question or read (up to 10 s).
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Metrics are the server's instruments, registered on one registry.
type Metrics struct {
	registry *prometheus.Registry

	commands        *prometheus.CounterVec
	commandSeconds  *prometheus.HistogramVec
	appends         *prometheus.CounterVec
	appendSeconds   prometheus.Histogram
	appendEvents    prometheus.Histogram
	travelSeconds   *prometheus.HistogramVec
	requests        *prometheus.CounterVec
	requestsSeconds *prometheus.HistogramVec

	processEvents    *prometheus.CounterVec
	remindersFired   *prometheus.CounterVec
	webhookAttempts  *prometheus.CounterVec
	webhookLatency   prometheus.Histogram
	webhookSubsState *prometheus.GaugeVec
}

// Outcomes of a webhook delivery attempt (crm_webhook_deliveries_total).
const (
	OutcomeDelivered = "delivered"
	OutcomeFailed    = "failed"
)

// deliveryBuckets cover the time from an append to its webhook's 2xx: milliseconds when the
// receiver is up, minutes to hours after it was down (the backoff goes up to 10 minutes).
var deliveryBuckets = []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600}

// New registers the metrics, and the Go runtime and process collectors, on reg.
func New(reg *prometheus.Registry) (*Metrics, error) {
	m := &Metrics{
		registry: reg,
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "commands_total",
			Help: "Commands handled, by command and outcome (ok, or the problem type of the refusal)."}, []string{"command", "outcome"}),
		commandSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "command_duration_seconds",
			Help: "Time to handle a command, from its decoded request to its answer.", Buckets: latencyBuckets}, []string{"command", "outcome"}),
		appends: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "store_appends_total",
			Help: "Appends to the event store, by outcome: ok, conflict (expected version or duplicate id), error."}, []string{"outcome"}),
		appendSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Name: "store_append_duration_seconds",
			Help: "Time of one append to the event store, whatever its outcome.", Buckets: latencyBuckets}),
		appendEvents: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Name: "store_append_events",
			Help: "Events per append (the batch size).", Buckets: []float64{1, 2, 3, 5, 10, 20, 50, 100, 500, 1000}}),
		travelSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "time_travel_duration_seconds",
			Help: "Time to answer a time-travel question (at_position or known_at), by projection.", Buckets: latencyBuckets}, []string{"projection"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "http_requests_total",
			Help: "HTTP requests, by method, route template and status."}, []string{"method", "route", "status"}),
		requestsSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "http_request_duration_seconds",
			Help: "Time to answer an HTTP request, by method and route template.", Buckets: latencyBuckets}, []string{"method", "route"}),
		processEvents: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "process_events_total",
			Help: "Events a process manager reacts to, by process (its consumer group) and outcome: acted, skipped, failed (each attempt)."},
			[]string{"process", "outcome"}),
		remindersFired: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "reminders_fired_total",
			Help: "Deadlines the scheduler recorded as fired, by kind (task_due, task_overdue, dormant)."}, []string{"kind"}),
		webhookAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "webhook_deliveries_total",
			Help: "Webhook delivery attempts, by outcome: delivered (the receiver answered 2xx) or failed (tried again later)."},
			[]string{"outcome"}),
		webhookLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Name: "webhook_delivery_latency_seconds",
			Help: "Time from an event's append to the 2xx answer of a webhook receiver.", Buckets: deliveryBuckets}),
		webhookSubsState: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: "webhook_subscriptions",
			Help: "Webhook subscriptions, by state (enabled, disabled), as the delivering server last read them."}, []string{"state"}),
	}
	// Series present from the start, so a dashboard shows 0 rather than no data.
	m.webhookAttempts.WithLabelValues(OutcomeDelivered)
	m.webhookAttempts.WithLabelValues(OutcomeFailed)
	for _, c := range []prometheus.Collector{m.commands, m.commandSeconds, m.appends, m.appendSeconds, m.appendEvents,
		m.travelSeconds, m.requests, m.requestsSeconds, m.processEvents, m.remindersFired, m.webhookAttempts, m.webhookLatency,
		m.webhookSubsState,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Handler serves the registry in the Prometheus text format, for GET /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// Register adds a collector (such as Projections or Rebuilds) to the registry.
func (m *Metrics) Register(c prometheus.Collector) error {
	if m == nil {
		return nil
	}
	return m.registry.Register(c)
}

// Command records a command handled in d; outcome is OutcomeOK or the problem type of the
// refusal.
func (m *Metrics) Command(command, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.commands.WithLabelValues(command, outcome).Inc()
	m.commandSeconds.WithLabelValues(command, outcome).Observe(d.Seconds())
}

// TimeTravel records a time-travel question of projection answered in d.
func (m *Metrics) TimeTravel(projection string, d time.Duration) {
	if m == nil {
		return
	}
	m.travelSeconds.WithLabelValues(projection).Observe(d.Seconds())
}

// Request records an HTTP request answered with status in d; route is its template.
func (m *Metrics) Request(method, route string, status int, d time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
	m.requestsSeconds.WithLabelValues(method, route).Observe(d.Seconds())
}

// Known creates the series of every outcome of the processes (their groups) and of every
// reminder kind at 0, so they are served before the first event.
func (m *Metrics) Known(processes, reminderKinds []string) {
	if m == nil {
		return
	}
	for _, p := range processes {
		for _, o := range []string{"acted", "skipped", "failed"} {
			m.processEvents.WithLabelValues(p, o)
		}
	}
	for _, k := range reminderKinds {
		m.remindersFired.WithLabelValues(k)
	}
}

// ProcessEvent records the outcome (acted, skipped, failed) of an event process reacted to
// (processes.Config.Observe).
func (m *Metrics) ProcessEvent(process, outcome string) {
	if m == nil {
		return
	}
	m.processEvents.WithLabelValues(process, outcome).Inc()
}

// ReminderFired records a deadline of kind fired (reminders.Config.Fired).
func (m *Metrics) ReminderFired(kind string) {
	if m == nil {
		return
	}
	m.remindersFired.WithLabelValues(kind).Inc()
}

// Attempt records a webhook delivery attempt; latency, from the event's append to the 2xx,
// only when it was delivered (webhooks.Observer).
func (m *Metrics) Attempt(delivered bool, latency time.Duration) {
	if m == nil {
		return
	}
	if !delivered {
		m.webhookAttempts.WithLabelValues(OutcomeFailed).Inc()
		return
	}
	m.webhookAttempts.WithLabelValues(OutcomeDelivered).Inc()
	m.webhookLatency.Observe(latency.Seconds())
}

// Subscriptions records how many webhook subscriptions are enabled and disabled
// (webhooks.Observer).
func (m *Metrics) Subscriptions(enabled, disabled int) {
	if m == nil {
		return
	}
	m.webhookSubsState.WithLabelValues("enabled").Set(float64(enabled))
	m.webhookSubsState.WithLabelValues("disabled").Set(float64(disabled))
}

// Store wraps store so that its appends are measured; without metrics it is store itself.
func (m *Metrics) Store(store eventstore.Store) eventstore.Store {
	if m == nil {
		return store
	}
	return &measuredStore{Store: store, m: m}
}

type measuredStore struct {
	eventstore.Store
	m *Metrics
}

func (s *measuredStore) Append(ctx context.Context, stream string, expected int64, events []eventstore.EventData) (eventstore.AppendResult, error) {
	start := time.Now()
	res, err := s.Store.Append(ctx, stream, expected, events)
	s.m.appendSeconds.Observe(time.Since(start).Seconds())
	s.m.appendEvents.Observe(float64(len(events)))
	s.m.appends.WithLabelValues(appendOutcome(err)).Inc()
	return res, err
}

func appendOutcome(err error) string {
	switch {
	case err == nil:
		return OutcomeOK
	case errors.Is(err, eventstore.ErrWrongExpectedVersion), errors.Is(err, eventstore.ErrDuplicateEventID):
		return OutcomeConflict
	}
	return OutcomeError
}
