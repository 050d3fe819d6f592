package hooks_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/hooks"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// The read model of the subscriptions follows their events (created, changed, disabled,
// enabled, deleted), and the live tables equal a rebuild from the log, on both backends.
func TestLiveEqualsRebuilt(t *testing.T) {
	projectiontest.ForEachBackend(t, func(t *testing.T, store eventstore.Store, db *projections.DB) {
		ctx := context.Background()
		p := hooks.Projection()
		r := projectiontest.NewRunner(t, projectiontest.RunnerConfig(store, db), p)
		projectiontest.Start(t, r)
		cmds := commands.NewHandler(store)
		admin := commands.Meta{Actor: "root", Reason: "tools"}
		must := func(res commands.Result, err error) commands.Result {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
			return res
		}
		a := must(cmds.CreateWebhook(ctx, admin, commands.CreateWebhook{URL: "https://a.example/h", EventTypes: []string{"*"}, Description: "chat"}))
		b := must(cmds.CreateWebhook(ctx, admin, commands.CreateWebhook{URL: "https://b.example/h", EventTypes: []string{"deal.*"}}))
		c := must(cmds.CreateWebhook(ctx, admin, commands.CreateWebhook{URL: "https://c.example/h", EventTypes: []string{"contact.*"}}))
		url, types := "https://a.example/v2", []string{"contact.*", "deal.won.v1"}
		must(cmds.ChangeWebhook(ctx, admin, commands.ChangeWebhook{SubscriptionID: a.ID, URL: &url, EventTypes: &types}))
		must(cmds.SwitchWebhook(ctx, commands.Meta{Actor: "webhook-delivery", Reason: "failing since noon"},
			commands.SwitchWebhook{SubscriptionID: b.ID, Automatic: true}))
		must(cmds.SwitchWebhook(ctx, admin, commands.SwitchWebhook{SubscriptionID: a.ID}))
		last := must(cmds.SwitchWebhook(ctx, admin, commands.SwitchWebhook{SubscriptionID: a.ID, Enabled: true}))
		last = must(cmds.DeleteWebhook(ctx, admin, commands.DeleteWebhook{SubscriptionID: c.ID}))
		projectiontest.WaitCheckpoint(t, db, p, last.Position)

		list, err := hooks.List(ctx, db, projections.TablesFor(p, ""), "")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range list {
			got = append(got, fmt.Sprintf("%s %v %v %q start %d by %s", s.URL, s.EventTypes, s.Enabled, s.DisabledReason, s.StartPosition, s.CreatedBy))
		}
		want := []string{
			fmt.Sprintf(`https://a.example/v2 [contact.* deal.won.v1] true "" start %d by root`, a.Position),
			fmt.Sprintf(`https://b.example/h [deal.*] false "failing since noon" start %d by root`, b.Position),
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("subscriptions\n%v\nwant\n%v", got, want)
		}
		projectiontest.AssertSameAsRebuild(t, db, store, p)
	})
}
