package commands

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/domain/deal"
	"github.com/eventcrm/crm/domain/settings"
	"github.com/eventcrm/crm/eventstore"
)

// ChangeLeadScoring replaces the lead-scoring settings.
type ChangeLeadScoring struct {
	Weights      map[contact.TouchpointKind]int `json:"weights"`
	Rules        []settings.AttributeRule       `json:"rules"`
	HalfLifeDays float64                        `json:"half_life_days"`
	HotThreshold float64                        `json:"hot_threshold"`
	Reason       string                         `json:"reason"`
}

// ChangeStageProbabilities replaces the open stages' win probabilities (percent).
type ChangeStageProbabilities struct {
	Probabilities map[deal.Stage]int `json:"probabilities"`
	Reason        string             `json:"reason"`
}

// ChangeLostReasons replaces the lost reasons offered.
type ChangeLostReasons struct {
	Reasons []deal.LostReason `json:"reasons"`
	Reason  string            `json:"reason"`
}

// ChangeProcessSettings replaces the process-manager switches and the dormancy period.
type ChangeProcessSettings struct {
	settings.Processes
	Reason string `json:"reason"`
}

// ChangeLeadScoring records new lead-scoring settings; the reason (body or X-Reason) is required.
func (h *Handler) ChangeLeadScoring(ctx context.Context, m Meta, cmd ChangeLeadScoring) (Result, error) {
	ls := settings.LeadScoring{Weights: cmd.Weights, Rules: cmd.Rules, HalfLifeDays: cmd.HalfLifeDays, HotThreshold: cmd.HotThreshold}
	return onSettings(ctx, h, m, "ChangeLeadScoring", cmd, cmd.Reason, func(s *settings.Settings, reason string) ([]domain.Event, error) {
		return s.ChangeLeadScoring(ls, reason)
	})
}

// ChangeStageProbabilities records new stage probabilities.
func (h *Handler) ChangeStageProbabilities(ctx context.Context, m Meta, cmd ChangeStageProbabilities) (Result, error) {
	return onSettings(ctx, h, m, "ChangeStageProbabilities", cmd, cmd.Reason, func(s *settings.Settings, reason string) ([]domain.Event, error) {
		return s.ChangeStageProbabilities(cmd.Probabilities, reason)
	})
}

// ChangeLostReasons records a new list of lost reasons.
func (h *Handler) ChangeLostReasons(ctx context.Context, m Meta, cmd ChangeLostReasons) (Result, error) {
	return onSettings(ctx, h, m, "ChangeLostReasons", cmd, cmd.Reason, func(s *settings.Settings, reason string) ([]domain.Event, error) {
		return s.ChangeLostReasons(cmd.Reasons, reason)
	})
}

// ChangeProcessSettings records new process switches.
func (h *Handler) ChangeProcessSettings(ctx context.Context, m Meta, cmd ChangeProcessSettings) (Result, error) {
	return onSettings(ctx, h, m, "ChangeProcessSettings", cmd, cmd.Reason, func(s *settings.Settings, reason string) ([]domain.Event, error) {
		return s.ChangeProcesses(cmd.Processes, reason)
	})
}

// onSettings runs a settings change; the body's reason is the metadata reason unless a
// header gave one, and a header's reason serves when the body has none.
func onSettings(ctx context.Context, h *Handler, m Meta, name string, body any, reason string,
	decide func(*settings.Settings, string) ([]domain.Event, error)) (Result, error) {
	if m.Reason == "" {
		m.Reason = reason
	}
	if reason == "" {
		reason = m.Reason
	}
	cmdIDs := newIDs(m)
	return execute(ctx, h, m, plan[*settings.Settings]{
		name: name, body: body, id: settings.StreamName, stream: settings.StreamName, fresh: newSettings,
		decide: func(s *settings.Settings) ([]domain.Event, error) { return decide(s, reason) },
	}, cmdIDs)
}

func newSettings() *settings.Settings {
	s := settings.Defaults()
	return &s
}

// Settings returns the settings in force now, with their stream version (the ETag).
func (h *Handler) Settings(ctx context.Context) (settings.Settings, error) {
	s, version, err := load(ctx, h, settings.StreamName, newSettings(), nil)
	if err != nil {
		return settings.Settings{}, err
	}
	s.Version = version
	return *s, nil
}

// SettingsBefore returns the settings in force when the event at position was recorded:
// every settings event before it in the log applied, none after. A process manager computes
// with these, so a replay decides as the live process did.
func (h *Handler) SettingsBefore(ctx context.Context, position int64) (settings.Settings, error) {
	s := settings.Defaults()
	for from := int64(1); ; {
		batch, err := h.store.ReadStream(ctx, settings.StreamName, from, readBatch)
		if errors.Is(err, eventstore.ErrStreamNotFound) {
			return s, nil
		}
		if err != nil {
			return s, fmt.Errorf("read %s: %w", settings.StreamName, err)
		}
		for _, e := range batch {
			if e.Position >= position {
				return s, nil
			}
			de, err := h.registry.Decode(e.Type, e.Data)
			if err != nil {
				return s, fmt.Errorf("%s version %d: %w", settings.StreamName, e.Version, err)
			}
			s.Apply(de, e.OccurredAt)
		}
		if len(batch) < readBatch {
			return s, nil
		}
		from += int64(len(batch))
	}
}

// checkLostReason refuses a known lost reason the settings no longer offer (an unknown one is
// the deal's to refuse).
func (h *Handler) checkLostReason(ctx context.Context, reason string) error {
	if _, err := deal.ParseLostReason("reason", reason); err != nil {
		return nil
	}
	st, err := h.Settings(ctx)
	if err != nil {
		return err
	}
	if !slices.Contains(st.LostReasons, deal.LostReason(reason)) {
		return domain.Invalid("reason", "%q is not among the lost reasons offered (%v)", reason, st.LostReasons)
	}
	return nil
}
