package projectiontest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
)

// Latest is the latest business time of events; zero when there are none.
func Latest(events []eventstore.Event) time.Time {
	var latest time.Time
	for _, e := range events {
		if e.OccurredAt.After(latest) {
			latest = e.OccurredAt
		}
	}
	return latest
}

// SameAnswer asks a question of params twice, of what the fold keeps (kept) and of the rows
// it keeps them from (detail, named from), and fails t unless both answer the same, compared
// as JSON.
func SameAnswer[P, A, B any](t testing.TB, db *projections.DB, tables projections.Tables, params P,
	kept func(ctx context.Context, db *projections.DB, t projections.Tables, params P) (A, error),
	from string, detail func(ctx context.Context, db *projections.DB, t projections.Tables, params P) (B, error)) {
	t.Helper()
	ctx := context.Background()
	got, err := kept(ctx, db, tables, params)
	if err != nil {
		t.Fatalf("%+v: %v", params, err)
	}
	want, err := detail(ctx, db, tables, params)
	if err != nil {
		t.Fatalf("%+v from the %s: %v", params, from, err)
	}
	if g, w := JSON(t, got), JSON(t, want); g != w {
		t.Fatalf("%+v:\nkept %s\n%s %s", params, g, from, w)
	}
}

// ForEachPrefixRun is ForEachPrefix with each prefix a subtest named by its number of events.
func ForEachPrefixRun(t *testing.T, p projections.Projection, events []eventstore.Event, steps int,
	test func(t *testing.T, db *projections.DB, tables projections.Tables, applied []eventstore.Event)) {
	t.Helper()
	ForEachPrefix(t, p, events, steps, func(t *testing.T, db *projections.DB, tables projections.Tables, applied []eventstore.Event) {
		t.Run(fmt.Sprintf("%d events", len(applied)), func(t *testing.T) {
			test(t, db, tables, applied)
		})
	})
}

// Kept compares what a read model's fold keeps with the rows it keeps it from, about now:
// after the events applied, each of Questions (a subtest each), as of each of Later after the
// latest business time of the events (Least when that is earlier, as for no events), and with
// no as_of first when Now, answers the same of Kept and of Detail, the rows named From (see
// SameAnswer). AsOf returns a question as of a time; when nil, the question with its field
// AsOf set, as the read models' Params name it.
type Kept[P, A, B any] struct {
	Questions []P
	Now       bool
	Least     time.Time
	Later     []time.Duration
	AsOf      func(params P, asOf time.Time) P
	Kept      Question[P, A]
	From      string
	Detail    Question[P, B]
}

// Check checks k over the tables after applied: it has the shape of ForEachPrefix's test.
func (k Kept[P, A, B]) Check(t *testing.T, db *projections.DB, tables projections.Tables, applied []eventstore.Event) {
	t.Helper()
	latest := Latest(applied)
	if latest.Before(k.Least) {
		latest = k.Least
	}
	var asOfs []time.Time
	if k.Now {
		asOfs = append(asOfs, time.Time{})
	}
	for _, d := range k.Later {
		asOfs = append(asOfs, latest.Add(d))
	}
	asOfQuestion := k.AsOf
	if asOfQuestion == nil {
		asOfQuestion = asOfByField[P]
	}
	for _, params := range k.Questions {
		t.Run(fmt.Sprintf("%+v", params), func(t *testing.T) {
			for _, asOf := range asOfs {
				SameAnswer(t, db, tables, asOfQuestion(params, asOf), k.Kept, k.From, k.Detail)
			}
		})
	}
}
