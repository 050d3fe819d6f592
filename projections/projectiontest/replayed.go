package projectiontest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
)

// Replayed holds a read model's answers as of earlier business times to a replay: as of each
// time T, each of Questions asked of the set that holds every event answers what it answers
// of a set built from the events that occurred at or before T alone, in log order (a question
// about now there). It holds for a history whose events of one contact or deal are recorded
// in the order of their business times, but for a fact that takes others away (a merge), which
// may be back-dated behind them. AsOf returns a question as of a time; when nil, the question
// with its field AsOf set, as the read models' Params name it.
type Replayed[P, A any] struct {
	Projection projections.Projection
	Questions  []P
	AsOf       func(params P, asOf time.Time) P
	Query      Question[P, A]
}

// Check applies events to a fresh set on each dialect and compares, as of each of times, its
// answers with those of the replay of the events that occurred by then.
func (r Replayed[P, A]) Check(t *testing.T, events []eventstore.Event, times []time.Time) {
	t.Helper()
	asOfQuestion := r.AsOf
	if asOfQuestion == nil {
		asOfQuestion = asOfByField[P]
	}
	ctx := context.Background()
	ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		all := projections.TablesFor(r.Projection, "all")
		MustApply(t, db, r.Projection, all, events)
		for i, at := range times {
			replay := projections.TablesFor(r.Projection, fmt.Sprintf("r%d", i))
			MustApply(t, db, r.Projection, replay, OccurredBy(events, at))
			for _, params := range r.Questions {
				params = asOfQuestion(params, at)
				got, err := r.Query(ctx, db, all, params)
				if err != nil {
					t.Fatalf("%+v: %v", params, err)
				}
				want, err := r.Query(ctx, db, replay, params)
				if err != nil {
					t.Fatalf("%+v, replayed: %v", params, err)
				}
				if g, w := JSON(t, got), JSON(t, want); g != w {
					t.Fatalf("as of %s, %+v:\nevery event %s\nreplayed    %s", at.Format(time.RFC3339Nano), params, g, w)
				}
			}
		}
	})
}

// CheckMerges is Check as of the instants around each merge of events (see AroundEach) and
// of six times throughout them; it fails t when events merge nothing.
func (r Replayed[P, A]) CheckMerges(t *testing.T, events []eventstore.Event) {
	t.Helper()
	around := AroundEach(events, contact.TypeMergedInto)
	if len(around) == 0 {
		t.Fatal("the history merges no contact")
	}
	r.Check(t, events, append(around, Throughout(events, 6)...))
}

// OccurredBy are the events that occurred at or before at, in log order.
func OccurredBy(events []eventstore.Event, at time.Time) []eventstore.Event {
	var by []eventstore.Event
	for _, e := range events {
		if !e.OccurredAt.After(at) {
			by = append(by, e)
		}
	}
	return by
}

// AroundEach is, for each event of type typ, its business time and the microsecond before it:
// the last instant before the fact and the first one with it.
func AroundEach(events []eventstore.Event, typ string) []time.Time {
	var times []time.Time
	for _, e := range events {
		if e.Type == typ {
			times = append(times, e.OccurredAt.Add(-time.Microsecond), e.OccurredAt)
		}
	}
	return times
}
