package seed_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/eventcrm/crm/cmd/crm/internal/seed"
	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/domain/account"
	"github.com/eventcrm/crm/domain/contact"
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

// A seeded history is worth analysing for customer value: customers buy again, in several
// currencies, more at the fiscal year's end (March) than in an average month; surveys have
// promoters and detractors; usage reaches the plan's limit, and some who use it so and
// recommend it are upsold.
func TestSeededHistoryHasValueWorthAnalysing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "crm.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, err := seed.Run(ctx, commands.NewHandler(store), seed.Config{Contacts: 600}); err != nil {
		t.Fatal(err)
	}
	var (
		after                 int64
		orders                = map[string]int{} // per contact
		currencies            = map[string]bool{}
		byMonth               [13]int
		promoters, detractors int
		highUsage, upsells    int
	)
	for {
		events, err := store.ReadAll(ctx, after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(events) == 0 {
			break
		}
		for _, e := range events {
			switch e.Type {
			case contact.TypePurchaseRecorded:
				var ev contact.PurchaseRecorded
				mustDecode(t, e.Data, &ev)
				orders[ev.ContactID]++
				currencies[ev.Amount.Currency] = true
				byMonth[e.OccurredAt.Month()]++
				if ev.Plan == "enterprise" && ev.Product == "CRM Enterprise" {
					upsells++
				}
			case contact.TypeSurveyRecorded:
				var ev contact.SurveyRecorded
				mustDecode(t, e.Data, &ev)
				switch {
				case ev.NPS >= 9:
					promoters++
				case ev.NPS <= 6:
					detractors++
				}
			case contact.TypeUsageReported:
				var ev contact.UsageReported
				mustDecode(t, e.Data, &ev)
				if ev.PercentOfLimit >= 80 {
					highUsage++
				}
			}
		}
		after = events[len(events)-1].Position
	}
	repeat, total := 0, 0
	for _, n := range orders {
		total += n
		if n > 1 {
			repeat++
		}
	}
	if len(orders) == 0 || repeat*5 < len(orders) {
		t.Errorf("%d of %d customers bought again, want at least a fifth", repeat, len(orders))
	}
	if len(currencies) < 3 {
		t.Errorf("currencies %v, want at least 3", currencies)
	}
	if byMonth[time.March]*12 <= total {
		t.Errorf("%d orders in March of %d, want more than an average month", byMonth[time.March], total)
	}
	if promoters == 0 || detractors == 0 || highUsage == 0 || upsells == 0 {
		t.Errorf("promoters %d, detractors %d, usage >= 80%%: %d, upsells %d: want some of each", promoters, detractors, highUsage, upsells)
	}
}

// A seeded history holds the daily work of the lists and timelines too: notes, tasks
// rescheduled, reassigned and cancelled, contacts linked to the accounts of their companies,
// and duplicates merged into the contact they repeat.
func TestSeededHistoryHasTheDailyWork(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "crm.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, err := seed.Run(ctx, commands.NewHandler(store), seed.Config{Contacts: 600}); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	var after int64
	for {
		events, err := store.ReadAll(ctx, after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(events) == 0 {
			break
		}
		for _, e := range events {
			counts[e.Type]++
		}
		after = events[len(events)-1].Position
	}
	for _, typ := range []string{contact.TypeNoteAdded, contact.TypeTaskRescheduled, contact.TypeTaskReassigned,
		contact.TypeTaskCancelled, contact.TypeAccountLinked, contact.TypeMergedInto, contact.TypeDuplicateAbsorbed, account.TypeCreated} {
		if counts[typ] == 0 {
			t.Errorf("no %s in the seeded history", typ)
		}
	}
	if counts[contact.TypeMergedInto] != counts[contact.TypeDuplicateAbsorbed] {
		t.Errorf("%d merges, %d absorbed duplicates", counts[contact.TypeMergedInto], counts[contact.TypeDuplicateAbsorbed])
	}
	if counts[contact.TypeAccountLinked]*3 < counts[contact.TypeCreated] {
		t.Errorf("%d contacts linked to an account of %d, want at least a third", counts[contact.TypeAccountLinked], counts[contact.TypeCreated])
	}
}

func mustDecode(t *testing.T, data []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatal(err)
	}
}
