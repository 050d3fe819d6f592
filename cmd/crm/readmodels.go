package main

import (
	"context"
	"fmt"
	"sync"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/commands/processes"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/wmstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/board"
	"github.com/eventcrm/crm/projections/churn"
	"github.com/eventcrm/crm/projections/journey"
)

// readModels lists the projections `crm serve` runs live: a new read model plugs in here
// (and its queries in httpapi's mountReadModelQueries).
func readModels() []projections.Projection {
	return []projections.Projection{board.Projection{}, journey.Projection{}, churn.Projection{}}
}

// background is the work `crm serve` runs beside the HTTP server: the projections and the
// process managers, all fed by the store's global feed through Watermill.
type background struct {
	runner  *projections.Runner
	dealWon *processes.DealWon
}

func newBackground(ctx context.Context, store eventstore.Store, db *projections.DB, cmds *commands.Handler, log watermill.LoggerAdapter) (*background, error) {
	subscriber := func(group string) (message.Subscriber, error) {
		return wmstore.NewSubscriber(store, wmstore.SubscriberConfig{ConsumerGroup: group}, log)
	}
	runner, err := projections.NewRunner(projections.RunnerConfig{DB: db, Store: store, NewSubscriber: subscriber,
		Decode: wmstore.EventFromMessage, AdvanceGroup: advanceGroup(store), Logger: log}, readModels()...)
	if err != nil {
		return nil, err
	}
	// Fail at start, not in the background, when the read-model database cannot hold them.
	if err := runner.Init(ctx); err != nil {
		return nil, fmt.Errorf("read models: %w", err)
	}
	dealWon, err := processes.NewDealWon(processes.Config{Commands: cmds, NewSubscriber: subscriber,
		Decode: wmstore.EventFromMessage, Logger: log})
	if err != nil {
		return nil, err
	}
	return &background{runner: runner, dealWon: dealWon}, nil
}

// start runs the background work until the returned stop is called; stop waits for it.
func (b *background) start() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	// Both return only when ctx ends; each restarts its handlers itself and logs why.
	wg.Go(func() { _ = b.runner.Run(ctx) })
	wg.Go(func() { _ = b.dealWon.Run(ctx) })
	return func() {
		cancel()
		wg.Wait()
	}
}

// advanceGroup moves a consumer group of the global feed forward to a projection's
// checkpoint: the read model already holds what the group would deliver again. A store that
// keeps no checkpoints has no group to move.
func advanceGroup(store eventstore.Store) func(ctx context.Context, group string, position int64) error {
	return func(ctx context.Context, group string, position int64) error {
		cps, ok := store.(eventstore.Checkpoints)
		if !ok {
			return nil
		}
		name := wmstore.CheckpointName(group, wmstore.AllTopic)
		acked, err := cps.LoadCheckpoint(ctx, name)
		if err != nil || acked >= position {
			return err
		}
		return cps.SaveCheckpoint(ctx, name, position)
	}
}
