package projections_test

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// unusualHistory has what commands never write but Apply folds anyway: a contact and a deal
// created twice, events of a contact and a deal never created, a task completed twice and one
// never scheduled, a loss of a deal reopened twice. The batch path must then leave the tables
// as Apply does: where it is not sure, it hands the batch to Apply.
const unusualHistory = `
2024-01-01T09:00:00Z contact-c1 contact.created.v1 {"contact_id":"c1","name":"Aiko","channel":"web_form","owner":"rep-a"}
2024-01-02T09:00:00Z contact-c1 contact.touchpoint_recorded.v1 {"contact_id":"c1","touchpoint_id":"t1","kind":"call","phase":"lead"}
2024-01-03T09:00:00Z contact-c1 contact.phase_changed.v1 {"contact_id":"c1","from":"lead","to":"approach","rule":"forward"}
2024-01-04T09:00:00Z contact-c1 contact.phase_changed.v1 {"contact_id":"c1","from":"approach","to":"discovery","rule":"forward"}
2024-01-05T09:00:00Z contact-c1 contact.created.v1 {"contact_id":"c1","name":"Aiko again","channel":"seminar","owner":"rep-b"}
2024-01-06T09:00:00Z contact-c1 contact.phase_changed.v1 {"contact_id":"c1","from":"lead","to":"approach","rule":"forward"}
2024-01-06T10:00:00Z contact-c9 contact.details_changed.v1 {"contact_id":"c9","name":"Nobody","segment":"smb"}
2024-01-06T11:00:00Z contact-c9 contact.owner_changed.v1 {"contact_id":"c9","from":"a","to":"b"}
2024-01-07T09:00:00Z contact-c1 contact.task_scheduled.v1 {"contact_id":"c1","task_id":"k1","title":"call","due":"2024-01-10","assignee":"rep-a"}
2024-01-08T09:00:00Z contact-c1 contact.task_completed.v1 {"contact_id":"c1","task_id":"k1"}
2024-01-09T09:00:00Z contact-c1 contact.task_completed.v1 {"contact_id":"c1","task_id":"k1"}
2024-01-09T10:00:00Z contact-c1 contact.task_completed.v1 {"contact_id":"c1","task_id":"k0"}
2024-01-09T11:00:00Z contact-c1 contact.task_scheduled.v1 {"contact_id":"c1","task_id":"k1","title":"again","due":"2024-02-10","assignee":"rep-a"}
2024-01-10T09:00:00Z deal-d1 deal.opened.v1 {"deal_id":"d1","contact_id":"c1","title":"Plan","amount":{"amount":1000,"currency":"JPY"},"owner":"rep-a","stage":"qualification"}
2024-01-11T09:00:00Z deal-d1 deal.stage_changed.v1 {"deal_id":"d1","from":"qualification","to":"proposal"}
2024-01-12T09:00:00Z deal-d1 deal.lost.v1 {"deal_id":"d1","contact_id":"c1","from_stage":"proposal","reason":"price","amount":{"amount":1000,"currency":"JPY"}}
2024-01-13T09:00:00Z deal-d1 deal.reopened.v1 {"deal_id":"d1","from":"lost","to":"negotiation"}
2024-01-14T09:00:00Z deal-d1 deal.reopened.v1 {"deal_id":"d1","from":"lost","to":"negotiation"}
2024-01-15T09:00:00Z deal-d1 deal.opened.v1 {"deal_id":"d1","contact_id":"c1","title":"Plan B","amount":{"amount":2000,"currency":"USD"},"owner":"rep-b","stage":"qualification"}
2024-01-16T09:00:00Z deal-d1 deal.won.v1 {"deal_id":"d1","contact_id":"c1","from_stage":"qualification","amount":{"amount":2500,"currency":"USD"},"closed_at":"2024-01-16"}
2024-01-17T09:00:00Z deal-d9 deal.stage_changed.v1 {"deal_id":"d9","from":"qualification","to":"proposal"}
2024-01-18T09:00:00Z contact-c1 contact.survey_recorded.v1 {"contact_id":"c1","survey_id":"s1","nps":7}
`

func TestBatchPathEqualsApplyOnUnusualHistories(t *testing.T) {
	events, err := projectiontest.ParseHistory(strings.NewReader(unusualHistory))
	if err != nil {
		t.Fatal(err)
	}
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		ctx := context.Background()
		for _, p := range readModels() {
			// Apply, event by event, as a rebuild without a batch path applies them: the events
			// of the deal never opened are refused and parked.
			want := projections.TablesFor(p, "apply")
			projectiontest.MustApply(t, db, p, want, nil)
			if _, err := db.ApplyBatch(ctx, noBatch{p}, want, events); err != nil {
				t.Fatal(err)
			}
			for _, size := range []int{1, 3, 7, len(events)} {
				got := projections.TablesFor(p, "batch"+string(rune('a'+size%26)))
				projectiontest.MustApply(t, db, p, got, nil)
				for i := 0; i < len(events); i += size {
					if _, err := db.ApplyBatch(ctx, p, got, events[i:min(i+size, len(events))]); err != nil {
						t.Fatalf("%s, batches of %d: %v", p.Name(), size, err)
					}
				}
				if g, w := projectiontest.Dump(t, db, got), projectiontest.Dump(t, db, want); !reflect.DeepEqual(g, w) {
					t.Errorf("%s, batches of %d:\n--- batch path\n%v\n--- Apply\n%v", p.Name(), size, g, w)
				}
				if pg, pw := parkedStreams(t, db, got), parkedStreams(t, db, want); !reflect.DeepEqual(pg, pw) {
					t.Errorf("%s, batches of %d: parked %v, Apply parks %v", p.Name(), size, pg, pw)
				}
			}
		}
	})
}

// noBatch hides a projection's batch path.
type noBatch struct{ projections.Projection }

func parkedStreams(t *testing.T, db *projections.DB, set projections.Tables) []string {
	t.Helper()
	rows, err := db.SQL.Query(db.Dialect.Rebind(`SELECT event_id FROM projection_parked WHERE table_set = ? ORDER BY position`), set.Prefix())
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}
