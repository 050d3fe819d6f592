package projections_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/rebuild"
)

// A log of contact.created.v1 and .v2 (as a log written before and after the name was split):
// the live read models, fed as the events arrive, equal a rebuild over the whole mixed log,
// and both show a v1 name as it was entered.
func TestMixedVersionsLiveEqualsRebuilt(t *testing.T) {
	projectiontest.ForEachBackend(t, func(t *testing.T, store eventstore.Store, db *projections.DB) {
		ctx := context.Background()
		ps := contactReadModels()
		r := projectiontest.NewRunner(t, projectiontest.RunnerConfig(store, db), ps...)
		projectiontest.Start(t, r)
		v1 := projectiontest.MustParseHistory(t, `
2024-01-05T09:00:00Z contact-c1 contact.created.v1 {"contact_id":"c1","name":"Aiko Tanaka","email":"aiko@example.jp","channel":"seminar","owner":"rep-a"}
2024-01-06T09:00:00Z contact-c1 contact.details_changed.v1 {"contact_id":"c1","name":"Aiko Suzuki"}
2024-01-07T09:00:00Z contact-c1 contact.phase_changed.v1 {"contact_id":"c1","from":"lead","to":"approach","rule":"forward"}`)
		for _, e := range v1 { // stored as v1, exactly as an older version wrote them
			typ, data := e.Stored()
			if _, err := store.Append(ctx, e.Stream, eventstore.AnyVersion, []eventstore.EventData{{ID: projectiontest.NewID(), Type: typ, Data: data, OccurredAt: e.OccurredAt}}); err != nil {
				t.Fatal(err)
			}
		}
		h := commands.NewHandler(store) // writes v2
		res, err := h.CreateContact(ctx, commands.Meta{Actor: "rep-b"}, commands.CreateContact{FamilyName: "佐藤", GivenName: "花子",
			FamilyNameReading: "サトウ", GivenNameReading: "ハナコ", Channel: "referral"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.UpdateContact(ctx, commands.Meta{Actor: "rep-b"}, commands.UpdateContact{ContactID: res.ID, GivenName: ptr("桜")}); err != nil {
			t.Fatal(err)
		}
		if _, err := h.UpdateContact(ctx, commands.Meta{Actor: "rep-b"}, commands.UpdateContact{ContactID: "c1", Email: ptr("a@example.jp")}); err != nil {
			t.Fatal(err)
		}
		if _, err := h.ScheduleTask(ctx, commands.Meta{Actor: "rep-a"}, commands.ScheduleTask{ContactID: "c1", Title: "call back", Due: "2024-02-01"}); err != nil {
			t.Fatal(err)
		}
		waitAll(t, db, store, ps)
		kinds := map[string]int{}
		for _, e := range projectiontest.AllEvents(t, store) {
			typ, _ := e.Stored()
			kinds[typ]++
		}
		if kinds["contact.created.v1"] != 1 || kinds["contact.created.v2"] != 1 || kinds["contact.details_changed.v1"] != 1 || kinds["contact.details_changed.v2"] != 2 {
			t.Fatalf("the log is not mixed: %v", kinds)
		}
		if _, err := rebuild.Rebuild(ctx, rebuild.RebuildConfig{DB: db, Store: store, Runner: r, KeepOld: true, DropDelay: time.Millisecond}, ps...); err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			assertSameSets(t, db, p, projections.TablesFor(p, ""), projections.TablesFor(p, "g1"))
		}
		var rows []string
		for _, table := range projectiontest.Dump(t, db, projections.TablesFor(readModels()[5], "g1")) {
			rows = append(rows, table...)
		}
		dump := strings.Join(rows, "\n")
		for _, name := range []string{"Aiko Suzuki", "佐藤 桜"} {
			if !strings.Contains(dump, name) {
				t.Errorf("the directory does not show %q:\n%s", name, dump)
			}
		}
	})
}

func ptr[T any](v T) *T { return &v }
