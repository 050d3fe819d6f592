package timeline_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/timeline"
)

// Contacts and events per contact of the benchmark's timeline tables.
const (
	benchContacts   = 10000
	benchPerContact = 30
)

// BenchmarkTimeline reports the latency of one page (50 entries) of a random contact's
// timeline, p50 and p99, over the timelines of 10,000 contacts of 30 events each (300,000
// entries), on each dialect. The goal is a p99 under 20 ms.
func BenchmarkTimeline(b *testing.B) {
	for _, d := range []struct {
		name string
		open func(testing.TB) *projections.DB
	}{{"sqlite", projectiontest.SQLite}, {"postgres", projectiontest.Postgres}} {
		b.Run(d.name, func(b *testing.B) {
			ctx := context.Background()
			db := d.open(b)
			tables := projections.TablesFor(timeline.Projection(), "bench_")
			projectiontest.MustApply(b, db, timeline.Projection(), tables, nil)
			history := benchHistory()
			for start := 0; start < len(history); start += 10000 {
				if _, err := db.Apply(ctx, timeline.Projection(), tables, history[start:min(start+10000, len(history))]); err != nil {
					b.Fatalf("apply: %v", err)
				}
			}
			rng := rand.New(rand.NewPCG(1, 2))
			now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
			durations := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				params := timeline.Params{ContactID: fmt.Sprint("c", rng.IntN(benchContacts)), Now: now}
				start := time.Now()
				if _, err := timeline.Query(ctx, db, tables, params); err != nil {
					b.Fatal(err)
				}
				durations = append(durations, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(durations)
			b.ReportMetric(float64(durations[len(durations)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(durations[len(durations)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}

// benchHistory is the contacts' events in an interleaved order, as a log holds them: each
// contact created, then touchpoints, notes and tasks of all contacts mixed.
func benchHistory() []eventstore.Event {
	rng := rand.New(rand.NewPCG(3, 4))
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	var events []eventstore.Event
	add := func(contact int, typ, data string) {
		p := int64(len(events) + 1)
		at := start.Add(time.Duration(p) * time.Minute)
		events = append(events, eventstore.Event{ID: fmt.Sprint("evt-", p), Stream: fmt.Sprint("contact-c", contact), Position: p,
			Type: typ, Data: []byte(data), OccurredAt: at, RecordedAt: at, Metadata: eventstore.Metadata{Actor: "rep-a"}})
	}
	for c := range benchContacts {
		add(c, "contact.created.v1", fmt.Sprintf(`{"contact_id":"c%d","name":"佐藤 %d","channel":"seminar","owner":"rep-a"}`, c, c))
	}
	for i := range benchContacts * (benchPerContact - 1) {
		c := rng.IntN(benchContacts)
		switch i % 3 {
		case 0:
			add(c, "contact.touchpoint_recorded.v1", fmt.Sprintf(`{"contact_id":"c%d","touchpoint_id":"tp%d","kind":"call","note":"電話でフォロー","phase":"lead"}`, c, i))
		case 1:
			add(c, "contact.note_added.v1", fmt.Sprintf(`{"contact_id":"c%d","note_id":"n%d","text":"メモ %d","author":"rep-a"}`, c, i, i))
		default:
			add(c, "contact.task_scheduled.v1", fmt.Sprintf(`{"contact_id":"c%d","task_id":"t%d","title":"見積書","due":"2024-06-01","assignee":"rep-a"}`, c, i))
		}
	}
	return events
}
