package projectiontest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
)

// Generated is a history a benchmark writes at random: its events, numbered 1, 2, ... as
// they are added, and the latest business time among them.
type Generated struct {
	Rng    *rand.Rand
	Events []eventstore.Event
	Latest time.Time
}

// NewGenerated is an empty history drawn from the random numbers of seed: the same seed writes
// the same history.
func NewGenerated(seed uint64) Generated {
	return Generated{Rng: rand.New(rand.NewPCG(seed, seed))}
}

// Add appends an event of type typ to stream, at business time at, with the JSON data.
func (g *Generated) Add(stream, typ string, at time.Time, data string) {
	pos := int64(len(g.Events) + 1)
	g.Events = append(g.Events, eventstore.Event{ID: fmt.Sprintf("e%d", pos), Stream: stream, Position: pos, Type: typ,
		OccurredAt: at, RecordedAt: at, Data: []byte(data)})
	if at.After(g.Latest) {
		g.Latest = at
	}
}

// InTimeOrder puts the events in the order of their business times (those of the same time
// as they were added), numbers them anew, and gives them as a store read through the codec
// does (see Upcast).
func (g *Generated) InTimeOrder(t testing.TB) {
	slices.SortStableFunc(g.Events, func(a, b eventstore.Event) int { return a.OccurredAt.Compare(b.OccurredAt) })
	for i := range g.Events {
		g.Events[i].Position = int64(i + 1)
	}
	g.Events = Upcast(t, g.Events)
}
