package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eventcrm/crm/cmd/crm/internal/config"
	"github.com/eventcrm/crm/cmd/crm/internal/readmodels"
	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/commands/processes"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/wmstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/lease"
	"github.com/eventcrm/crm/projections/rebuild"
	"github.com/eventcrm/crm/projections/runtime"
	"github.com/eventcrm/crm/projections/timetravel"
)

// readModels are the read models (package readmodels lists them) as cfg configures them:
// the live runner, the HTTP queries, the rebuilds, time travel and diffs take them from here.
func readModels(cfg config.Config) ([]readmodels.ReadModel, error) {
	zone, err := cfg.BusinessZone()
	if err != nil {
		return nil, err
	}
	return readmodels.All(readmodels.Options{Zone: zone}), nil
}

// background is the work `crm serve` runs beside the HTTP server: the projections and the
// process managers, all fed by the store's global feed through Watermill, and the rebuilds
// asked for over HTTP.
type background struct {
	store    eventstore.Store
	db       *projections.DB
	ps       []projections.Projection
	runner   *runtime.Runner
	dealWon  *processes.DealWon
	rebuilds *rebuild.Rebuilds
	travel   *timetravel.TimeTravel
	leases   *lease.Manager
	log      watermill.LoggerAdapter
	// subscriber makes the subscribers of the consumer groups; automation is the rest of
	// what runs beside the server (see automate), each until its context ends.
	subscriber func(group string) (message.Subscriber, error)
	automation []func(ctx context.Context)
}

// newBackground prepares the work of `crm serve` beside the HTTP server; snapshots says when
// time-travel snapshots are taken and how much disk they may take, stallAfter how long a feed may stand still
// before it is reported stalled (0: the default).
func newBackground(ctx context.Context, store eventstore.Store, db *projections.DB, cmds *commands.Handler,
	ps []projections.Projection, snapshots snapshotPolicy, stallAfter time.Duration, log watermill.LoggerAdapter) (*background, error) {
	cps, err := consumerCheckpoints(ctx, store, db)
	if err != nil {
		return nil, err
	}
	// Servers sharing the read-model database (PostgreSQL) split the background work by
	// lease: one applies each projection, one runs the process manager, one takes the
	// snapshots. On SQLite this process owns them all.
	leases, err := lease.New(lease.Config{DB: db, Logger: log})
	if err != nil {
		return nil, err
	}
	if err := leases.Init(ctx); err != nil {
		return nil, err
	}
	subscriber := func(group string) (message.Subscriber, error) {
		return wmstore.NewSubscriber(store, wmstore.SubscriberConfig{ConsumerGroup: group, Checkpoints: cps}, log)
	}
	runner, err := runtime.NewRunner(runtime.RunnerConfig{DB: db, Store: store, NewSubscriber: subscriber,
		Decode: wmstore.EventFromMessage, AdvanceGroup: advanceGroup(cps), Logger: log, Leases: leases, StallAfter: stallAfter}, ps...)
	if err != nil {
		return nil, err
	}
	// Fail at start, not in the background, when the read-model database cannot hold them.
	if err := runner.Init(ctx); err != nil {
		return nil, fmt.Errorf("read models: %w", err)
	}
	dealWon, err := processes.NewDealWon(processes.Config{Commands: cmds, NewSubscriber: subscriber,
		Decode: wmstore.EventFromMessage, Logger: log, Hold: leases.Hold})
	if err != nil {
		return nil, err
	}
	rebuilds, err := rebuild.NewRebuilds(rebuild.RebuildConfig{DB: db, Store: store, Runner: runner, Logger: log}, ps...)
	if err != nil {
		return nil, err
	}
	travel, err := timetravel.NewTimeTravel(timetravel.TimeTravelConfig{DB: db, Store: store, Every: snapshots.Every, Space: snapshots.Space,
		Node: leases.Node()}, ps...)
	if err != nil {
		return nil, err
	}
	if err := travel.Init(ctx); err != nil {
		return nil, fmt.Errorf("time travel: %w", err)
	}
	log.Info("Background work shared by lease", watermill.LogFields{"node": leases.Node(), "lease_ttl": leases.TTL()})
	return &background{store: store, db: db, ps: ps, runner: runner, dealWon: dealWon, rebuilds: rebuilds, travel: travel, leases: leases,
		log: log, subscriber: subscriber}, nil
}

// purger is what follows an erasure here.
func (b *background) purger(cmds *commands.Handler, forget func(contactID string)) *purger {
	return &purger{store: b.store, db: b.db, runner: b.runner, travel: b.travel, ps: b.ps, cmds: cmds, forget: forget, log: b.log}
}

// start runs the background work until the returned stop is called; stop waits for it.
func (b *background) start() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	// Both return only when ctx ends; each restarts its handlers itself and logs why.
	wg.Go(func() { _ = b.runner.Run(ctx) })
	wg.Go(func() { _ = b.dealWon.Run(ctx) })
	for _, run := range b.automation {
		wg.Go(func() { run(ctx) })
	}
	// Snapshots for time travel follow the log a little behind: a question replays at most
	// the events since the last one.
	// Every server keeps the temporary sets of its questions alive; one takes the
	// snapshots (SnapshotLease).
	wg.Go(func() {
		b.travel.KeepOwned(ctx, func(err error) {
			b.log.Error("Time-travel heartbeat failed, retrying", err, nil)
		})
	})
	wg.Go(func() {
		b.holdForever(ctx, SnapshotLease, func(ctx context.Context) {
			b.travel.RunSnapshots(ctx, snapshotInterval, b.catchingUp, func(err error) {
				b.log.Error("Time-travel snapshots failed, retrying", err, nil)
			})
		})
	})
	return func() {
		// A rebuild cut off here resumes from its checkpoint next time.
		b.rebuilds.Close()
		cancel()
		wg.Wait()
		_ = b.travel.Close(context.Background())
	}
}

// catchingUp tells whether a projection is catching up (a first start, a long outage): the
// time-travel snapshots wait for it.
func (b *background) catchingUp(ctx context.Context) bool {
	list, err := b.runner.Status(ctx)
	if err != nil {
		return false // the snapshots' own round reports what is wrong
	}
	for _, s := range list {
		if s.State == runtime.StateCatchingUp {
			return true
		}
	}
	return false
}

// snapshotPolicy is when time-travel snapshots are taken (Every log positions; 0: the
// default) and how much disk they may take (Space times the log's; 0: no bound).
type snapshotPolicy struct {
	Every int64
	Space float64
}

// SnapshotLease is the persisted name of the lease of the time-travel snapshot job.
const SnapshotLease = "timetravel:snapshots"

// snapshotInterval is how often `crm serve` looks for time-travel snapshots to take.
const snapshotInterval = 10 * time.Second

// consumerCheckpoints is where consumer groups keep their place: in the store when it can
// (SQLite, PostgreSQL), else in the read-model database (EventStoreDB).
func consumerCheckpoints(ctx context.Context, store eventstore.Store, db *projections.DB) (eventstore.Checkpoints, error) {
	if cps, ok := store.(eventstore.Checkpoints); ok {
		return cps, nil
	}
	cps, err := projections.NewConsumerCheckpoints(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("consumer checkpoints: %w", err)
	}
	return cps, nil
}

// advanceGroup moves a consumer group of the global feed forward to a projection's
// checkpoint: the read model already holds what the group would deliver again.
func advanceGroup(cps eventstore.Checkpoints) func(ctx context.Context, group string, position int64) error {
	return func(ctx context.Context, group string, position int64) error {
		name := wmstore.CheckpointName(group, wmstore.AllTopic)
		acked, err := cps.LoadCheckpoint(ctx, name)
		if err != nil || acked >= position {
			return err
		}
		return cps.SaveCheckpoint(ctx, name, position)
	}
}
