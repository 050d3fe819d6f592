package contact

import (
	"slices"

	"github.com/eventcrm/crm/domain"
)

// Phase is a stage of the customer lifecycle, or one of its two exits.
type Phase string

// The seven phases from lead to loyal customer, in order, and the two exits.
const (
	Lead      Phase = "lead"
	Approach  Phase = "approach"
	Discovery Phase = "discovery"
	Proposal  Phase = "proposal"
	Won       Phase = "won"
	FollowUp  Phase = "follow_up"
	Loyal     Phase = "loyal"
	// Lost: dropped out before won.
	Lost Phase = "lost"
	// Churned: left after won (cancelled, stopped buying).
	Churned Phase = "churned"
)

// Phases lists the seven lifecycle phases in order (exits excluded).
var phases = []Phase{Lead, Approach, Discovery, Proposal, Won, FollowUp, Loyal}

// Phases returns the seven lifecycle phases in order.
func Phases() []Phase { return slices.Clone(phases) }

// Rank is the 1-based place of p among the seven phases, 0 for an exit or unknown phase.
func (p Phase) Rank() int { return slices.Index(phases, p) + 1 }

// IsExit reports whether p ends a journey (lost or churned).
func (p Phase) IsExit() bool { return p == Lost || p == Churned }

// ParsePhase accepts a lifecycle phase or an exit.
func ParsePhase(field, s string) (Phase, error) {
	p := Phase(s)
	if p.Rank() == 0 && !p.IsExit() {
		return "", domain.Invalid(field, "%q is not a phase (lead, approach, discovery, proposal, won, follow_up, loyal, lost, churned)", s)
	}
	return p, nil
}

// Stage is a step of the five-stage customer journey the articles also use
// (awareness → interest/consideration → purchase → retention → loyalty).
type Stage string

// The five journey stages.
const (
	Awareness     Stage = "awareness"
	Consideration Stage = "consideration"
	Purchase      Stage = "purchase"
	Retention     Stage = "retention"
	Loyalty       Stage = "loyalty"
)

// JourneyStage groups a phase into the five-stage journey; exits have no stage.
func (p Phase) JourneyStage() Stage {
	switch p {
	case Lead:
		return Awareness
	case Approach, Discovery, Proposal:
		return Consideration
	case Won:
		return Purchase
	case FollowUp:
		return Retention
	case Loyal:
		return Loyalty
	default:
		return ""
	}
}
