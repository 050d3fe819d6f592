package journey

import (
	"cmp"
	"slices"

	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/projections/round"
)

// visit is a visit as of the question's time: closed when it was left at or before it.
type visit struct {
	phase   contact.Phase
	entered int64
	left    int64 // valid when closed
	closed  bool
}

// grouping maps the phases onto the steps of a map: the seven phases themselves, or the five
// journey stages.
type grouping struct {
	// steps are the buckets of the lifecycle, in order.
	steps []string
	// bucket is the step of a lifecycle phase; an exit (lost, churned) is its own bucket.
	bucket func(contact.Phase) string
}

func byPhase() grouping {
	var steps []string
	for _, p := range contact.Phases() {
		steps = append(steps, string(p))
	}
	return grouping{steps: steps, bucket: func(p contact.Phase) string { return string(p) }}
}

func byStage() grouping {
	var steps []string
	for _, p := range contact.Phases() {
		if s := string(p.JourneyStage()); !slices.Contains(steps, s) {
			steps = append(steps, s)
		}
	}
	return grouping{steps: steps, bucket: func(p contact.Phase) string {
		if s := p.JourneyStage(); s != "" {
			return string(s)
		}
		return string(p)
	}}
}

// stay is a run of consecutive visits in the same bucket.
type stay struct {
	bucket  string
	entered int64
	left    int64
	closed  bool
}

// staysOf merges the consecutive visits (in visit order) of one contact that fall in the same
// bucket: grouped by stage, approach -> discovery -> proposal is one stay in consideration.
func staysOf(visits []visit, g grouping) []stay {
	var stays []stay
	for _, v := range visits {
		b := g.bucket(v.phase)
		if n := len(stays); n > 0 && stays[n-1].bucket == b {
			stays[n-1].left, stays[n-1].closed = v.left, v.closed
			continue
		}
		stays = append(stays, stay{bucket: b, entered: v.entered, left: v.left, closed: v.closed})
	}
	return stays
}

// mixRow is the number of touchpoints of one kind recorded in one phase.
type mixRow struct {
	phase contact.Phase
	kind  string
	count int
}

// accumulator gathers the journeys of contacts one after the other, so that a map can be
// computed while the visits are read, without holding them all.
type accumulator struct {
	g           grouping
	rank        map[string]int
	entered     map[string]int
	advanced    map[string]int
	durations   map[string][]int64
	transitions map[[2]string]int
}

func newAccumulator(g grouping) *accumulator {
	rank := make(map[string]int, len(g.steps))
	for i, s := range g.steps {
		rank[s] = i + 1
	}
	return &accumulator{g: g, rank: rank, entered: map[string]int{}, advanced: map[string]int{},
		durations: map[string][]int64{}, transitions: map[[2]string]int{}}
}

// add adds the visits of one contact, in visit order.
func (a *accumulator) add(vs []visit) {
	stays := staysOf(vs, a.g)
	// laterMax[i] is the highest rank among the stays after stay i.
	laterMax := make([]int, len(stays))
	for i := len(stays) - 2; i >= 0; i-- {
		laterMax[i] = max(laterMax[i+1], a.rank[stays[i+1].bucket])
	}
	// the steps (bit rank-1) the contact stayed in, and advanced from
	var seen, seenAdvanced uint32
	for i, s := range stays {
		if i+1 < len(stays) {
			a.transitions[[2]string{s.bucket, stays[i+1].bucket}]++
		}
		r := a.rank[s.bucket]
		if r == 0 {
			continue
		}
		seen |= 1 << (r - 1)
		if laterMax[i] > r {
			seenAdvanced |= 1 << (r - 1)
		}
		if s.closed {
			a.durations[s.bucket] = append(a.durations[s.bucket], s.left-s.entered)
		}
	}
	for i, s := range a.g.steps {
		if seen&(1<<i) != 0 {
			a.entered[s]++
		}
		if seenAdvanced&(1<<i) != 0 {
			a.advanced[s]++
		}
	}
}

// result is the map of the contacts added, with the touchpoint counts mix.
func (a *accumulator) result(mix []mixRow) Map {
	stats := map[string]durationStats{}
	for s, d := range a.durations {
		stats[s] = statsOf(d)
	}
	return mapOf(a.g, a.entered, a.advanced, stats, a.transitions, mix)
}

// mapOf is the map of grouping g from its counts: entered and advanced contacts, the lengths
// of the closed stays, the moves and the touchpoint mix of every step.
func mapOf(g grouping, entered, advanced map[string]int, stats map[string]durationStats, transitions map[[2]string]int, mix []mixRow) Map {
	m := Map{Steps: []Step{}, Transitions: []Transition{}, TouchpointMix: []Mix{}}
	for i, s := range g.steps {
		st := stats[s]
		step := Step{Name: s, Entered: entered[s], Advanced: advanced[s], ClosedVisits: st.count,
			MedianDays: st.median, P75Days: st.p75}
		if i+1 < len(g.steps) {
			step.Conversion = round.Ratio(step.Advanced, step.Entered)
		}
		m.Steps = append(m.Steps, step)
	}

	order := bucketOrder(g)
	for k, n := range transitions {
		m.Transitions = append(m.Transitions, Transition{From: k[0], To: k[1], Count: n})
	}
	slices.SortFunc(m.Transitions, func(a, b Transition) int {
		return cmp.Or(order(a.From, b.From), order(a.To, b.To))
	})

	kinds := map[string]map[string]int{}
	for _, r := range mix {
		b := g.bucket(r.phase)
		if kinds[b] == nil {
			kinds[b] = map[string]int{}
		}
		kinds[b][r.kind] += r.count
	}
	buckets := slices.Clone(g.steps)
	for b := range kinds {
		if !slices.Contains(buckets, b) {
			buckets = append(buckets, b)
		}
	}
	slices.SortFunc(buckets, order)
	for _, b := range buckets {
		mx := Mix{Name: b, Kinds: []KindCount{}}
		for k, n := range kinds[b] {
			mx.Kinds = append(mx.Kinds, KindCount{Kind: k, Count: n})
			mx.Total += n
		}
		slices.SortFunc(mx.Kinds, func(a, b KindCount) int { return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Kind, b.Kind)) })
		m.TouchpointMix = append(m.TouchpointMix, mx)
	}
	return m
}

// bucketOrder compares buckets: the steps in lifecycle order, then lost, churned, then any
// other by name.
func bucketOrder(g grouping) func(a, b string) int {
	known := append(slices.Clone(g.steps), string(contact.Lost), string(contact.Churned))
	index := func(s string) int {
		if i := slices.Index(known, s); i >= 0 {
			return i
		}
		return len(known)
	}
	return func(a, b string) int { return cmp.Or(cmp.Compare(index(a), index(b)), cmp.Compare(a, b)) }
}
