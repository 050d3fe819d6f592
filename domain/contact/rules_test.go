package contact_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/domain/domaintest"
)

func changePhase(to, reason string) func(*contact.Contact) ([]domain.Event, error) {
	return func(c *contact.Contact) ([]domain.Event, error) { return c.ChangePhase(to, reason) }
}

func phaseChanged(from, to contact.Phase, rule contact.RuleName, reason string) []domain.Event {
	return []domain.Event{&contact.PhaseChanged{ContactID: contactID, From: from, To: to, Rule: rule, Reason: reason}}
}

// allowed is a row in which from -> to is allowed under rule.
func allowed(from, to contact.Phase, rule contact.RuleName, reason string) contactCase {
	name := fmt.Sprintf("%s %s -> %s", rule, from, to)
	if reason != "" {
		name += " with reason"
	}
	return contactCase{
		Name:  name,
		Given: inPhase(from),
		When:  changePhase(string(to), reason),
		Then:  phaseChanged(from, to, rule, reason),
	}
}

// needsReason is a row in which from -> to is allowed under rule, but not without a reason.
func needsReason(from, to contact.Phase, rule contact.RuleName) contactCase {
	return contactCase{
		Name:        fmt.Sprintf("%s %s -> %s without reason is invalid", rule, from, to),
		Given:       inPhase(from),
		When:        changePhase(string(to), ""),
		WantCode:    domain.CodeInvalid,
		WantMessage: fmt.Sprintf("reason: a move from %s to %s (%s) needs a reason", from, to, rule),
	}
}

// refused is a row in which no rule allows from -> to, even with a reason.
func refused(from, to contact.Phase, message string) contactCase {
	return contactCase{
		Name:        fmt.Sprintf("%s -> %s is refused", from, to),
		Given:       inPhase(from),
		When:        changePhase(string(to), "because"),
		WantCode:    domain.CodeRefused,
		WantMessage: message,
	}
}

func TestTransitionRules(t *testing.T) {
	t.Parallel()
	const (
		lead, approach, discovery, proposal = contact.Lead, contact.Approach, contact.Discovery, contact.Proposal
		won, followUp, loyal, lost, churned = contact.Won, contact.FollowUp, contact.Loyal, contact.Lost, contact.Churned
	)
	cases := []contactCase{
		// Forward: each of the six steps, no reason needed; a reason given is kept.
		allowed(lead, approach, contact.RuleForward, ""),
		allowed(approach, discovery, contact.RuleForward, ""),
		allowed(discovery, proposal, contact.RuleForward, ""),
		allowed(proposal, won, contact.RuleForward, ""),
		allowed(won, followUp, contact.RuleForward, ""),
		allowed(followUp, loyal, contact.RuleForward, ""),
		allowed(proposal, won, contact.RuleForward, "signed at the trade fair"),

		// Skip forward: with a reason only.
		allowed(lead, discovery, contact.RuleSkipForward, "referral with a known need"),
		allowed(lead, loyal, contact.RuleSkipForward, "imported history"),
		allowed(approach, won, contact.RuleSkipForward, "bought from the catalogue"),
		allowed(won, loyal, contact.RuleSkipForward, "renewed at once"),
		needsReason(lead, discovery, contact.RuleSkipForward),
		needsReason(proposal, followUp, contact.RuleSkipForward),

		// Backward: with a reason only.
		allowed(approach, lead, contact.RuleBackward, "wrong person"),
		allowed(proposal, discovery, contact.RuleBackward, "new requirements"),
		allowed(won, proposal, contact.RuleBackward, "contract cancelled before start"),
		allowed(loyal, followUp, contact.RuleBackward, "complaint"),
		allowed(loyal, lead, contact.RuleBackward, "new buyer at the company"),
		needsReason(approach, lead, contact.RuleBackward),
		needsReason(loyal, won, contact.RuleBackward),

		// Lost: from each phase before won, with a reason; never from won or after.
		allowed(lead, lost, contact.RuleLost, "no answer"),
		allowed(approach, lost, contact.RuleLost, "no interest"),
		allowed(discovery, lost, contact.RuleLost, "no budget"),
		allowed(proposal, lost, contact.RuleLost, "chose a competitor"),
		needsReason(proposal, lost, contact.RuleLost),
		refused(won, lost, "no transition rule allows won -> lost: lost applies only before won (use churned after won)"),
		refused(followUp, lost, "no transition rule allows follow_up -> lost: lost applies only before won"),
		refused(loyal, lost, "no transition rule allows loyal -> lost: lost applies only before won"),

		// Churned: from won, follow_up or loyal, with a reason; never before won.
		allowed(won, churned, contact.RuleChurned, "cancelled in the trial month"),
		allowed(followUp, churned, contact.RuleChurned, "stopped buying"),
		allowed(loyal, churned, contact.RuleChurned, "acquired by a competitor's client"),
		needsReason(loyal, churned, contact.RuleChurned),
		refused(lead, churned, "no transition rule allows lead -> churned: churned applies only from won, follow_up or loyal (use lost before won)"),
		refused(proposal, churned, "no transition rule allows proposal -> churned: churned applies only from won"),

		// Win-back: from lost or churned into lead or approach, no reason needed.
		allowed(lost, lead, contact.RuleWinBack, ""),
		allowed(lost, approach, contact.RuleWinBack, ""),
		allowed(churned, lead, contact.RuleWinBack, ""),
		allowed(churned, approach, contact.RuleWinBack, "new budget year"),
		refused(lost, discovery, "no transition rule allows lost -> discovery: a lost contact can only be won back into lead or approach"),
		refused(churned, won, "no transition rule allows churned -> won: a churned contact can only be won back into lead or approach"),
		refused(lost, churned, "no transition rule allows lost -> churned: churned applies only from won, follow_up or loyal"),
		refused(churned, lost, "no transition rule allows churned -> lost: lost applies only before won"),
	}
	// The same phase is refused, for every phase, with or without a reason.
	for _, p := range allPhases {
		cases = append(cases, refused(p, p, "contact is already in phase "+string(p)))
	}
	domaintest.Run(t, cases)
}

// allPhases is every phase and exit, spelled out so a renamed constant is caught.
var allPhases = []contact.Phase{"lead", "approach", "discovery", "proposal", "won", "follow_up", "loyal", "lost", "churned"}

// transitionMatrix is the whole default rule set. Rows are from, columns are to.
//
//	F forward, S skip_forward, B backward, L lost, C churned, W win_back (allowed under that rule)
//	= same phase (refused), . no rule (refused)
const transitionMatrix = `
           lead approach discovery proposal won follow_up loyal lost churned
lead       =    F        S         S        S   S         S     L    .
approach   B    =        F         S        S   S         S     L    .
discovery  B    B        =         F        S   S         S     L    .
proposal   B    B        B         =        F   S         S     L    .
won        B    B        B         B        =   F         S     .    C
follow_up  B    B        B         B        B   =         F     .    C
loyal      B    B        B         B        B   B         =     .    C
lost       W    W        .         .        .   .         .     =    .
churned    W    W        .         .        .   .         .     .    =
`

var matrixRules = map[string]contact.RuleName{
	"F": contact.RuleForward, "S": contact.RuleSkipForward, "B": contact.RuleBackward,
	"L": contact.RuleLost, "C": contact.RuleChurned, "W": contact.RuleWinBack,
}

// parseMatrix returns the matrix cell of every from -> to pair.
func parseMatrix(t *testing.T) map[[2]contact.Phase]string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(transitionMatrix), "\n")
	header := strings.Fields(lines[0])
	if !reflect.DeepEqual(header, phaseStrings(allPhases)) {
		t.Fatalf("matrix columns %v; want %v", header, allPhases)
	}
	cells := map[[2]contact.Phase]string{}
	if len(lines)-1 != len(allPhases) {
		t.Fatalf("matrix has %d rows; want %d", len(lines)-1, len(allPhases))
	}
	for i, line := range lines[1:] {
		fields := strings.Fields(line)
		if len(fields) != len(allPhases)+1 || fields[0] != string(allPhases[i]) {
			t.Fatalf("bad matrix row %q", line)
		}
		for j, cell := range fields[1:] {
			if _, ok := matrixRules[cell]; !ok && cell != "=" && cell != "." {
				t.Fatalf("bad matrix cell %q in row %q", cell, line)
			}
			cells[[2]contact.Phase{allPhases[i], allPhases[j]}] = cell
		}
	}
	return cells
}

func phaseStrings(ps []contact.Phase) []string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = string(p)
	}
	return s
}

// TestTransitionMatrix checks every one of the 81 from -> to pairs against transitionMatrix,
// with and without a reason, so any change of the rules fails here.
func TestTransitionMatrix(t *testing.T) {
	t.Parallel()
	cells := parseMatrix(t)
	needsReason := map[contact.RuleName]bool{}
	for _, r := range contact.Rules() {
		needsReason[r.Name] = r.NeedsReason
	}
	var cases []contactCase
	for _, from := range allPhases {
		for _, to := range allPhases {
			cell := cells[[2]contact.Phase{from, to}]
			pair := fmt.Sprintf("%s -> %s", from, to)
			switch rule, ok := matrixRules[cell]; {
			case ok:
				cases = append(cases, contactCase{
					Name: pair + " with reason", Given: inPhase(from), When: changePhase(string(to), "why"),
					Then: phaseChanged(from, to, rule, "why"),
				})
				withoutReason := contactCase{Name: pair + " without reason", Given: inPhase(from), When: changePhase(string(to), "")}
				if needsReason[rule] {
					withoutReason.WantCode, withoutReason.WantMessage = domain.CodeInvalid, "needs a reason"
				} else {
					withoutReason.Then = phaseChanged(from, to, rule, "")
				}
				cases = append(cases, withoutReason)
			case cell == "=":
				for _, reason := range []string{"why", ""} {
					cases = append(cases, contactCase{
						Name: fmt.Sprintf("%s reason %q", pair, reason), Given: inPhase(from), When: changePhase(string(to), reason),
						WantCode: domain.CodeRefused, WantMessage: "contact is already in phase " + string(to),
					})
				}
			default:
				for _, reason := range []string{"why", ""} {
					cases = append(cases, contactCase{
						Name: fmt.Sprintf("%s reason %q", pair, reason), Given: inPhase(from), When: changePhase(string(to), reason),
						WantCode: domain.CodeRefused, WantMessage: "no transition rule allows " + pair,
					})
				}
			}
		}
	}
	domaintest.Run(t, cases)
}

// TestTransition checks the pure rule function on the same matrix, and that at most one rule
// allows any pair (so the order of Rules never decides a rule name).
func TestTransition(t *testing.T) {
	t.Parallel()
	cells := parseMatrix(t)
	for _, from := range allPhases {
		for _, to := range allPhases {
			cell := cells[[2]contact.Phase{from, to}]
			var allowing []contact.RuleName
			for _, r := range contact.Rules() {
				if r.Allows(from, to) {
					allowing = append(allowing, r.Name)
				}
			}
			rule, err := contact.Transition(from, to, "why")
			want, ok := matrixRules[cell]
			switch {
			case ok:
				if err != nil || rule != want {
					t.Errorf("Transition(%s, %s) = %q, %v; want %q", from, to, rule, err, want)
				}
				if !reflect.DeepEqual(allowing, []contact.RuleName{want}) {
					t.Errorf("%s -> %s is allowed by rules %v; want only %s", from, to, allowing, want)
				}
			default:
				if err == nil || domain.ErrorCode(err) != domain.CodeRefused {
					t.Errorf("Transition(%s, %s) = %q, %v; want refused", from, to, rule, err)
				}
				if cell == "." && len(allowing) != 0 {
					t.Errorf("%s -> %s is allowed by rules %v; want none", from, to, allowing)
				}
			}
		}
	}
}

func TestRules(t *testing.T) {
	t.Parallel()
	type rule struct {
		Name        contact.RuleName
		NeedsReason bool
	}
	want := []rule{
		{"forward", false}, {"skip_forward", true}, {"backward", true},
		{"lost", true}, {"churned", true}, {"win_back", false},
	}
	var got []rule
	for _, r := range contact.Rules() {
		got = append(got, rule{r.Name, r.NeedsReason})
		if r.Description == "" || r.Allows == nil {
			t.Errorf("rule %s has no description or no predicate", r.Name)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rules %v; want %v", got, want)
	}
}

func TestPhases(t *testing.T) {
	t.Parallel()
	tests := []struct {
		phase  contact.Phase
		rank   int
		exit   bool
		stage  contact.Stage
		parses bool
	}{
		{"lead", 1, false, "awareness", true},
		{"approach", 2, false, "consideration", true},
		{"discovery", 3, false, "consideration", true},
		{"proposal", 4, false, "consideration", true},
		{"won", 5, false, "purchase", true},
		{"follow_up", 6, false, "retention", true},
		{"loyal", 7, false, "loyalty", true},
		{"lost", 0, true, "", true},
		{"churned", 0, true, "", true},
		{"dormant", 0, false, "", false},
		{"", 0, false, "", false},
	}
	for _, tc := range tests {
		t.Run(string(tc.phase), func(t *testing.T) {
			t.Parallel()
			if got := tc.phase.Rank(); got != tc.rank {
				t.Errorf("Rank = %d; want %d", got, tc.rank)
			}
			if got := tc.phase.IsExit(); got != tc.exit {
				t.Errorf("IsExit = %v; want %v", got, tc.exit)
			}
			if got := tc.phase.JourneyStage(); got != tc.stage {
				t.Errorf("JourneyStage = %q; want %q", got, tc.stage)
			}
			p, err := contact.ParsePhase("phase", string(tc.phase))
			if tc.parses && (err != nil || p != tc.phase) {
				t.Errorf("ParsePhase = %q, %v; want %q", p, err, tc.phase)
			}
			if !tc.parses {
				domaintest.CheckError(t, err, domain.CodeInvalid, "is not a phase")
			}
		})
	}
	t.Run("Phases lists the seven in order and returns a copy", func(t *testing.T) {
		t.Parallel()
		got := contact.Phases()
		if !reflect.DeepEqual(got, allPhases[:7]) {
			t.Errorf("Phases() = %v; want %v", got, allPhases[:7])
		}
		got[0] = "changed"
		if contact.Phases()[0] != contact.Lead {
			t.Error("Phases() shares its backing array")
		}
	})
}
