package processes

import (
	"context"
	"fmt"

	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/domain/leadscore"
	"github.com/eventcrm/crm/eventstore"
)

// Persisted names of HotLead.
const (
	HotLeadGroup = "process:lead_score_hot"
	HotLeadActor = "process:lead_score"
)

// HotLead records that a contact became hot (DOMAIN "Lead score at time T"): on each
// touchpoint it scores the contact just before and just after it, at the touchpoint's
// business time, with the lead-scoring settings in force when the touchpoint was recorded and
// the contact's attributes then (its stream up to the touchpoint), counting the touchpoints
// recorded before it that occurred at or before it. When the touchpoint takes the score from
// below the threshold to at or above it, it appends contact.became_hot (idempotency key from
// the touchpoint event). Everything it reads is the log up to the touchpoint, so a replay
// decides the same; decay alone never makes anyone hot. An imported touchpoint (see
// ImportAge) is left alone: a history loaded in bulk does not flood the log with hand-offs.
type HotLead struct{ cfg Config }

// NewHotLead returns the process; run it with Run.
func NewHotLead(cfg Config) (*HotLead, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("hot-lead process: %w", err)
	}
	return &HotLead{cfg: cfg}, nil
}

// Group is the process's consumer group.
func (*HotLead) Group() string { return HotLeadGroup }

// Handle reacts to contact.touchpoint_recorded.
func (p *HotLead) Handle(ctx context.Context, e eventstore.Event) error {
	outcome, err := p.handle(ctx, e)
	p.cfg.observe(HotLeadGroup, outcome)
	return err
}

// handle is Handle, with its outcome ("" for an event it ignores; a touchpoint that makes
// no one hot is skipped).
func (p *HotLead) handle(ctx context.Context, e eventstore.Event) (string, error) {
	if e.Type != contact.TypeTouchpointRecorded {
		return "", nil
	}
	if e.RecordedAt.Sub(e.OccurredAt) > ImportAge {
		return OutcomeSkipped, nil
	}
	cmds := p.cfg.Commands
	decoded, err := cmds.Registry().Decode(e.Type, e.Data)
	if err != nil {
		return settled(p.cfg.Logger, HotLeadGroup, e, err)
	}
	tp := decoded.(*contact.TouchpointRecorded)
	before, after, threshold, err := p.scores(ctx, e, tp)
	if err != nil {
		return settled(p.cfg.Logger, HotLeadGroup, e, err)
	}
	if before >= threshold || after < threshold {
		return OutcomeSkipped, nil
	}
	res, err := cmds.System().RecordBecameHot(ctx, causedBy(e, HotLeadActor, "lead-score/"+e.ID+"/hot", "lead score crossed the hot threshold"),
		commands.RecordBecameHot{ContactID: tp.ContactID, TouchpointID: tp.TouchpointID, Score: leadscore.Round2(after), Threshold: threshold})
	outcome, err := settled(p.cfg.Logger, HotLeadGroup, e, err)
	return replayed(res, outcome), err
}

// scores are the contact's score just before and just after the touchpoint, and the
// threshold then.
func (p *HotLead) scores(ctx context.Context, e eventstore.Event, tp *contact.TouchpointRecorded) (before, after, threshold float64, err error) {
	cmds := p.cfg.Commands
	c, err := cmds.Contact(ctx, tp.ContactID, commands.At{Version: e.Version})
	if err != nil {
		return 0, 0, 0, err
	}
	history, err := cmds.History(ctx, e.Stream)
	if err != nil {
		return 0, 0, 0, err
	}
	st, err := cmds.SettingsBefore(ctx, e.Position)
	if err != nil {
		return 0, 0, 0, err
	}
	var tps []leadscore.Touchpoint
	for _, he := range history {
		if he.Version >= e.Version || he.Type != contact.TypeTouchpointRecorded {
			continue
		}
		d, err := cmds.Registry().Decode(he.Type, he.Data)
		if err != nil {
			return 0, 0, 0, err
		}
		earlier := d.(*contact.TouchpointRecorded)
		tps = append(tps, leadscore.Touchpoint{ID: earlier.TouchpointID, Kind: earlier.Kind, At: he.OccurredAt})
	}
	attrs := leadscore.Attributes{Title: c.Title, Segment: c.Segment, Channel: string(c.Channel)}
	ls := st.LeadScoring
	before = leadscore.Score(tps, attrs, ls, e.OccurredAt).Score
	after = leadscore.Score(append(tps, leadscore.Touchpoint{ID: tp.TouchpointID, Kind: tp.Kind, At: e.OccurredAt}), attrs, ls, e.OccurredAt).Score
	return before, after, ls.HotThreshold, nil
}
