// Package leadscore computes a contact's lead score (DOMAIN "Lead score at time T"): the sum
// over the contact's touchpoints that occurred at or before T of weight(kind) x
// 0.5^(age in days / half-life), plus the points of every attribute rule the contact matches.
// Ages are exact days (seconds / 86,400). The same code scores for the lead-score read model
// and for the process that records a contact becoming hot, so both agree.
package leadscore

import (
	"math"
	"time"

	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/domain/settings"
)

// Touchpoint is what scoring needs of a touchpoint.
type Touchpoint struct {
	ID   string
	Kind contact.TouchpointKind
	At   time.Time
}

// Attributes are what the attribute rules look at.
type Attributes struct {
	Title, Segment, Channel string
}

// Breakdown is a score and where its points come from.
type Breakdown struct {
	Score       float64           `json:"score"`
	Touchpoints []TouchpointScore `json:"touchpoints"`
	Rules       []RuleScore       `json:"rules"`
}

// TouchpointScore is one touchpoint's decayed points at the time asked about.
type TouchpointScore struct {
	TouchpointID string                 `json:"touchpoint_id"`
	Kind         contact.TouchpointKind `json:"kind"`
	OccurredAt   time.Time              `json:"occurred_at"`
	Weight       int                    `json:"weight"`
	AgeDays      float64                `json:"age_days"`
	Points       float64                `json:"points"`
}

// RuleScore is a matching attribute rule's points.
type RuleScore struct {
	settings.AttributeRule
}

const day = 24 * time.Hour

// Decay is 0.5^(age / half-life) for an age and a half-life in days.
func Decay(ageDays, halfLifeDays float64) float64 { return math.Exp2(-ageDays / halfLifeDays) }

// AgeDays is the exact age in days at t of something that happened at at.
func AgeDays(at, t time.Time) float64 { return t.Sub(at).Seconds() / day.Seconds() }

// Score is the score at t of the touchpoints (those after t are left out) and attributes.
func Score(tps []Touchpoint, attrs Attributes, ls settings.LeadScoring, t time.Time) Breakdown {
	b := Breakdown{Touchpoints: []TouchpointScore{}, Rules: []RuleScore{}}
	for _, tp := range tps {
		if tp.At.After(t) {
			continue
		}
		w := ls.Weights[tp.Kind]
		age := AgeDays(tp.At, t)
		pts := float64(w) * Decay(age, ls.HalfLifeDays)
		b.Touchpoints = append(b.Touchpoints, TouchpointScore{TouchpointID: tp.ID, Kind: tp.Kind, OccurredAt: tp.At.UTC(),
			Weight: w, AgeDays: age, Points: pts})
		b.Score += pts
	}
	rules := AttributePoints(attrs, ls)
	for _, r := range ls.Rules {
		if r.Matches(attrs.Title, attrs.Segment, attrs.Channel) {
			b.Rules = append(b.Rules, RuleScore{r})
		}
	}
	b.Score += float64(rules)
	return b
}

// AttributePoints is the sum of the points of the rules the attributes match.
func AttributePoints(attrs Attributes, ls settings.LeadScoring) int {
	var sum int
	for _, r := range ls.Rules {
		if r.Matches(attrs.Title, attrs.Segment, attrs.Channel) {
			sum += r.Points
		}
	}
	return sum
}

// Round2 rounds a score half up (away from zero) to 2 decimals, as answers show it.
func Round2(x float64) float64 { return math.Round(x*100) / 100 }

// Level is the decaying part of a score in a form that does not depend on the time asked
// about: log2 of the sum of weight x 2^(days since the Unix epoch / half-life) over the
// touchpoints. The decaying part at t is then 2^(Level - days(t) / half-life), so contacts
// ordered by Level are ordered by their decaying points at every time, and "at least m at t"
// is "Level >= days(t) / half-life + log2(m)": an index range, not a rescoring.
// NoLevel (-Inf) is the level of no points.
var NoLevel = math.Inf(-1)

// AddLevel adds a touchpoint of weight w at at to level (log-sum-exp, so nothing overflows).
func AddLevel(level float64, w int, at time.Time, halfLifeDays float64) float64 {
	if w <= 0 {
		return level
	}
	l := math.Log2(float64(w)) + epochDays(at)/halfLifeDays
	if math.IsInf(level, -1) {
		return l
	}
	hi, lo := max(level, l), min(level, l)
	return hi + math.Log2(1+math.Exp2(lo-hi))
}

// LevelFloor is the least level whose decaying points at t are at least m (m > 0).
func LevelFloor(m float64, t time.Time, halfLifeDays float64) float64 {
	return epochDays(t)/halfLifeDays + math.Log2(m)
}

// Decaying is the decaying points at t of a level.
func Decaying(level float64, t time.Time, halfLifeDays float64) float64 {
	if math.IsInf(level, -1) {
		return 0
	}
	return math.Exp2(level - epochDays(t)/halfLifeDays)
}

func epochDays(t time.Time) float64 { return float64(t.UnixMicro()) / float64(day.Microseconds()) }
