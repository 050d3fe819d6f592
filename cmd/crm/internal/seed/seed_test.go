package seed_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/eventcrm/crm/cmd/crm/internal/seed"
	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/eventstore/sqlite"
)

// Nothing of a seeded history happens after its end: journeys stop at their first step
// that would (a present-day read model must not hold tomorrow's events).
func TestSeededHistoryEndsAtUntil(t *testing.T) {
	start := time.Date(2024, 1, 1, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		cfg   seed.Config
		until time.Time
	}{
		{"default end", seed.Config{Contacts: 150, Start: start, Days: 60}, start.AddDate(0, 0, 60+270)},
		{"early end", seed.Config{Contacts: 150, Start: start, Days: 60, Until: start.AddDate(0, 0, 45)}, start.AddDate(0, 0, 45)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "crm.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			stats, err := seed.Run(ctx, commands.NewHandler(store), tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			var after, count int64
			var latest time.Time
			for {
				events, err := store.ReadAll(ctx, after, 1000)
				if err != nil {
					t.Fatal(err)
				}
				if len(events) == 0 {
					break
				}
				for _, e := range events {
					count++
					if e.OccurredAt.After(latest) {
						latest = e.OccurredAt
					}
				}
				after = events[len(events)-1].Position
			}
			if count == 0 || count != stats.Events {
				t.Fatalf("%d events in the log, the seed says %d", count, stats.Events)
			}
			if latest.After(tc.until) {
				t.Fatalf("an event occurred at %v, after the end %v", latest, tc.until)
			}
			// The journeys do reach the end: the history is not cut much earlier.
			if latest.Before(tc.until.AddDate(0, 0, -30)) {
				t.Fatalf("the latest event occurred at %v, long before the end %v", latest, tc.until)
			}
		})
	}
}
