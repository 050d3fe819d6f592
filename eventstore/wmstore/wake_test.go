package wmstore

import (
	"context"
	"fmt"
	"math/bits"
	"sort"
	"testing"

	"github.com/eventcrm/crm/eventstore"
)

// positionsStore is a log that has events at the given positions, and counts its reads.
type positionsStore struct {
	eventstore.Store // only ReadAll is used
	positions        []int64
	reads            int
}

func (s *positionsStore) ReadAll(_ context.Context, after int64, limit int) ([]eventstore.Event, error) {
	s.reads++
	i := sort.Search(len(s.positions), func(i int) bool { return s.positions[i] > after })
	var events []eventstore.Event
	for ; i < len(s.positions) && len(events) < limit; i++ {
		events = append(events, eventstore.Event{Position: s.positions[i]})
	}
	return events, nil
}

func TestLastPosition(t *testing.T) {
	seq := func(from, to int64) []int64 {
		var p []int64
		for i := from; i <= to; i++ {
			p = append(p, i)
		}
		return p
	}
	for _, positions := range [][]int64{
		nil,
		{1},
		{1, 2},
		seq(1, 1000),
		seq(1, 1024),
		seq(1, 1025),
		{5},
		{3, 17, 18, 1000, 1 << 40},
		{1, 1<<62 + 1},
		append(seq(1, 100), seq(100_000, 100_100)...),
	} {
		var last int64
		if len(positions) > 0 {
			last = positions[len(positions)-1]
		}
		t.Run(fmt.Sprintf("%d_events_to_%d", len(positions), last), func(t *testing.T) {
			s := &positionsStore{positions: positions}
			got, err := lastPosition(context.Background(), s)
			if err != nil {
				t.Fatal(err)
			}
			if want := last; got != want {
				t.Errorf("last position %d, want %d", got, want)
			}
			if limit := 2*bits.Len64(uint64(last)) + 3; s.reads > limit {
				t.Errorf("%d reads, want at most %d", s.reads, limit)
			}
		})
	}
}
