package processes

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/wmstore"
)

// Process is a process manager: a reaction to the events of the log, under a consumer group
// of its own. Handle must be safe to call again with the same event: every command it
// issues carries an idempotency key derived from the event's id.
type Process interface {
	// Group is the persisted name of the consumer group (and of the Watermill handler).
	Group() string
	// Handle reacts to one event; events it does not react to are ignored.
	Handle(ctx context.Context, e eventstore.Event) error
}

// Run runs p as a Watermill router handler until ctx ends, starting it again after a pause
// when its subscription fails; a failing event is retried with backoff, then delivered again.
func Run(ctx context.Context, cfg Config, p Process) error {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("process %s: %w", p.Group(), err)
	}
	delay := cfg.RestartDelay
	for {
		var err error
		if cfg.Hold != nil {
			// One server of a deployment runs the process: the holder of its lease.
			err = cfg.Hold(ctx, p.Group(), func(ctx context.Context) error { return runOnce(ctx, cfg, p) })
		} else {
			err = runOnce(ctx, cfg, p)
		}
		if ctx.Err() != nil {
			return nil
		}
		cfg.Logger.Error("Process stopped, restarting", err, watermill.LogFields{"process": p.Group(), "restart_in": delay})
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		if cfg.Hold == nil {
			// Under a lease the pause stays short: a server that lost it stands by again.
			delay = min(2*delay, cfg.MaxRestartDelay)
		}
	}
}

func runOnce(ctx context.Context, cfg Config, p Process) error {
	sub, err := cfg.NewSubscriber(p.Group())
	if err != nil {
		return fmt.Errorf("subscriber of %s: %w", p.Group(), err)
	}
	return wmstore.RunHandler(ctx, cfg.Logger, wmstore.Handler{
		Name:       p.Group(),
		Topic:      cfg.Topic,
		Subscriber: sub,
		Handle: func(msg *message.Message) error {
			e, err := cfg.Decode(msg)
			if err != nil {
				return fmt.Errorf("decode message %s: %w", msg.UUID, err)
			}
			return p.Handle(msg.Context(), e)
		},
		Middleware: []message.HandlerMiddleware{middleware.Retry{
			MaxRetries:          cfg.MaxRetries,
			InitialInterval:     cfg.RetryInterval,
			MaxInterval:         cfg.MaxRetryDelay,
			Multiplier:          2,
			RandomizationFactor: 0.25,
			ShouldRetry: func(p middleware.RetryParams) bool {
				return !errors.Is(p.Err, context.Canceled) && !errors.Is(p.Err, context.DeadlineExceeded)
			},
		}.Middleware, middleware.Recoverer},
	})
}

// causedBy is the metadata of a command a process issues because of e: its actor, the
// causation (e) and correlation (e's, else e) ids, e's business time and the idempotency key.
func causedBy(e eventstore.Event, actor, key, reason string) commands.Meta {
	correlation := e.Metadata.CorrelationID
	if correlation == "" {
		correlation = e.ID
	}
	return commands.Meta{Actor: actor, CorrelationID: correlation, CausationID: e.ID, IdempotencyKey: key,
		OccurredAt: e.OccurredAt, Reason: reason}
}

// Outcomes of an event a process reacts to, reported to Config.Observe: it issued its
// command (acted); it decided not to act, was refused for a business reason, or met its
// command issued already by an earlier delivery (skipped); or it failed and will be retried
// (failed).
const (
	OutcomeActed   = "acted"
	OutcomeSkipped = "skipped"
	OutcomeFailed  = "failed"
)

// observe reports outcome to Observe, when both are set.
func (c Config) observe(group, outcome string) {
	if c.Observe != nil && outcome != "" {
		c.Observe(group, outcome)
	}
}

// settled is the outcome of an event handled with err: acted without an error, skipped for a
// business refusal (logged and acknowledged), failed otherwise (returned for a retry).
func settled(log watermill.LoggerAdapter, group string, e eventstore.Event, err error) (string, error) {
	if err == nil {
		return OutcomeActed, nil
	}
	if err := acknowledged(log, group, e, err); err != nil {
		return OutcomeFailed, err
	}
	return OutcomeSkipped, nil
}

// replayed turns acted into skipped when the command was a replay (an event handled again:
// its command had been issued already).
func replayed(res commands.Result, outcome string) string {
	if outcome == OutcomeActed && res.Replayed {
		return OutcomeSkipped
	}
	return outcome
}

// acknowledged turns a business refusal into an acknowledgement (logged: a retry would not
// change it) and returns any other error for a retry.
func acknowledged(log watermill.LoggerAdapter, group string, e eventstore.Event, err error) error {
	if err == nil {
		return nil
	}
	if domain.ErrorCode(err) != "" || errors.Is(err, commands.ErrIdempotencyConflict) {
		log.Error("Process did not act on an event", err, watermill.LogFields{"process": group, "event_id": e.ID, "stream": e.Stream})
		return nil
	}
	return fmt.Errorf("%s: event %s: %w", group, e.ID, err)
}
