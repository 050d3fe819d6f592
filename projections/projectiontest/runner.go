package projectiontest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/wmstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/runtime"
)

// RunnerConfig is the runner configuration of the tests: the real wmstore subscriber, short
// waits.
func RunnerConfig(store eventstore.Store, db *projections.DB) runtime.RunnerConfig {
	return runtime.RunnerConfig{
		DB:    db,
		Store: store,
		NewSubscriber: func(group string) (message.Subscriber, error) {
			return wmstore.NewSubscriber(store, wmstore.SubscriberConfig{ConsumerGroup: group, NackDelay: 10 * time.Millisecond,
				RetryInterval: 50 * time.Millisecond}, nil)
		},
		Decode:          wmstore.EventFromMessage,
		AdvanceGroup:    AdvanceGroup(store),
		Retry:           runtime.RetryConfig{MaxRetries: 2, InitialInterval: time.Millisecond, MaxInterval: 5 * time.Millisecond},
		RestartDelay:    20 * time.Millisecond,
		MaxRestartDelay: 100 * time.Millisecond,
	}
}

// AdvanceGroup moves a wmstore consumer group of the global feed forward, as `crm serve` does.
func AdvanceGroup(store eventstore.Store) func(ctx context.Context, group string, position int64) error {
	return func(ctx context.Context, group string, position int64) error {
		cps := store.(eventstore.Checkpoints)
		name := wmstore.CheckpointName(group, wmstore.AllTopic)
		acked, err := cps.LoadCheckpoint(ctx, name)
		if err != nil || acked >= position {
			return err
		}
		return cps.SaveCheckpoint(ctx, name, position)
	}
}

// NewRunner returns a runner of ps or fails the test.
func NewRunner(t testing.TB, cfg runtime.RunnerConfig, ps ...projections.Projection) *runtime.Runner {
	t.Helper()
	r, err := runtime.NewRunner(cfg, ps...)
	if err != nil {
		t.Fatalf("new runner: %v", err)
	}
	return r
}

// Start initializes r and runs it until the returned stop is called (or t ends).
func Start(t testing.TB, r *runtime.Runner) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if err := r.Init(ctx); err != nil {
		t.Fatalf("init: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("runner did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}
