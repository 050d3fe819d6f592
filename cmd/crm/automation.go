package main

import (
	"context"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"go.uber.org/zap"

	"github.com/eventcrm/crm/cmd/crm/internal/config"
	"github.com/eventcrm/crm/cmd/crm/internal/metrics"
	"github.com/eventcrm/crm/cmd/crm/internal/webhooks"
	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/commands/processes"
	"github.com/eventcrm/crm/commands/reminders"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/eventstore"
	keystore "github.com/eventcrm/crm/eventstore/keys"
	"github.com/eventcrm/crm/eventstore/wmstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/hooks"
	"github.com/eventcrm/crm/projections/schedule"
)

// automate adds to the background the process managers beyond DealWon (hot lead, hand-off,
// NPS, support ticket, onboarding), each a Watermill handler of its own consumer group;
// and the scheduler of the time-driven triggers; zone is the business time zone of the due
// dates they set. With metrics (m not nil) every process manager, DealWon too, and the
// scheduler report what they do.
func (b *background) automate(cmds *commands.Handler, zone *time.Location, m *metrics.Metrics) error {
	cfg := processes.Config{Commands: cmds, NewSubscriber: b.subscriber, Decode: wmstore.EventFromMessage, Logger: b.log, Zone: zone,
		Hold: b.leases.Hold}
	var fired func(kind string)
	if m != nil {
		cfg.Observe, fired = m.ProcessEvent, m.ReminderFired
		m.Known([]string{processes.DealWonGroup, processes.HotLeadGroup, processes.HandoffGroup, processes.NPSGroup,
			processes.SupportTicketGroup, processes.OnboardingGroup},
			[]string{contact.ReminderTaskDue, contact.ReminderTaskOverdue, contact.ReminderDormant})
		// DealWon again, reporting like the others (newBackground made it without metrics).
		dealWon, err := processes.NewDealWon(cfg)
		if err != nil {
			return err
		}
		b.dealWon = dealWon
	}
	hot, err := processes.NewHotLead(cfg)
	if err != nil {
		return err
	}
	procs := []processes.Process{hot}
	for _, build := range []func(processes.Config) (*processes.FollowUp, error){processes.NewHotLeadHandoff,
		processes.NewNPSFollowUp, processes.NewSupportTicketFollowUp, processes.NewOnboarding} {
		p, err := build(cfg)
		if err != nil {
			return err
		}
		procs = append(procs, p)
	}
	for _, p := range procs {
		// Run returns only when ctx ends; it restarts the handler itself and logs why.
		b.automation = append(b.automation, func(ctx context.Context) { _ = processes.Run(ctx, cfg, p) })
	}
	sched, err := reminders.New(reminders.Config{Commands: cmds, Zone: zone, Logger: b.log, Fired: fired,
		Due: func(ctx context.Context, from schedule.After, now time.Time, limit int) ([]schedule.Deadline, error) {
			t, err := b.runner.Tables(schedule.Name)
			if err != nil {
				return nil, err
			}
			return schedule.Due(ctx, b.runner.DB(), t, from, now, limit)
		}})
	if err != nil {
		return err
	}
	// One server fires the deadlines: the holder of the reminders' lease.
	b.automation = append(b.automation, func(ctx context.Context) { b.holdForever(ctx, "reminders", sched.Run) })
	return nil
}

// webhooks returns the webhook service and adds its delivery to the background; with metrics
// (m not nil) the delivery reports its attempts and the subscriptions.
func (b *background) webhooks(ctx context.Context, cfg config.Config, d webhookDeps, log *zap.Logger, m *metrics.Metrics) (*webhooks.Service, error) {
	allowPrivate, err := cfg.WebhookPrivateAllowed()
	if err != nil {
		return nil, err
	}
	wcfg := webhooks.Config{DB: d.db, Store: d.store, Commands: d.cmds, Keys: d.keys, AllowPrivate: allowPrivate, Log: log,
		Tables: func(context.Context) (projections.Tables, error) { return b.runner.Tables(hooks.Name) }}
	if m != nil {
		wcfg.Observer = m
	}
	svc, err := webhooks.New(ctx, wcfg)
	if err != nil {
		return nil, err
	}
	// One server delivers: the holder of the webhooks' lease.
	b.automation = append(b.automation, func(ctx context.Context) { b.holdForever(ctx, "webhooks", svc.Run) })
	return svc, nil
}

// webhookDeps are what the webhook delivery works with: the store, the read-model database,
// the command handler that records the subscription events and the key store of the signing
// secrets.
type webhookDeps struct {
	store eventstore.Store
	db    *projections.DB
	cmds  *commands.Handler
	keys  keystore.Keys
}

// holdForever runs work while this server holds the lease name, standing by while another
// server holds it, until ctx ends (see package projections/lease).
func (b *background) holdForever(ctx context.Context, name string, work func(ctx context.Context)) {
	for ctx.Err() == nil {
		err := b.leases.Hold(ctx, name, func(ctx context.Context) error {
			work(ctx)
			return ctx.Err()
		})
		if err != nil && ctx.Err() == nil {
			b.log.Info("Background work handed over", watermill.LogFields{"lease": name, "reason": err.Error()})
			_ = projections.Sleep(ctx, time.Second)
		}
	}
}
