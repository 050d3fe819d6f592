package deal

import (
	"slices"

	"github.com/eventcrm/crm/domain"
)

// Stage is a step of the sales pipeline.
type Stage string

// The default pipeline stages, in order; won and lost close a deal.
const (
	StageQualification Stage = "qualification"
	StageNeedsAnalysis Stage = "needs_analysis"
	StageProposal      Stage = "proposal"
	StageNegotiation   Stage = "negotiation"
	StageWon           Stage = "won"
	StageLost          Stage = "lost"
)

var openStages = []Stage{StageQualification, StageNeedsAnalysis, StageProposal, StageNegotiation}

// OpenStages lists the stages of an open deal, in pipeline order.
func OpenStages() []Stage { return slices.Clone(openStages) }

// Stages lists every stage, in pipeline order, closed ones last.
func Stages() []Stage { return append(OpenStages(), StageWon, StageLost) }

// Probability is the stage's default win probability, in percent.
func (s Stage) Probability() int {
	switch s {
	case StageQualification:
		return 10
	case StageNeedsAnalysis:
		return 25
	case StageProposal:
		return 50
	case StageNegotiation:
		return 75
	case StageWon:
		return 100
	default:
		return 0
	}
}

// IsOpen reports whether s is a stage of an open deal.
func (s Stage) IsOpen() bool { return slices.Contains(openStages, s) }

// ParseOpenStage validates a stage a deal can be moved to with a stage change.
func ParseOpenStage(field, s string) (Stage, error) {
	st := Stage(s)
	switch {
	case st.IsOpen():
		return st, nil
	case st == StageWon || st == StageLost:
		return "", domain.Invalid(field, "a deal is closed with win or lose, not with a stage change")
	default:
		return "", domain.Invalid(field, "%q is not a stage (qualification, needs_analysis, proposal, negotiation)", s)
	}
}

// LostReason is why a deal was lost.
type LostReason string

// Lost reasons (DOMAIN.md).
const (
	ReasonPrice      LostReason = "price"
	ReasonCompetitor LostReason = "competitor"
	ReasonTiming     LostReason = "timing"
	ReasonNoBudget   LostReason = "no_budget"
	ReasonNoDecision LostReason = "no_decision"
	ReasonProductFit LostReason = "product_fit"
	ReasonOther      LostReason = "other"
)

var lostReasons = []LostReason{ReasonPrice, ReasonCompetitor, ReasonTiming, ReasonNoBudget,
	ReasonNoDecision, ReasonProductFit, ReasonOther}

// LostReasons lists the lost reasons.
func LostReasons() []LostReason { return slices.Clone(lostReasons) }

// ParseLostReason validates a lost reason.
func ParseLostReason(field, s string) (LostReason, error) {
	if slices.Contains(lostReasons, LostReason(s)) {
		return LostReason(s), nil
	}
	return "", domain.Invalid(field, "%q is not a lost reason (price, competitor, timing, no_budget, no_decision, product_fit, other)", s)
}
