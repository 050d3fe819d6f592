// Package settings holds the settings an admin changes while the system runs: lead scoring
// (weights per touchpoint kind, attribute rules, half-life, hot threshold), pipeline stage
// probabilities, the lost reasons offered, and the switches of the process managers.
//
// Settings are an aggregate like any other: one stream (StreamName), every change an event
// carrying the whole new section, with the actor and reason in its metadata. So whatever
// computes with a setting (a read model, a process manager) folds the settings events it meets
// in the log and computes each event with the settings in force when that event was recorded:
// a replay or a rebuild computes exactly as the live system did.
package settings

import (
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/domain/deal"
)

// StreamName is the one stream of the settings.
const StreamName = "settings"

// Persisted event names. Never change one: add a new version instead.
const (
	TypeLeadScoringChanged        = "settings.lead_scoring_changed.v1"
	TypeStageProbabilitiesChanged = "settings.stage_probabilities_changed.v1"
	TypeLostReasonsChanged        = "settings.lost_reasons_changed.v1"
	TypeProcessesChanged          = "settings.processes_changed.v1"
)

// Section names, as the HTTP paths spell them.
const (
	SectionLeadScoring        = "lead_scoring"
	SectionStageProbabilities = "stage_probabilities"
	SectionLostReasons        = "lost_reasons"
	SectionProcesses          = "processes"
)

// Sections lists the section names.
func Sections() []string {
	return []string{SectionLeadScoring, SectionStageProbabilities, SectionLostReasons, SectionProcesses}
}

// LeadScoring is how a contact's lead score is computed (DOMAIN "Lead score at time T").
type LeadScoring struct {
	// Weights are the points of a touchpoint of each kind when it occurs; a kind not listed
	// scores 0.
	Weights map[contact.TouchpointKind]int `json:"weights"`
	// Rules give points for the contact's attributes; every matching rule counts.
	Rules []AttributeRule `json:"rules"`
	// HalfLifeDays: a touchpoint's points halve every HalfLifeDays (exact days).
	HalfLifeDays float64 `json:"half_life_days"`
	// HotThreshold: a touchpoint that takes the score from below it to at or above it makes
	// the contact hot.
	HotThreshold float64 `json:"hot_threshold"`
}

// AttributeRule gives Points to a contact whose Field (title, segment or channel) matches
// Value: equal to it, or, with Match "contains", containing it (both case-insensitive).
type AttributeRule struct {
	Field  string `json:"field"`
	Match  string `json:"match"`
	Value  string `json:"value"`
	Points int    `json:"points"`
}

// Rule fields and matches.
const (
	FieldTitle    = "title"
	FieldSegment  = "segment"
	FieldChannel  = "channel"
	MatchEquals   = "equals"
	MatchContains = "contains"
)

// Matches tells whether the rule holds for a contact with these attributes.
func (r AttributeRule) Matches(title, segment, channel string) bool {
	var v string
	switch r.Field {
	case FieldTitle:
		v = title
	case FieldSegment:
		v = segment
	case FieldChannel:
		v = channel
	}
	v, want := strings.ToLower(v), strings.ToLower(r.Value)
	if r.Match == MatchContains {
		return want != "" && strings.Contains(v, want)
	}
	return v == want
}

// Processes switches the process managers and time-driven triggers on and off.
type Processes struct {
	HotLeadHandoff bool `json:"hot_lead_handoff"`
	NPSFollowUp    bool `json:"nps_follow_up"`
	SupportTicket  bool `json:"support_ticket"`
	Onboarding     bool `json:"onboarding"`
	TaskReminders  bool `json:"task_reminders"`
	Dormancy       bool `json:"dormancy"`
	// DormantDays: a contact with no touchpoint for this many days is dormant.
	DormantDays int `json:"dormant_days"`
}

// Settings are all the sections, as in force at one point of the log.
type Settings struct {
	LeadScoring LeadScoring `json:"lead_scoring"`
	// StageProbabilities are the win probabilities of the open stages, in percent.
	StageProbabilities map[deal.Stage]int `json:"stage_probabilities"`
	LostReasons        []deal.LostReason  `json:"lost_reasons"`
	Processes          Processes          `json:"processes"`
	// Version is the settings stream's version (0: nothing was ever changed).
	Version int64 `json:"-"`
}

// Defaults are the settings in force before any change.
func Defaults() Settings {
	probs := map[deal.Stage]int{}
	for _, s := range deal.OpenStages() {
		probs[s] = s.Probability()
	}
	return Settings{
		LeadScoring: LeadScoring{
			Weights: map[contact.TouchpointKind]int{
				contact.KindCall: 10, contact.KindEmail: 5, contact.KindMeeting: 20, contact.KindVisit: 20,
				contact.KindWebinar: 10, contact.KindSeminar: 15, contact.KindInquiry: 25, contact.KindEmailOpen: 1,
				contact.KindEmailClick: 3, contact.KindDocumentDownload: 8,
			},
			Rules:        []AttributeRule{},
			HalfLifeDays: 30,
			HotThreshold: 50,
		},
		StageProbabilities: probs,
		LostReasons:        deal.LostReasons(),
		Processes: Processes{HotLeadHandoff: true, NPSFollowUp: true, SupportTicket: true, Onboarding: true,
			TaskReminders: true, Dormancy: true, DormantDays: 90},
	}
}

// LeadScoringChanged: an admin changed the lead scoring.
type LeadScoringChanged struct {
	LeadScoring
}

// StageProbabilitiesChanged: an admin changed the stage probabilities.
type StageProbabilitiesChanged struct {
	Probabilities map[deal.Stage]int `json:"probabilities"`
}

// LostReasonsChanged: an admin changed the lost reasons offered.
type LostReasonsChanged struct {
	Reasons []deal.LostReason `json:"reasons"`
}

// ProcessesChanged: an admin switched process managers or changed the dormancy period.
type ProcessesChanged struct {
	Processes
}

// EventType implementations.
func (*LeadScoringChanged) EventType() string        { return TypeLeadScoringChanged }
func (*StageProbabilitiesChanged) EventType() string { return TypeStageProbabilitiesChanged }
func (*LostReasonsChanged) EventType() string        { return TypeLostReasonsChanged }
func (*ProcessesChanged) EventType() string          { return TypeProcessesChanged }

// Events lists a prototype of every settings event, for the registry.
func Events() []domain.Event {
	return []domain.Event{&LeadScoringChanged{}, &StageProbabilitiesChanged{}, &LostReasonsChanged{}, &ProcessesChanged{}}
}

// Apply folds one settings event in; other events are ignored. It makes the aggregate of
// the command side and the fold of whoever computes with settings.
func (s *Settings) Apply(e domain.Event, _ time.Time) {
	switch e := e.(type) {
	case *LeadScoringChanged:
		s.LeadScoring = e.LeadScoring
	case *StageProbabilitiesChanged:
		s.StageProbabilities = e.Probabilities
	case *LostReasonsChanged:
		s.LostReasons = e.Reasons
	case *ProcessesChanged:
		s.Processes = e.Processes
	default:
		return
	}
	s.Version++
}

// Exists is true: the settings always exist (their defaults, before any change).
func (s *Settings) Exists() bool { return true }

// IsSettingsEvent tells whether an event type is one of this package's.
func IsSettingsEvent(eventType string) bool { return strings.HasPrefix(eventType, "settings.") }

// reasonRequired refuses a change without a reason: settings change what every later
// computation does, so the log says why.
func reasonRequired(reason string) error {
	if strings.TrimSpace(reason) == "" {
		return domain.Invalid("reason", "is required: say why the settings change (the reason body field or X-Reason)")
	}
	return nil
}

// ChangeLeadScoring decides a change of the lead scoring.
func (s *Settings) ChangeLeadScoring(ls LeadScoring, reason string) ([]domain.Event, error) {
	if err := reasonRequired(reason); err != nil {
		return nil, err
	}
	if err := ls.Validate(); err != nil {
		return nil, err
	}
	if ls.Rules == nil {
		ls.Rules = []AttributeRule{}
	}
	if sameLeadScoring(s.LeadScoring, ls) {
		return nil, domain.Refused("the lead scoring is already so")
	}
	return []domain.Event{&LeadScoringChanged{ls}}, nil
}

func sameLeadScoring(a, b LeadScoring) bool {
	return maps.Equal(a.Weights, b.Weights) && slices.Equal(a.Rules, b.Rules) &&
		a.HalfLifeDays == b.HalfLifeDays && a.HotThreshold == b.HotThreshold
}

// Validate reports the first bad field.
func (ls LeadScoring) Validate() error {
	if ls.Weights == nil {
		return domain.Invalid("weights", "is required (an object of touchpoint kind to points)")
	}
	for k, w := range ls.Weights {
		if _, err := contact.ParseTouchpointKind("weights", string(k)); err != nil {
			return err
		}
		if w < 0 || w > 1000 {
			return domain.Invalid("weights", "%s: %d is outside 0..1000", k, w)
		}
	}
	for i, r := range ls.Rules {
		switch {
		case r.Field != FieldTitle && r.Field != FieldSegment && r.Field != FieldChannel:
			return domain.Invalid("rules", "rule %d: field %q is not title, segment or channel", i, r.Field)
		case r.Match != MatchEquals && r.Match != MatchContains:
			return domain.Invalid("rules", "rule %d: match %q is not equals or contains", i, r.Match)
		case strings.TrimSpace(r.Value) == "":
			return domain.Invalid("rules", "rule %d: value is required", i)
		case r.Points < -1000 || r.Points > 1000:
			return domain.Invalid("rules", "rule %d: points %d are outside -1000..1000", i, r.Points)
		}
	}
	if !(ls.HalfLifeDays >= 0.01 && ls.HalfLifeDays <= 3650) {
		return domain.Invalid("half_life_days", "%v is outside 0.01..3650", ls.HalfLifeDays)
	}
	if !(ls.HotThreshold > 0 && ls.HotThreshold <= 1e6) {
		return domain.Invalid("hot_threshold", "%v is outside (0, 1000000]", ls.HotThreshold)
	}
	return nil
}

// ChangeStageProbabilities decides a change of the open stages' probabilities: every open
// stage gets one, in percent (won is 100 and lost 0, always).
func (s *Settings) ChangeStageProbabilities(probs map[deal.Stage]int, reason string) ([]domain.Event, error) {
	if err := reasonRequired(reason); err != nil {
		return nil, err
	}
	if len(probs) != len(deal.OpenStages()) {
		return nil, domain.Invalid("probabilities", "give every open stage (%s) and nothing else", joinStages())
	}
	for st, p := range probs {
		if _, err := deal.ParseOpenStage("probabilities", string(st)); err != nil {
			return nil, err
		}
		if p < 0 || p > 100 {
			return nil, domain.Invalid("probabilities", "%s: %d is outside 0..100", st, p)
		}
	}
	if maps.Equal(probs, s.StageProbabilities) {
		return nil, domain.Refused("the stage probabilities are already so")
	}
	return []domain.Event{&StageProbabilitiesChanged{Probabilities: probs}}, nil
}

func joinStages() string {
	names := []string{}
	for _, s := range deal.OpenStages() {
		names = append(names, string(s))
	}
	return strings.Join(names, ", ")
}

// ChangeLostReasons decides which of the known lost reasons are offered, in order.
func (s *Settings) ChangeLostReasons(reasons []deal.LostReason, reason string) ([]domain.Event, error) {
	if err := reasonRequired(reason); err != nil {
		return nil, err
	}
	if len(reasons) == 0 {
		return nil, domain.Invalid("reasons", "give at least one")
	}
	seen := map[deal.LostReason]bool{}
	for _, r := range reasons {
		if _, err := deal.ParseLostReason("reasons", string(r)); err != nil {
			return nil, err
		}
		if seen[r] {
			return nil, domain.Invalid("reasons", "%s is listed twice", r)
		}
		seen[r] = true
	}
	if slices.Equal(reasons, s.LostReasons) {
		return nil, domain.Refused("the lost reasons are already so")
	}
	return []domain.Event{&LostReasonsChanged{Reasons: reasons}}, nil
}

// ChangeProcesses decides a change of the process switches.
func (s *Settings) ChangeProcesses(p Processes, reason string) ([]domain.Event, error) {
	if err := reasonRequired(reason); err != nil {
		return nil, err
	}
	if p.DormantDays < 1 || p.DormantDays > 3650 {
		return nil, domain.Invalid("dormant_days", "%d is outside 1..3650", p.DormantDays)
	}
	if p == s.Processes {
		return nil, domain.Refused("the process settings are already so")
	}
	return []domain.Event{&ProcessesChanged{p}}, nil
}
