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
