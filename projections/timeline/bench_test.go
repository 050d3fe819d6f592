package timeline_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/timeline"
)

// Shape of the benchmark's log: besides its creation, each contact has benchPerContact-1
// entries on average, spread at random, and the busiest contact (c0000000) about benchBusiest in all.
const (
	benchPerContact = 10
	benchBusiest    = 10_000
)

// BenchmarkTimeline asks the first page (50 entries) of one contact's timeline, as GET
// /v1/contacts/{id}/timeline?limit=50 does, over the timelines of CRM_BENCH_TIMELINE_CONTACTS
// contacts (default 100,000; benchPerContact entries each on average, ~1M entries at the default
// size): of the busiest contact (benchBusiest entries, a third of them tasks) and of a typical one
// (a random contact per request), from 1 client and from 100 at once, with no writes and while 50
// events a second are applied live. It reports the latency's p50 and p99 over the requests: with 1
// client b.N requests, with 100 a round of 100 requests per 10 iterations; beside them, as the
// baseline of the same run, a read transaction of one trivial statement. The goal is a p99 under
// 20 ms at 100 clients.
func BenchmarkTimeline(b *testing.B) {
	n := projectiontest.EnvCount(b, "CRM_BENCH_TIMELINE_CONTACTS", 2, 100_000)
	events := projectiontest.Upcast(b, timelineEvents(n))
	p := timeline.Projection()
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, d := range []projections.Dialect{projections.SQLite, projections.Postgres} {
		b.Run(d.String(), func(b *testing.B) {
			db, tables := projectiontest.Loaded(b, d, p, events, 10_000)
			next := int64(len(events))
			page := func(id func() string) func(ctx context.Context) error {
				return func(ctx context.Context) error {
					a, err := timeline.Query(ctx, db, tables, timeline.Params{ContactID: id(), Limit: 50, Now: now})
					if err == nil && len(a.Entries) == 0 {
						err = fmt.Errorf("%s: no entry", a.ContactID)
					}
					return err
				}
			}
			questions := []struct {
				name string
				ask  func(ctx context.Context) error
			}{
				{"baseline select 1", func(ctx context.Context) error { return projectiontest.Baseline(ctx, db, tables) }},
				{"busiest", page(func() string { return contactID(0) })},
				{"typical", page(func() string { return contactID(1 + rand.IntN(n-1)) })},
			}
			projectiontest.ForWrites(b, func(b *testing.B, writes bool) {
				for _, q := range questions {
					for _, clients := range []int{1, 100} {
						b.Run(fmt.Sprintf("%s/clients=%d", q.name, clients), func(b *testing.B) {
							if writes {
								defer projectiontest.WriteLive(b, db, p, tables, 20*time.Millisecond, func() eventstore.Event {
									next++
									return liveEvent(next, n)
								})()
							}
							projectiontest.Latency(b, clients, q.ask)
						})
					}
				}
			})
		})
	}
}

func contactID(i int) string { return fmt.Sprintf("c%07d", i) }

// timelineEvents creates n contacts, then n*(benchPerContact-1) touchpoints, notes and tasks
// (scheduled, a third of them done later) of random contacts other than the busiest, with
// about benchBusiest for the busiest mixed in, in log order.
func timelineEvents(n int) []eventstore.Event {
	rng := rand.New(rand.NewPCG(3, 4))
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	rest := n * (benchPerContact - 1)
	events := make([]eventstore.Event, 0, n+rest+benchBusiest)
	add := func(contact int, typ, data string) {
		p := int64(len(events) + 1)
		at := start.Add(time.Duration(p) * 10 * time.Second)
		events = append(events, eventstore.Event{ID: fmt.Sprint("e", p), Stream: "contact-" + contactID(contact), Position: p,
			Type: typ, Data: []byte(data), OccurredAt: at, RecordedAt: at, Metadata: eventstore.Metadata{Actor: "rep-a"}})
	}
	for c := range n {
		add(c, "contact.created.v1", fmt.Sprintf(`{"contact_id":%q,"name":"佐藤 %d","channel":"seminar","owner":"rep-a"}`, contactID(c), c))
	}
	busiestEvery := max(1, rest/benchBusiest)
	var scheduled []string // open tasks and their contact, "task contact"
	for i := range rest + benchBusiest {
		c := 1 + rng.IntN(n-1)
		if i%(busiestEvery+1) == 0 {
			c = 0
		}
		id := contactID(c)
		switch i % 4 {
		case 0:
			add(c, "contact.touchpoint_recorded.v1", fmt.Sprintf(`{"contact_id":%q,"touchpoint_id":"tp%d","kind":"call","note":"電話でフォロー","phase":"lead"}`, id, i))
		case 1:
			add(c, "contact.note_added.v1", fmt.Sprintf(`{"contact_id":%q,"note_id":"n%d","text":"メモ %d","author":"rep-a"}`, id, i, i))
		case 2:
			add(c, "contact.task_scheduled.v1", fmt.Sprintf(`{"contact_id":%q,"task_id":"t%d","title":"見積書","due":"2024-06-01","assignee":"rep-a"}`, id, i))
			if i%3 == 0 {
				scheduled = append(scheduled, fmt.Sprintf("t%d %s", i, id))
			}
		default:
			if len(scheduled) == 0 {
				add(c, "contact.touchpoint_recorded.v1", fmt.Sprintf(`{"contact_id":%q,"touchpoint_id":"tp%d","kind":"email","note":"","phase":"lead"}`, id, i))
				continue
			}
			var task, of string
			fmt.Sscan(scheduled[0], &task, &of)
			scheduled = scheduled[1:]
			var owner int
			fmt.Sscanf(of, "c%d", &owner)
			add(owner, "contact.task_completed.v1", fmt.Sprintf(`{"contact_id":%q,"task_id":%q}`, of, task))
		}
	}
	return events
}

// liveEvent is the i-th event written live: a touchpoint of a random contact, every tenth one
// of the busiest.
func liveEvent(i int64, n int) eventstore.Event {
	c := 1 + rand.IntN(n-1)
	if i%10 == 0 {
		c = 0
	}
	at := time.Now().UTC()
	return eventstore.Event{ID: fmt.Sprint("w", i), Stream: "contact-" + contactID(c), Position: i, Type: "contact.touchpoint_recorded.v1",
		Data:       fmt.Appendf(nil, `{"contact_id":%q,"touchpoint_id":"w%d","kind":"call","note":"電話でフォロー","phase":"lead"}`, contactID(c), i),
		OccurredAt: at, RecordedAt: at, Metadata: eventstore.Metadata{Actor: "rep-a"}}
}
