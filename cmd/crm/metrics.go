package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/eventcrm/crm/cmd/crm/internal/config"
	"github.com/eventcrm/crm/cmd/crm/internal/metrics"
)

// metricsListener takes CRM_METRICS_ADDR, when set, with the metrics to serve there; both are
// nil when it is not set (metrics off: a nil *metrics.Metrics records nothing).
func metricsListener(cfg config.Config) (net.Listener, *metrics.Metrics, error) {
	if cfg.MetricsAddr == "" {
		return nil, nil, nil
	}
	ln, err := net.Listen("tcp", cfg.MetricsAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen on %s (CRM_METRICS_ADDR): %w", cfg.MetricsAddr, err)
	}
	m, err := metrics.New(prometheus.NewRegistry())
	if err != nil {
		_ = ln.Close()
		return nil, nil, fmt.Errorf("metrics: %w", err)
	}
	return ln, m, nil
}

// serveMetrics serves GET /metrics on ln, without bearer tokens, until stop is called.
func serveMetrics(ln net.Listener, m *metrics.Metrics, log *zap.Logger) (stop func()) {
	if ln == nil {
		return func() {}
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
	log.Info("serving metrics", zap.String("addr", ln.Addr().String()))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener stopped", zap.Error(err))
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}
}
