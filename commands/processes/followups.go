package processes

import (
	"context"
	"fmt"
	"time"

	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/domain/deal"
	"github.com/eventcrm/crm/domain/settings"
	"github.com/eventcrm/crm/eventstore"
)

// Persisted names of the follow-up processes: consumer groups, and the actors of the tasks
// they schedule.
const (
	HandoffGroup       = "process:hot_lead_handoff"
	HandoffActor       = "process:hot_lead_handoff"
	NPSGroup           = "process:nps_follow_up"
	NPSActor           = "process:nps_follow_up"
	SupportTicketGroup = "process:support_ticket_follow_up"
	SupportTicketActor = "process:support_ticket_follow_up"
	OnboardingGroup    = "process:onboarding_follow_up"
	OnboardingActor    = "process:onboarding_follow_up"
)

// ImportAge: an event that occurred more than this before it was recorded is history being
// imported; the follow-up processes schedule no task for it (it would be due long ago).
const ImportAge = 7 * 24 * time.Hour

// NPSDrop is the drop from a contact's previous NPS answer that calls for a follow-up.
const NPSDrop = 3

// FollowUp is a process manager that schedules one follow-up task per triggering event: the
// task's idempotency key is derived from the event's id, it carries the event as causation
// and its correlation id, and its business time is the event's. It acts only when its switch
// is on in the settings in force when the event was recorded, so a replay decides the same.
type FollowUp struct {
	cfg  Config
	rule followUpRule
}

type followUpRule struct {
	group, actor string
	enabled      func(settings.Processes) bool
	// task is the task the event calls for, nil for none.
	task func(ctx context.Context, cfg Config, e eventstore.Event) (*commands.ScheduleTask, error)
}

func newFollowUp(cfg Config, rule followUpRule) (*FollowUp, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", rule.group, err)
	}
	return &FollowUp{cfg: cfg, rule: rule}, nil
}

// Group is the process's consumer group.
func (f *FollowUp) Group() string { return f.rule.group }

// Handle schedules the task the event calls for, once.
func (f *FollowUp) Handle(ctx context.Context, e eventstore.Event) error {
	outcome, err := f.handle(ctx, e)
	f.cfg.observe(f.rule.group, outcome)
	return err
}

// handle is Handle, with its outcome ("" for an event that calls for no task).
func (f *FollowUp) handle(ctx context.Context, e eventstore.Event) (string, error) {
	task, err := f.rule.task(ctx, f.cfg, e)
	if err != nil {
		return settled(f.cfg.Logger, f.rule.group, e, err)
	}
	if task == nil {
		return "", nil
	}
	if e.RecordedAt.Sub(e.OccurredAt) > ImportAge {
		return OutcomeSkipped, nil
	}
	st, err := f.cfg.Commands.SettingsBefore(ctx, e.Position)
	if err != nil {
		return OutcomeFailed, fmt.Errorf("%s: %w", f.rule.group, err)
	}
	if !f.rule.enabled(st.Processes) {
		return OutcomeSkipped, nil
	}
	m := causedBy(e, f.rule.actor, f.rule.group+"/"+e.ID, task.Title)
	res, err := f.cfg.Commands.ScheduleTask(ctx, m, *task)
	// A contact merged into another takes no more commands: the task is the survivor's
	// (through every later merge), under a key of its own for each, so that a redelivery
	// meets it there again.
	key := m.IdempotencyKey
	for range maxMergeHops {
		into, merged := domain.MergedInto(err)
		if !merged {
			break
		}
		task.ContactID, m.IdempotencyKey = into, key+"/into/"+into
		res, err = f.cfg.Commands.ScheduleTask(ctx, m, *task)
	}
	outcome, err := settled(f.cfg.Logger, f.rule.group, e, err)
	return replayed(res, outcome), err
}

// maxMergeHops bounds how many merges a follow-up follows to the contact that survives them.
const maxMergeHops = 100

// businessDate is the business date of t, plus days.
func businessDate(cfg Config, t time.Time, days int) string {
	return string(domain.DateIn(t.In(cfg.Zone).AddDate(0, 0, days), cfg.Zone))
}

// NewHotLeadHandoff: a contact became hot -> a hand-off task for its owner, due the same
// business day.
func NewHotLeadHandoff(cfg Config) (*FollowUp, error) {
	return newFollowUp(cfg, followUpRule{group: HandoffGroup, actor: HandoffActor,
		enabled: func(p settings.Processes) bool { return p.HotLeadHandoff },
		task: func(_ context.Context, cfg Config, e eventstore.Event) (*commands.ScheduleTask, error) {
			if e.Type != contact.TypeBecameHot {
				return nil, nil
			}
			ev, err := decode[contact.BecameHot](cfg, e)
			if err != nil {
				return nil, err
			}
			return &commands.ScheduleTask{ContactID: ev.ContactID, Due: businessDate(cfg, e.OccurredAt, 0),
				Title: fmt.Sprintf("Hot lead (score %.2f): hand over to sales today", ev.Score)}, nil
		}})
}

// NewNPSFollowUp: a detractor's answer (NPS 0-6), or a drop of NPSDrop or more from the
// contact's previous answer -> a follow-up task for its owner, due the next business day.
func NewNPSFollowUp(cfg Config) (*FollowUp, error) {
	return newFollowUp(cfg, followUpRule{group: NPSGroup, actor: NPSActor,
		enabled: func(p settings.Processes) bool { return p.NPSFollowUp },
		task: func(ctx context.Context, cfg Config, e eventstore.Event) (*commands.ScheduleTask, error) {
			if e.Type != contact.TypeSurveyRecorded {
				return nil, nil
			}
			ev, err := decode[contact.SurveyRecorded](cfg, e)
			if err != nil {
				return nil, err
			}
			previous, err := previousNPS(ctx, cfg, e)
			if err != nil {
				return nil, err
			}
			var title string
			switch {
			case ev.NPS <= 6:
				title = fmt.Sprintf("NPS %d (detractor): call the customer back", ev.NPS)
			case previous != nil && *previous-ev.NPS >= NPSDrop:
				title = fmt.Sprintf("NPS dropped from %d to %d: call the customer back", *previous, ev.NPS)
			default:
				return nil, nil
			}
			return &commands.ScheduleTask{ContactID: ev.ContactID, Due: businessDate(cfg, e.OccurredAt, 1), Title: title}, nil
		}})
}

// previousNPS is the contact's answer before e, nil when e is its first.
func previousNPS(ctx context.Context, cfg Config, e eventstore.Event) (*int, error) {
	history, err := cfg.Commands.History(ctx, e.Stream)
	if err != nil {
		return nil, err
	}
	var previous *int
	for _, he := range history {
		if he.Version >= e.Version || he.Type != contact.TypeSurveyRecorded {
			continue
		}
		s, err := decode[contact.SurveyRecorded](cfg, he)
		if err != nil {
			return nil, err
		}
		nps := s.NPS
		previous = &nps
	}
	return previous, nil
}

// NewSupportTicketFollowUp: a support_ticket touchpoint -> a task for the owner, due the same
// business day.
func NewSupportTicketFollowUp(cfg Config) (*FollowUp, error) {
	return newFollowUp(cfg, followUpRule{group: SupportTicketGroup, actor: SupportTicketActor,
		enabled: func(p settings.Processes) bool { return p.SupportTicket },
		task: func(_ context.Context, cfg Config, e eventstore.Event) (*commands.ScheduleTask, error) {
			if e.Type != contact.TypeTouchpointRecorded {
				return nil, nil
			}
			ev, err := decode[contact.TouchpointRecorded](cfg, e)
			if err != nil || ev.Kind != contact.KindSupportTicket {
				return nil, err
			}
			return &commands.ScheduleTask{ContactID: ev.ContactID, Due: businessDate(cfg, e.OccurredAt, 0),
				Title: "Support ticket: get back to the customer today"}, nil
		}})
}

// NewOnboarding: a deal won -> an onboarding follow-up task for the deal's owner, due 7 days
// after the business date of the win.
func NewOnboarding(cfg Config) (*FollowUp, error) {
	return newFollowUp(cfg, followUpRule{group: OnboardingGroup, actor: OnboardingActor,
		enabled: func(p settings.Processes) bool { return p.Onboarding },
		task: func(ctx context.Context, cfg Config, e eventstore.Event) (*commands.ScheduleTask, error) {
			if e.Type != deal.TypeWon {
				return nil, nil
			}
			ev, err := decode[deal.Won](cfg, e)
			if err != nil {
				return nil, err
			}
			d, err := cfg.Commands.Deal(ctx, ev.DealID, commands.At{Version: e.Version})
			if err != nil {
				return nil, err
			}
			return &commands.ScheduleTask{ContactID: d.ContactID, Due: businessDate(cfg, e.OccurredAt, 7), Assignee: d.Owner,
				Title: "Onboarding check: " + d.Title}, nil
		}})
}

func decode[T any](cfg Config, e eventstore.Event) (*T, error) {
	d, err := cfg.Commands.Registry().Decode(e.Type, e.Data)
	if err != nil {
		return nil, err
	}
	v, ok := any(d).(*T)
	if !ok {
		return nil, fmt.Errorf("%s decodes as %T", e.Type, d)
	}
	return v, nil
}
