// Package reminders fires the time-driven triggers: task reminders on the due date, overdue
// escalations a day later, and dormancy (no touchpoint for the dormancy period), read from the
// durable schedule (the read model projections/schedule) by a clock.
//
// Firing is a command (commands.System): it appends contact.reminder_fired (and, for dormancy,
// the reactivation task) with an idempotency key derived from the deadline, at the deadline's
// business time. So a deadline fires once whatever happens: a second scheduler, a restart
// before the schedule saw the first firing, a rebuild of the schedule (its fired marks come
// from the log) all meet the recorded firing again. A task done or cancelled before its
// deadline is refused by the contact itself, on fresh state, so it never fires. After a
// downtime the first tick fires everything that fell due meanwhile, up to Config.CatchUp
// late (a week): the deadlines of a history imported with its tasks do not fire.
package reminders

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/domain/settings"
	"github.com/eventcrm/crm/projections/schedule"
)

// Actor is the persisted actor of what the scheduler records.
const Actor = "scheduler"

// Defaults of Config.
const (
	DefaultInterval = time.Second
	DefaultBatch    = 500
	DefaultCatchUp  = 7 * 24 * time.Hour
)

// Config configures a Scheduler.
type Config struct {
	Commands *commands.Handler
	// Due reads up to limit deadlines not fired that fell due after from and at or before now,
	// in their order (schedule.Due on the served tables).
	Due func(ctx context.Context, from schedule.After, now time.Time, limit int) ([]schedule.Deadline, error)
	// CatchUp is how late a deadline may still fire (default DefaultCatchUp): after a
	// downtime the scheduler fires what fell due within it; older deadlines (a history
	// imported with its tasks) never fire.
	CatchUp time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Zone is the business time zone of the reactivation tasks' due dates (nil: UTC).
	Zone *time.Location
	// Interval between two ticks of Run; Batch is the most deadlines one tick fires.
	Interval time.Duration
	Batch    int
	Logger   watermill.LoggerAdapter
	// Fired, when set, is told the kind of every deadline this scheduler recorded (not one
	// it met recorded already, nor one refused).
	Fired func(kind string)
}

// Scheduler fires the deadlines that fall due.
type Scheduler struct {
	cfg Config
	// done holds the deadlines this scheduler fired or saw refused, until the schedule no
	// longer lists them (it marks a firing once it has folded it).
	done map[string]bool
}

// New returns a scheduler.
func New(cfg Config) (*Scheduler, error) {
	if cfg.Commands == nil || cfg.Due == nil {
		return nil, errors.New("reminders: a command handler and a schedule are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Zone == nil {
		cfg.Zone = time.UTC
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultBatch
	}
	if cfg.CatchUp <= 0 {
		cfg.CatchUp = DefaultCatchUp
	}
	if cfg.Logger == nil {
		cfg.Logger = watermill.NopLogger{}
	}
	return &Scheduler{cfg: cfg, done: map[string]bool{}}, nil
}

// Run ticks every Interval until ctx ends; a failed tick is logged and tried again.
func (s *Scheduler) Run(ctx context.Context) {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		if _, err := s.Tick(ctx); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Error("Reminders: tick failed, trying again", err, nil)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Tick fires the deadlines due now (at most Batch of them) and says how many it recorded. It
// reads them a page of Batch at a time, on past the deadlines it passes over (their switch is
// off, or this scheduler met them already and the schedule has not folded that yet), so that
// however many of those there are, they hold back none behind them.
func (s *Scheduler) Tick(ctx context.Context) (int, error) {
	now := s.cfg.Now()
	st, err := s.cfg.Commands.Settings(ctx)
	if err != nil {
		return 0, err
	}
	listed := map[string]bool{}
	fired := 0
	for from := schedule.Since(now.Add(-s.cfg.CatchUp)); ; {
		due, err := s.cfg.Due(ctx, from, now, s.cfg.Batch)
		if err != nil {
			return fired, err
		}
		for _, d := range due {
			key := idempotencyKey(d)
			listed[key] = true
			if s.done[key] || !switchedOn(st.Processes, d.Kind) {
				continue
			}
			if fired == s.cfg.Batch {
				return fired, nil // the rest at the next tick
			}
			recorded, err := s.fire(ctx, d, key, st.Processes.DormantDays)
			if err != nil {
				return fired, err
			}
			s.done[key] = true
			if recorded {
				fired++
				if s.cfg.Fired != nil {
					s.cfg.Fired(d.Kind)
				}
			}
		}
		if len(due) < s.cfg.Batch {
			// Every deadline due was read: those met before and no longer listed are folded.
			for key := range s.done {
				if !listed[key] {
					delete(s.done, key)
				}
			}
			break
		}
		from = due[len(due)-1].After()
	}
	return fired, nil
}

// switchedOn tells whether the switch of a deadline's kind is on.
func switchedOn(p settings.Processes, kind string) bool {
	switch kind {
	case contact.ReminderTaskDue, contact.ReminderTaskOverdue:
		return p.TaskReminders
	case contact.ReminderDormant:
		return p.Dormancy
	}
	return true
}

// fire records one deadline; a refusal (the task was closed, the contact touched again) is
// not an error: the deadline is over.
func (s *Scheduler) fire(ctx context.Context, d schedule.Deadline, key string, dormantDays int) (bool, error) {
	m := commands.Meta{Actor: Actor, IdempotencyKey: key, CorrelationID: key, OccurredAt: d.FireAt}
	sys := s.cfg.Commands.System()
	var (
		res commands.Result
		err error
	)
	switch d.Kind {
	case contact.ReminderDormant:
		m.Reason = "no touchpoint for " + strconv.Itoa(dormantDays) + " days"
		res, err = sys.FireDormancy(ctx, m, commands.FireDormancy{ContactID: d.ContactID, LastTouchpointAt: d.LastTouchpointAt,
			FireAt: d.FireAt, Due: domain.DateIn(d.FireAt, s.cfg.Zone),
			Title: "Reactivate: no touchpoint since " + string(domain.DateIn(d.LastTouchpointAt, s.cfg.Zone))})
	default:
		m.Reason = "task " + d.TaskID + " due " + string(d.Due)
		res, err = sys.FireTaskReminder(ctx, m, commands.FireTaskReminder{ContactID: d.ContactID, Kind: d.Kind, TaskID: d.TaskID,
			Due: d.Due, FireAt: d.FireAt})
	}
	switch {
	case err == nil:
		return !res.Replayed, nil
	case domain.ErrorCode(err) != "" || errors.Is(err, commands.ErrIdempotencyConflict):
		s.cfg.Logger.Debug("Reminders: deadline not fired", watermill.LogFields{"key": key, "why": err.Error()})
		return false, nil
	default:
		return false, fmt.Errorf("fire %s: %w", key, err)
	}
}

// idempotencyKey names a deadline: a task's kind and due date, a contact's last touchpoint.
func idempotencyKey(d schedule.Deadline) string {
	if d.Kind == contact.ReminderDormant {
		return "reminder/dormant/" + d.ContactID + "/" + d.LastTouchpointAt.Format(time.RFC3339Nano)
	}
	return "reminder/" + d.Kind + "/" + d.TaskID + "/" + string(d.Due)
}
