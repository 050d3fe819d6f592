package projections_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/board"
	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/rebuild"
)

// oddTextHistory is a history as an old log may hold it, written before the HTTP edge
// refused such text: NUL characters in every kind of text field (names, owners, companies,
// titles, reasons, notes) and, in the last event, a byte that is not UTF-8.
const oddTextHistory = `
2024-01-05T09:00:00Z contact-c1 contact.created.v1 {"contact_id":"c1","name":"Ai\u0000ko","email":"a\u0000@example.com","phone":"0\u00001","company":"Asa\u0000hi","title":"C\u0000TO","channel":"seminar","owner":"rep\u0000mori","segment":"s\u0000mb"}
2024-01-05T09:00:00Z contact-c2 contact.created.v1 {"contact_id":"c2","name":"Kenta","channel":"web_form","owner":"rep\u0000mori"}
2024-01-06T09:00:00Z contact-c1 contact.details_changed.v1 {"contact_id":"c1","name":"Aiko\u0000 Sato","company":"\u0000","segment":"ent\u0000"}
2024-01-07T09:00:00Z contact-c1 contact.owner_changed.v1 {"contact_id":"c1","from":"rep\u0000mori","to":"rep\u0000ota"}
2024-01-08T09:00:00Z contact-c1 contact.phase_changed.v1 {"contact_id":"c1","from":"lead","to":"approach","rule":"forward","reason":"met\u0000"}
2024-01-09T09:00:00Z contact-c1 contact.touchpoint_recorded.v1 {"contact_id":"c1","touchpoint_id":"t1","kind":"meeting","note":"n\u0000te","phase":"approach"}
2024-01-09T09:00:00Z contact-c1 contact.task_scheduled.v1 {"contact_id":"c1","task_id":"k1","title":"call\u0000back","due":"2024-02-01","assignee":"rep\u0000ota"}
2024-01-10T09:00:00Z deal-d1 deal.opened.v1 {"deal_id":"d1","contact_id":"c1","title":"Pl\u0000an","amount":{"amount":5000,"currency":"JPY"},"owner":"rep\u0000ota","stage":"qualification"}
2024-01-11T09:00:00Z deal-d1 deal.stage_changed.v1 {"deal_id":"d1","from":"qualification","to":"proposal"}
2024-01-12T09:00:00Z deal-d2 deal.opened.v1 {"deal_id":"d2","contact_id":"c2","title":"Other\u0000","amount":{"amount":700,"currency":"JPY"},"owner":"rep\u0000mori","stage":"qualification"}
2024-01-13T09:00:00Z deal-d2 deal.lost.v1 {"deal_id":"d2","contact_id":"c2","from_stage":"qualification","reason":"price","note":"too\u0000dear","amount":{"amount":700,"currency":"JPY"}}
2024-01-14T09:00:00Z contact-c2 contact.phase_changed.v1 {"contact_id":"c2","from":"lead","to":"lost","rule":"lost","reason":"gone\u0000"}
`

// appendOddText appends oddTextHistory to store, as an old log holds it, plus a details
// change whose company holds a byte that is not UTF-8.
func appendOddText(t *testing.T, store eventstore.Store) {
	t.Helper()
	events := projectiontest.MustParseHistory(t, oddTextHistory)
	events = append(events, eventstore.Event{Stream: "contact-c2", Type: "contact.details_changed.v1",
		Data: []byte("{\"contact_id\":\"c2\",\"company\":\"Bad\xffCo\"}"), OccurredAt: time.Date(2024, 1, 15, 9, 0, 0, 0, time.UTC)})
	for i, e := range events {
		// The same ids on every backend: read models that show event ids hold the same rows.
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i+1)
		_, err := store.Append(context.Background(), e.Stream, eventstore.AnyVersion,
			[]eventstore.EventData{{ID: id, Type: e.Type, Data: e.Data, OccurredAt: e.OccurredAt}})
		if err != nil {
			t.Fatalf("append %s: %v", e.Type, err)
		}
	}
}

// Text a read model cannot hold on PostgreSQL (NUL, invalid UTF-8) in a log written before
// the edge refused it projects on both backends, live, by a rebuild's batch path and event by
// event, with nothing parked: each such character is stored as U+FFFD, and the tables of
// SQLite and PostgreSQL hold the same rows.
func TestTextOfOldLogsProjectsAlikeOnBothBackends(t *testing.T) {
	var (
		mu    sync.Mutex
		dumps = map[projections.Dialect]map[string]map[string][]string{}
	)
	t.Run("backends", func(t *testing.T) {
		projectiontest.ForEachBackend(t, func(t *testing.T, store eventstore.Store, db *projections.DB) {
			ctx := context.Background()
			appendOddText(t, store)
			ps := contactReadModels()
			r := projectiontest.NewRunner(t, projectiontest.RunnerConfig(store, db), ps...)
			projectiontest.Start(t, r)
			waitAll(t, db, store, ps)
			if n := projectiontest.Count(t, db, `SELECT count(*) FROM projection_parked`); n != 0 {
				parked, _ := r.Parked(ctx, projections.ParkedFilter{Limit: 10})
				t.Fatalf("%d events parked live: %+v", n, parked)
			}
			res, err := rebuild.Rebuild(ctx, rebuild.RebuildConfig{DB: db, Store: store, Runner: r, Batch: 5, KeepOld: true,
				DropDelay: time.Millisecond}, ps...)
			if err != nil {
				t.Fatal(err)
			}
			dump := map[string]map[string][]string{}
			for i, p := range ps {
				live, rebuilt := projections.TablesFor(p, ""), projections.TablesFor(p, "g1")
				if res[i].Parked != 0 {
					t.Fatalf("rebuild of %s parked %d events", p.Name(), res[i].Parked)
				}
				assertSameSets(t, db, p, live, rebuilt)
				assertSameSets(t, db, p, live, projectiontest.Rebuilt(t, db, store, p))
				dump[p.Name()] = projectiontest.Dump(t, db, live)
			}
			var name string
			if err := db.SQL.QueryRow(`SELECT name FROM ` + projections.TablesFor(board.Projection(), "").Name("contacts") +
				` WHERE contact_id = 'c1'`).Scan(&name); err != nil {
				t.Fatal(err)
			}
			if name != "Aiko\uFFFD Sato" {
				t.Fatalf("board contact name %q, want the NUL as U+FFFD", name)
			}
			mu.Lock()
			dumps[db.Dialect] = dump
			mu.Unlock()
		})
	})
	if t.Failed() {
		return
	}
	sqlite, postgres := dumps[projections.SQLite], dumps[projections.Postgres]
	for name, tables := range sqlite {
		for table, rows := range tables {
			if !reflect.DeepEqual(rows, postgres[name][table]) {
				t.Errorf("%s %s differs between SQLite and PostgreSQL:\nsqlite:   %s\npostgres: %s", name, table,
					strings.Join(rows, "\n          "), strings.Join(postgres[name][table], "\n          "))
			}
		}
	}
}
