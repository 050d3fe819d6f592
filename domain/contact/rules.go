package contact

import (
	"fmt"

	"github.com/eventcrm/crm/domain"
)

// RuleName names the written transition rule that allowed a phase change. It is recorded on
// every phase_changed event, so analysts can count moves by rule.
type RuleName string

// The transition rules, checked in this order.
const (
	// RuleForward: to the next phase.
	RuleForward RuleName = "forward"
	// RuleSkipForward: further ahead than the next phase; needs a reason.
	RuleSkipForward RuleName = "skip_forward"
	// RuleBackward: to an earlier phase; needs a reason.
	RuleBackward RuleName = "backward"
	// RuleLost: to lost, from any phase before won; needs a reason.
	RuleLost RuleName = "lost"
	// RuleChurned: to churned, from won, follow_up or loyal; needs a reason.
	RuleChurned RuleName = "churned"
	// RuleWinBack: from lost or churned back to lead or approach.
	RuleWinBack RuleName = "win_back"
)

// Rule is one written, checkable transition rule.
type Rule struct {
	Name        RuleName
	Description string
	NeedsReason bool
	Allows      func(from, to Phase) bool
}

// Rules returns the default transition rules (DOMAIN.md), in the order they are tried.
func Rules() []Rule {
	return []Rule{
		{RuleForward, "to the next phase", false, func(from, to Phase) bool {
			return from.Rank() > 0 && to.Rank() == from.Rank()+1
		}},
		{RuleSkipForward, "more than one phase ahead", true, func(from, to Phase) bool {
			return from.Rank() > 0 && to.Rank() > from.Rank()+1
		}},
		{RuleBackward, "to an earlier phase", true, func(from, to Phase) bool {
			return from.Rank() > 0 && to.Rank() > 0 && to.Rank() < from.Rank()
		}},
		{RuleLost, "dropped out before won", true, func(from, to Phase) bool {
			return to == Lost && from.Rank() > 0 && from.Rank() < Won.Rank()
		}},
		{RuleChurned, "left after won", true, func(from, to Phase) bool {
			return to == Churned && from.Rank() >= Won.Rank()
		}},
		{RuleWinBack, "re-activated after lost or churned", false, func(from, to Phase) bool {
			return from.IsExit() && (to == Lead || to == Approach)
		}},
	}
}

// Transition finds the rule that allows from -> to, or explains why none does.
func Transition(from, to Phase, reason string) (RuleName, error) {
	if from == to {
		return "", domain.Refused("contact is already in phase %s", to)
	}
	for _, r := range Rules() {
		if !r.Allows(from, to) {
			continue
		}
		if r.NeedsReason && reason == "" {
			return "", domain.Invalid("reason", "a move from %s to %s (%s) needs a reason", from, to, r.Name)
		}
		return r.Name, nil
	}
	return "", domain.Refused("no transition rule allows %s -> %s%s", from, to, refusalHint(from, to))
}

func refusalHint(from, to Phase) string {
	switch {
	case to == Lost:
		return ": lost applies only before won (use churned after won)"
	case to == Churned:
		return ": churned applies only from won, follow_up or loyal (use lost before won)"
	case from.IsExit():
		return fmt.Sprintf(": a %s contact can only be won back into lead or approach", from)
	default:
		return ""
	}
}
