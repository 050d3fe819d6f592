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
}

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
	}
	for _, c := range []prometheus.Collector{m.commands, m.commandSeconds, m.appends, m.appendSeconds, m.appendEvents,
		m.travelSeconds, m.requests, m.requestsSeconds,
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
