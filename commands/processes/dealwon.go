// Package processes holds the process managers: reactions to recorded events that issue
// commands. They live on the write side, beside the command handler they drive, not among
// the projections: a projection can be dropped and rebuilt, a process manager must never act
// twice on one event. So a process manager keeps no tables of its own: the log is its record
// (every command it issues names the event that caused it, and carries an idempotency key
// derived from that event's id), and it runs as a Watermill handler under a consumer group of
// its own, which only saves delivery work.
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
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/domain/deal"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/wmstore"
)

// Persisted names of DealWon: the consumer group (and Watermill handler), and the actor of
// the commands it issues. Never derive them from Go type names.
const (
	DealWonGroup = "process:deal_won_contact_phase"
	DealWonActor = "process:deal_won"
)

// Defaults of Config.
const (
	DefaultMaxRetries      = 5
	DefaultRetryInterval   = 100 * time.Millisecond
	DefaultMaxRetryDelay   = 5 * time.Second
	DefaultRestartDelay    = time.Second
	DefaultMaxRestartDelay = 30 * time.Second
)

// Config configures a process manager. Zero values take the defaults.
type Config struct {
	// Commands issues the commands.
	Commands *commands.Handler
	// NewSubscriber returns a subscriber of the store's global feed whose consumer group is
	// group.
	NewSubscriber func(group string) (message.Subscriber, error)
	// Decode turns a message of those subscribers back into its event.
	Decode func(*message.Message) (eventstore.Event, error)
	// Topic is the feed's topic (default "$all").
	Topic string
	// Logger receives the router's logs and the events the process decided not to act on.
	Logger watermill.LoggerAdapter
	// MaxRetries, RetryInterval and MaxRetryDelay are the backoff of a failing event before
	// it is nacked (and delivered again).
	MaxRetries                   int
	RetryInterval, MaxRetryDelay time.Duration
	// RestartDelay is the first pause before a stopped handler starts again; it doubles up to
	// MaxRestartDelay.
	RestartDelay, MaxRestartDelay time.Duration
	// Zone is the business time zone: the due dates of the tasks the follow-up processes
	// schedule are business dates (nil: UTC).
	Zone *time.Location
	// Hold, when set, runs the handler only while this server holds the lease name, standing
	// by until it does, and under a context that ends when the lease is lost (see package
	// projections/lease: Manager.Hold). One server of a deployment then acts; the others
	// take over when it stops. Its effects need no fencing beyond that: every command it
	// issues carries an idempotency key derived from the event, so an old owner that acts
	// once more after a takeover appends nothing twice.
	Hold func(ctx context.Context, name string, work func(ctx context.Context) error) error
	// Observe, when set, is told the outcome (OutcomeActed, OutcomeSkipped, OutcomeFailed) of
	// every event of a kind the process reacts to, with the process's group; the events it
	// ignores are not reported. A failed event is reported at each attempt.
	Observe func(process, outcome string)
}

func (c *Config) setDefaults() {
	if c.Topic == "" {
		c.Topic = "$all"
	}
	if c.Logger == nil {
		c.Logger = watermill.NopLogger{}
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = DefaultMaxRetries
	}
	if c.RetryInterval == 0 {
		c.RetryInterval = DefaultRetryInterval
	}
	if c.MaxRetryDelay == 0 {
		c.MaxRetryDelay = DefaultMaxRetryDelay
	}
	if c.RestartDelay == 0 {
		c.RestartDelay = DefaultRestartDelay
	}
	if c.MaxRestartDelay == 0 {
		c.MaxRestartDelay = DefaultMaxRestartDelay
	}
	if c.Zone == nil {
		c.Zone = time.UTC
	}
}

// Validate reports every problem of the configuration at once.
func (c Config) Validate() error {
	var errs []error
	if c.Commands == nil {
		errs = append(errs, errors.New("no command handler"))
	}
	if c.NewSubscriber == nil {
		errs = append(errs, errors.New("no subscriber constructor"))
	}
	if c.Decode == nil {
		errs = append(errs, errors.New("no message decoder"))
	}
	if c.MaxRetries < 0 {
		errs = append(errs, fmt.Errorf("max retries %d: want at least 0", c.MaxRetries))
	}
	return errors.Join(errs...)
}

// DealWon moves the contact of a won deal to phase won: on deal.won.v1, unless the contact
// is at won or beyond already, it issues ChangePhase(won); a lost or churned contact is first
// won back into approach, then moved on to won (skip_forward), with the reason
// "deal <id> won". Every command carries CausationID = the deal event's id, the deal event's
// correlation id, the deal event's business time, and an idempotency key derived from the
// deal event's id and the step, so a redelivery or a replay never issues one twice.
//
// It never overrides a later decision: when someone else changed the contact's phase after
// the deal was won (later in the log), it leaves the contact alone. That keeps a replay from
// scratch (a reset consumer group) from acting on history: the check reads the same log.
//
// A contact merged into another takes no more commands: the contact it was merged into
// (through every later merge) is moved instead, its commands under keys of their own.
//
// An event it cannot act on for a business reason (the contact does not exist, the rules
// refuse the move) is logged and acknowledged; any other failure is retried with backoff and
// then delivered again, so the process waits rather than skip an event.
type DealWon struct {
	cfg  Config
	cmds *commands.Handler
}

// NewDealWon returns the process manager; Run runs it.
func NewDealWon(cfg Config) (*DealWon, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("deal-won process: %w", err)
	}
	return &DealWon{cfg: cfg, cmds: cfg.Commands}, nil
}

// Idempotency keys of the two steps; with the actor they derive the command ids.
func winBackKey(dealEventID string) string { return "deal-won/" + dealEventID + "/win-back" }
func wonKey(dealEventID string) string     { return "deal-won/" + dealEventID + "/won" }

// Handle reacts to one event of the log; it ignores every type but deal.won.v1. It is what
// the Watermill handler runs, and safe to call again with the same event.
func (m *DealWon) Handle(ctx context.Context, e eventstore.Event) error {
	outcome, err := m.handle(ctx, e)
	m.cfg.observe(DealWonGroup, outcome)
	return err
}

// handle is Handle, with its outcome ("" for an event it ignores).
func (m *DealWon) handle(ctx context.Context, e eventstore.Event) (string, error) {
	if e.Type != deal.TypeWon {
		return "", nil
	}
	decoded, err := m.cmds.Registry().Decode(e.Type, e.Data)
	if err != nil {
		return OutcomeSkipped, m.skip(e, "undecodable", err)
	}
	won, ok := decoded.(*deal.Won)
	if !ok {
		return OutcomeSkipped, m.skip(e, "undecodable", fmt.Errorf("%s decodes as %T", e.Type, decoded))
	}
	contactID := won.ContactID
	if contactID == "" {
		d, err := m.cmds.Deal(ctx, won.DealID, commands.At{})
		if err != nil {
			return m.settled(e, err)
		}
		contactID = d.ContactID
	}
	// A contact merged into another takes no more commands: the one it was merged into
	// (through every later merge) becomes the customer, under keys of its own.
	for hop, suffix := 0, ""; ; hop, suffix = hop+1, "/into/"+contactID {
		into, outcome, err := m.act(ctx, e, won, contactID, suffix)
		if into == "" || hop == maxMergeHops {
			return outcome, err
		}
		contactID = into
	}
}

// act moves contactID to won for the deal event e (the keys of its commands end with suffix)
// and answers the outcome; into is set, and nothing done, when the contact was merged into
// another.
func (m *DealWon) act(ctx context.Context, e eventstore.Event, won *deal.Won, contactID, suffix string) (into, outcome string, err error) {
	history, err := m.cmds.History(ctx, contact.StreamName(contactID))
	if err != nil {
		outcome, err := m.settled(e, err)
		return "", outcome, err
	}
	var wonBack, done, movedSince bool
	for _, ce := range history {
		if ce.Type != contact.TypePhaseChanged {
			continue
		}
		if ce.Metadata.CausationID == e.ID {
			var pc contact.PhaseChanged
			if d, err := m.cmds.Registry().Decode(ce.Type, ce.Data); err == nil {
				if p, ok := d.(*contact.PhaseChanged); ok {
					pc = *p
				}
			}
			if pc.To == contact.Won {
				done = true
			} else {
				wonBack = true
			}
			continue
		}
		if ce.Position > e.Position {
			movedSince = true
		}
	}
	if done {
		return "", OutcomeSkipped, nil
	}
	if movedSince && !wonBack {
		m.cfg.Logger.Debug("Deal won, contact phase left alone: it was changed after the deal was won",
			watermill.LogFields{"deal_event_id": e.ID, "contact_id": contactID})
		return "", OutcomeSkipped, nil
	}
	c, err := m.cmds.Contact(ctx, contactID, commands.At{})
	if err != nil {
		outcome, err := m.settled(e, err)
		return "", outcome, err
	}
	if c.MergedInto != "" {
		return c.MergedInto, "", nil
	}
	reason := "deal " + won.DealID + " won"
	meta := func(key string) commands.Meta {
		correlation := e.Metadata.CorrelationID
		if correlation == "" {
			correlation = e.ID
		}
		// Business time of the deal event: the contact became a customer when the contract
		// was signed, also when history is imported or the process lags.
		return commands.Meta{Actor: DealWonActor, CorrelationID: correlation, CausationID: e.ID,
			IdempotencyKey: key + suffix, OccurredAt: e.OccurredAt, Reason: reason}
	}
	switch {
	case c.Phase.Rank() >= contact.Won.Rank():
		return "", OutcomeSkipped, nil
	case c.Phase.IsExit():
		_, err := m.cmds.ChangePhase(ctx, meta(winBackKey(e.ID)),
			commands.ChangePhase{ContactID: contactID, Phase: string(contact.Approach), Reason: reason})
		if err != nil {
			outcome, err := m.settled(e, err)
			return "", outcome, err
		}
	}
	res, err := m.cmds.ChangePhase(ctx, meta(wonKey(e.ID)),
		commands.ChangePhase{ContactID: contactID, Phase: string(contact.Won), Reason: reason})
	outcome, err = m.settled(e, err)
	return "", replayed(res, outcome), err
}

// settled is the outcome of an event handled with err: acted without an error, skipped for
// a business refusal (acknowledged), failed otherwise (retried).
func (m *DealWon) settled(e eventstore.Event, err error) (string, error) {
	if err == nil {
		return OutcomeActed, nil
	}
	if err := m.refusedOr(e, err); err != nil {
		return OutcomeFailed, err
	}
	return OutcomeSkipped, nil
}

// refusedOr acknowledges a business refusal (logged: nothing will change it on a retry)
// and returns any other error for a retry.
func (m *DealWon) refusedOr(e eventstore.Event, err error) error {
	if err == nil {
		return nil
	}
	if domain.ErrorCode(err) != "" || errors.Is(err, commands.ErrIdempotencyConflict) {
		return m.skip(e, "refused", err)
	}
	return fmt.Errorf("deal event %s: %w", e.ID, err)
}

func (m *DealWon) skip(e eventstore.Event, why string, err error) error {
	m.cfg.Logger.Error("Deal won, contact phase not changed: "+why, err, watermill.LogFields{"deal_event_id": e.ID, "stream": e.Stream})
	return nil
}

// Run runs the process manager as a Watermill router handler until ctx ends, starting it
// again after a pause when its subscription fails.
func (m *DealWon) Run(ctx context.Context) error {
	delay := m.cfg.RestartDelay
	for {
		var err error
		if m.cfg.Hold != nil {
			err = m.cfg.Hold(ctx, DealWonGroup, m.runOnce)
		} else {
			err = m.runOnce(ctx)
		}
		if ctx.Err() != nil {
			return nil
		}
		m.cfg.Logger.Error("Deal-won process stopped, restarting", err, watermill.LogFields{"restart_in": delay})
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		if m.cfg.Hold == nil {
			// Under a lease the pause stays short: a server that lost the lease (and stands
			// by again after the pause) is one of those that take it over.
			delay = min(2*delay, m.cfg.MaxRestartDelay)
		}
	}
}

func (m *DealWon) runOnce(ctx context.Context) error {
	sub, err := m.cfg.NewSubscriber(DealWonGroup)
	if err != nil {
		return fmt.Errorf("subscriber of %s: %w", DealWonGroup, err)
	}
	return wmstore.RunHandler(ctx, m.cfg.Logger, wmstore.Handler{
		Name:       DealWonGroup,
		Topic:      m.cfg.Topic,
		Subscriber: sub,
		Handle: func(msg *message.Message) error {
			e, err := m.cfg.Decode(msg)
			if err != nil {
				return fmt.Errorf("decode message %s: %w", msg.UUID, err)
			}
			return m.Handle(msg.Context(), e)
		},
		Middleware: []message.HandlerMiddleware{middleware.Retry{
			MaxRetries:          m.cfg.MaxRetries,
			InitialInterval:     m.cfg.RetryInterval,
			MaxInterval:         m.cfg.MaxRetryDelay,
			Multiplier:          2,
			RandomizationFactor: 0.25,
			ShouldRetry: func(p middleware.RetryParams) bool {
				return !errors.Is(p.Err, context.Canceled) && !errors.Is(p.Err, context.DeadlineExceeded)
			},
		}.Middleware, middleware.Recoverer},
	})
}
