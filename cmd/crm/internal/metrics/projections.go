package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventcrm/crm/projections/rebuild"
	"github.com/eventcrm/crm/projections/runtime"
)

// scrapeTimeout bounds what one scrape may spend asking the runner and the rebuilds.
const scrapeTimeout = 5 * time.Second

// projectionStates are the states crm_projection_state reports, one series each, 1 for the
// projection's current state.
var projectionStates = []runtime.State{runtime.StateRunning, runtime.StateCatchingUp, runtime.StateStalled, runtime.StateFailed}

// StatusSource is what the projection collector reads: the runner.
type StatusSource interface {
	Status(ctx context.Context) ([]runtime.Status, error)
	// Feed says whether the store's feed reaches the projections.
	Feed() runtime.Feed
}

// Projections collects, at each scrape, each projection's checkpoint, the log head it knows,
// its lag in events and seconds, its parked events and its state, and the feed's alarm (the
// store's head, the furthest checkpoint, whether the feed is stalled and for how long), from
// the runner.
func Projections(runner StatusSource) prometheus.Collector {
	label := []string{"projection"}
	return &projectionCollector{
		runner:     runner,
		checkpoint: prometheus.NewDesc(Namespace+"_projection_checkpoint", "Last log position applied (or parked) by the projection.", label, nil),
		head:       prometheus.NewDesc(Namespace+"_projection_head", "Last log position the runner knows of.", label, nil),
		lagEvents:  prometheus.NewDesc(Namespace+"_projection_lag_events", "Log head minus the projection's checkpoint.", label, nil),
		lagSeconds: prometheus.NewDesc(Namespace+"_projection_lag_seconds", "Age of the oldest event the projection has not applied yet (0 when caught up).", label, nil),
		parked:     prometheus.NewDesc(Namespace+"_projection_parked_events", "Events of the projection in the poison queue.", label, nil),
		state:      prometheus.NewDesc(Namespace+"_projection_state", "1 for the projection's current state (running, catching_up, stalled, failed), else 0.", []string{"projection", "state"}, nil),
		up:         prometheus.NewDesc(Namespace+"_projection_status_up", "1 when the runner answered this scrape's status question, else 0.", nil, nil),
		storeHead:  prometheus.NewDesc(Namespace+"_feed_store_head", "The store's last committed position, as the runner last read it.", nil, nil),
		reached:    prometheus.NewDesc(Namespace+"_feed_reached", "The furthest checkpoint of the projections.", nil, nil),
		stalled:    prometheus.NewDesc(Namespace+"_feed_stalled", "1 while events committed in the store reach no projection for longer than the stall threshold, else 0.", nil, nil),
		stalledFor: prometheus.NewDesc(Namespace+"_feed_stalled_seconds", "How long the oldest event not reached has been committed, while the feed is stalled (else 0).", nil, nil),
	}
}

type projectionCollector struct {
	runner                                                     StatusSource
	checkpoint, head, lagEvents, lagSeconds, parked, state, up *prometheus.Desc
	storeHead, reached, stalled, stalledFor                    *prometheus.Desc
}

func (c *projectionCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.checkpoint, c.head, c.lagEvents, c.lagSeconds, c.parked, c.state, c.up, c.storeHead, c.reached, c.stalled, c.stalledFor} {
		ch <- d
	}
}

func (c *projectionCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	st, err := c.runner.Status(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	feed := c.runner.Feed()
	stalled := 0.0
	if feed.Stalled {
		stalled = 1
	}
	for d, v := range map[*prometheus.Desc]float64{c.storeHead: float64(feed.StoreHead), c.reached: float64(feed.Reached), c.stalled: stalled, c.stalledFor: feed.StalledSeconds} {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	for _, s := range st {
		gauge := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, s.Name)
		}
		gauge(c.checkpoint, float64(s.Checkpoint))
		gauge(c.head, float64(s.Head))
		gauge(c.lagEvents, float64(s.Lag.Events))
		gauge(c.lagSeconds, s.Lag.Seconds)
		gauge(c.parked, float64(s.Parked))
		for _, state := range projectionStates {
			v := 0.0
			if s.State == state {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, v, s.Name, string(state))
		}
	}
}

// ProgressSource is what the rebuild collector reads: the rebuilds of a server.
type ProgressSource interface {
	Progress(ctx context.Context, name string) (rebuild.RebuildProgress, error)
}

// Rebuilds collects, at each scrape, the progress of the last rebuild of each of names (those
// never rebuilt report nothing): position reached, log head to reach, rate, remaining time
// and whether it runs.
func Rebuilds(rebuilds ProgressSource, names []string) prometheus.Collector {
	label := []string{"projection"}
	return &rebuildCollector{
		rebuilds: rebuilds, names: names,
		position: prometheus.NewDesc(Namespace+"_rebuild_position", "Log position the last rebuild of the projection has applied up to.", label, nil),
		total:    prometheus.NewDesc(Namespace+"_rebuild_total_position", "Log head the last rebuild of the projection works towards.", label, nil),
		rate:     prometheus.NewDesc(Namespace+"_rebuild_events_per_second", "Events per second of the last rebuild of the projection.", label, nil),
		eta:      prometheus.NewDesc(Namespace+"_rebuild_eta_seconds", "Time the running rebuild of the projection still needs at its rate.", label, nil),
		running:  prometheus.NewDesc(Namespace+"_rebuild_running", "1 while a rebuild of the projection runs, else 0.", label, nil),
	}
}

type rebuildCollector struct {
	rebuilds                            ProgressSource
	names                               []string
	position, total, rate, eta, running *prometheus.Desc
}

func (c *rebuildCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.position, c.total, c.rate, c.eta, c.running} {
		ch <- d
	}
}

func (c *rebuildCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	for _, name := range c.names {
		p, err := c.rebuilds.Progress(ctx, name)
		if errors.Is(err, rebuild.ErrNoRebuild) || err != nil {
			continue // never rebuilt, or not answerable now: no series rather than a wrong one
		}
		gauge := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, name)
		}
		gauge(c.position, float64(p.Position))
		gauge(c.total, float64(p.Total))
		gauge(c.rate, p.Rate)
		gauge(c.eta, p.ETASeconds)
		running := 0.0
		if p.FinishedAt == nil && p.Error == "" {
			running = 1
		}
		gauge(c.running, running)
	}
}
