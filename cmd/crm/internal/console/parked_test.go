package console_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/eventcrm/crm/cmd/crm/internal/config"
	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/eventstore"
	"github.com/google/uuid"
)

// appendBehindTheCommands appends an event to the server's store as another writer would,
// without the commands' checks: the way to put an event no read model can apply in the log.
func (s *server) appendBehindTheCommands(t testing.TB, stream, typ, data string) {
	t.Helper()
	cfg := config.FromEnv(func(name string) string {
		for _, kv := range s.env {
			if k, v, ok := strings.Cut(kv, "="); ok && k == name {
				return v
			}
		}
		return ""
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := config.OpenStore(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := store.(io.Closer); ok {
		defer c.Close()
	}
	if _, err := store.Append(ctx, stream, eventstore.NoStream, []eventstore.EventData{{ID: uuid.NewString(), Type: typ,
		Data: []byte(data), Metadata: eventstore.Metadata{Actor: "another-writer"}}}); err != nil {
		t.Fatalf("append to %s: %v", stream, err)
	}
}

type parkedList struct {
	Parked []struct {
		ID         int64  `json:"id"`
		Projection string `json:"projection"`
		Position   int64  `json:"position"`
	} `json:"parked"`
}

// parked: an event the read models cannot apply (it moves a deal not opened yet) is parked;
// once the deal is opened, retried from the operations page, it is applied and leaves the list.
func parked(t *testing.T, s *server, tb *tab) {
	t.Run("a parked event retried from the browser", func(t *testing.T) {
		// The deal an admin's POST /v1/deals with this Idempotency-Key will open.
		key := "console-parked-" + uuid.NewString()
		dealID := commands.CreatedID("admin", key)
		s.appendBehindTheCommands(t, "deal-"+uuid.NewString(), "deal.stage_changed.v1",
			fmt.Sprintf(`{"deal_id":%q,"from":"qualification","to":"proposal"}`, dealID))
		var list parkedList
		deadline := time.Now().Add(time.Minute)
		for len(list.Parked) == 0 {
			if time.Now().After(deadline) {
				t.Fatal("the event that moves a deal not opened was not parked within a minute")
			}
			time.Sleep(200 * time.Millisecond) // the projections retry before they park: nothing to wait on
			s.call(t, "GET", "/v1/projections/parked", "", &list)
		}
		// Every read model that cannot apply it parks it, each in its own time: the list is
		// complete once every projection has passed the event.
		var projections struct {
			Projections []struct {
				Name       string `json:"name"`
				Checkpoint int64  `json:"checkpoint"`
			} `json:"projections"`
		}
		for behind := true; behind; {
			if time.Now().After(deadline) {
				t.Fatalf("the projections did not pass position %d within a minute: %+v", list.Parked[0].Position, projections.Projections)
			}
			time.Sleep(200 * time.Millisecond)
			s.call(t, "GET", "/v1/projections", "", &projections)
			behind = false
			for _, p := range projections.Projections {
				behind = behind || p.Checkpoint < list.Parked[0].Position
			}
		}
		s.call(t, "GET", "/v1/projections/parked", "", &list)
		tb.open(t, "ops")
		for _, p := range list.Parked {
			if n := eval[int](t, tb, fmt.Sprintf(`document.querySelectorAll('tr[data-parked="%d"] button[data-retry]').length`, p.ID)); n != 1 {
				t.Errorf("parked event %d (%s at %d) is not listed with a retry button", p.ID, p.Projection, p.Position)
			}
		}
		var contacts struct {
			Data struct {
				Contacts []struct {
					ID string `json:"contact_id"`
				} `json:"contacts"`
			} `json:"data"`
		}
		s.call(t, "GET", "/v1/contacts?limit=1", "", &contacts)
		var opened struct {
			ID       string `json:"id"`
			Position int64  `json:"position"`
		}
		s.call(t, "POST", "/v1/deals", fmt.Sprintf(`{"contact_id":%q,"title":"Opened after its move","amount":100000,"currency":"JPY"}`, contacts.Data.Contacts[0].ID),
			&opened, "Idempotency-Key", key)
		if opened.ID != dealID {
			t.Fatalf("the deal opened is %s, not %s", opened.ID, dealID)
		}
		s.call(t, "GET", fmt.Sprintf("/v1/pipeline/board?limit=1&min_position=%d", opened.Position), "", nil)
		for _, p := range list.Parked {
			tb.waitRender(t, chromedp.Click(chromedp.CSS(fmt.Sprintf(`tr[data-parked="%d"] button[data-retry]`, p.ID))))
			if n := eval[int](t, tb, fmt.Sprintf(`document.querySelectorAll('tr[data-parked="%d"]').length`, p.ID)); n != 0 {
				t.Errorf("parked event %d (%s) is still listed after its retry", p.ID, p.Projection)
			}
		}
		contains(t, "parked events", text(t, tb, "main"), "No parked events.")
		var after parkedList
		s.call(t, "GET", "/v1/projections/parked", "", &after)
		if len(after.Parked) != 0 {
			t.Errorf("still parked after the retries: %+v", after.Parked)
		}
		var b boardAnswer
		s.fresh(t, "/v1/pipeline/board?limit=500&stage=proposal", &b)
		found := false
		for _, c := range b.Data.Stages[0].Cards {
			found = found || c.DealID == dealID
		}
		if !found {
			t.Errorf("deal %s is not in proposal on the board after the retry", dealID)
		}
		tb.clean(t)
	})
}
