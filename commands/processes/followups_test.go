package processes_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/commands/processes"
	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/domain/settings"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/wmstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// automation runs every process manager but DealWon over one store.
type automation struct {
	store eventstore.Store
	cmds  *commands.Handler
	cfg   processes.Config
	procs []processes.Process
}

func newAutomation(t *testing.T, store eventstore.Store, zone *time.Location) *automation {
	t.Helper()
	cmds := commands.NewHandler(store)
	cfg := processes.Config{
		Commands: cmds,
		NewSubscriber: func(group string) (message.Subscriber, error) {
			return wmstore.NewSubscriber(store, wmstore.SubscriberConfig{ConsumerGroup: group, NackDelay: 10 * time.Millisecond,
				PollInterval: 20 * time.Millisecond}, nil)
		},
		Decode: wmstore.EventFromMessage, RetryInterval: time.Millisecond, MaxRetryDelay: 10 * time.Millisecond,
		RestartDelay: 20 * time.Millisecond, Zone: zone, Logger: watermill.NewStdLogger(false, false),
	}
	a := &automation{store: store, cmds: cmds, cfg: cfg}
	hot, err := processes.NewHotLead(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.procs = append(a.procs, hot)
	for _, build := range []func(processes.Config) (*processes.FollowUp, error){processes.NewHotLeadHandoff,
		processes.NewNPSFollowUp, processes.NewSupportTicketFollowUp, processes.NewOnboarding} {
		p, err := build(cfg)
		if err != nil {
			t.Fatal(err)
		}
		a.procs = append(a.procs, p)
	}
	return a
}

// run runs every process until the returned stop is called.
func (a *automation) run(t *testing.T) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, p := range a.procs {
		wg.Go(func() {
			if err := processes.Run(ctx, a.cfg, p); err != nil {
				t.Errorf("run %s: %v", p.Group(), err)
			}
		})
	}
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

// settle waits until every process has acknowledged the whole log, the events they
// appended included: the log's end must be at least at, and must hold still for a while, with
// every group there. (On PostgreSQL an event is read only once every transaction that took a
// position before it has ended, in the whole cluster: the end can lag behind the last append.)
func (a *automation) settle(t *testing.T, at int64) {
	t.Helper()
	cps := a.store.(eventstore.Checkpoints)
	// Long: other transactions of the cluster can hold the end back for many seconds.
	deadline := time.Now().Add(2 * time.Minute)
	var stableSince time.Time
	last := int64(-1)
	for {
		head := headOf(t, a.store)
		done := head >= at
		for _, p := range a.procs {
			acked, err := cps.LoadCheckpoint(context.Background(), wmstore.CheckpointName(p.Group(), wmstore.AllTopic))
			if err != nil {
				t.Fatal(err)
			}
			done = done && acked >= head
		}
		switch {
		case !done || head != last:
			stableSince, last = time.Time{}, head
		case stableSince.IsZero():
			stableSince = time.Now()
		case time.Since(stableSince) > 300*time.Millisecond:
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the processes did not catch up with position %d", head)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func headOf(t *testing.T, store eventstore.Store) int64 {
	t.Helper()
	var head int64
	for from := int64(0); ; {
		batch, err := store.ReadAll(context.Background(), from, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(batch) == 0 {
			return head
		}
		head = batch[len(batch)-1].Position
		from = head
	}
}

// resetGroups makes the next run deliver the whole log again: a replay from scratch.
func (a *automation) resetGroups(t *testing.T) {
	t.Helper()
	for _, p := range a.procs {
		if err := a.store.(eventstore.Checkpoints).SaveCheckpoint(context.Background(), wmstore.CheckpointName(p.Group(), wmstore.AllTopic), 0); err != nil {
			t.Fatal(err)
		}
	}
}

// taskEvents are the task_scheduled and became_hot events of the contact, by actor.
func taskEvents(t *testing.T, cmds *commands.Handler, contactID string) (tasks []eventstore.Event, hot []eventstore.Event) {
	t.Helper()
	history, err := cmds.History(context.Background(), contact.StreamName(contactID))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range history {
		switch e.Type {
		case contact.TypeTaskScheduled:
			tasks = append(tasks, e)
		case contact.TypeBecameHot:
			hot = append(hot, e)
		}
	}
	return tasks, hot
}

func TestFollowUpsScheduleEachTaskOnce(t *testing.T) {
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	projectiontest.ForEachBackend(t, func(t *testing.T, store eventstore.Store, _ *projections.DB) {
		ctx := context.Background()
		a := newAutomation(t, store, tokyo)
		rep := commands.Meta{Actor: "rep-a", CorrelationID: "corr-7"}
		c, err := a.cmds.CreateContact(ctx, rep, commands.CreateContact{Name: "Yui Sato", Channel: "seminar", Owner: "rep-a"})
		if err != nil {
			t.Fatal(err)
		}
		touch := func(kind string) int64 {
			t.Helper()
			res, err := a.cmds.RecordTouchpoint(ctx, rep, commands.RecordTouchpoint{ContactID: c.ID, Kind: kind})
			if err != nil {
				t.Fatal(err)
			}
			return res.Position
		}
		survey := func(nps int) {
			t.Helper()
			if _, err := a.cmds.RecordSurvey(ctx, rep, commands.RecordSurvey{ContactID: c.ID, NPS: nps}); err != nil {
				t.Fatal(err)
			}
		}
		// 20 + 25 = 45 is below 50; the second meeting takes it to 65: hot. The call after it
		// starts above the threshold: no second crossing.
		touch("meeting")
		touch("inquiry")
		stop := a.run(t)
		touch("meeting")
		touch("call")
		survey(10)
		survey(7) // a drop of 3: follow-up
		survey(8) // neither
		survey(5) // a detractor
		touch("support_ticket")
		d, err := a.cmds.OpenDeal(ctx, rep, commands.OpenDeal{ContactID: c.ID, Title: "Annual plan", Amount: 1000, Currency: "JPY", Owner: "rep-b"})
		if err != nil {
			t.Fatal(err)
		}
		won, err := a.cmds.WinDeal(ctx, rep, commands.WinDeal{DealID: d.ID})
		if err != nil {
			t.Fatal(err)
		}
		a.settle(t, won.Position)

		today := domain.DateIn(time.Now(), tokyo)
		plus := func(days int) domain.Date { return domain.DateIn(time.Now().In(tokyo).AddDate(0, 0, days), tokyo) }
		want := []struct {
			actor, title string
			due          domain.Date
			assignee     string
		}{
			{processes.HandoffActor, "Hot lead (score", today, "rep-a"},
			{processes.NPSActor, "NPS dropped from 10 to 7", plus(1), "rep-a"},
			{processes.NPSActor, "NPS 5 (detractor)", plus(1), "rep-a"},
			{processes.SupportTicketActor, "Support ticket", today, "rep-a"},
			{processes.OnboardingActor, "Onboarding check: Annual plan", plus(7), "rep-b"},
		}
		check := func(when string) {
			t.Helper()
			tasks, hot := taskEvents(t, a.cmds, c.ID)
			if len(hot) != 1 || hot[0].Metadata.Actor != processes.HotLeadActor || hot[0].Metadata.CorrelationID != "corr-7" {
				t.Fatalf("%s: became_hot events %+v", when, hot)
			}
			var got []string
			for _, e := range tasks {
				ev, err := a.cmds.Registry().Decode(e.Type, e.Data)
				if err != nil {
					t.Fatal(err)
				}
				ts := ev.(*contact.TaskScheduled)
				got = append(got, e.Metadata.Actor+"|"+ts.Title+"|"+string(ts.Due)+"|"+ts.Assignee)
				if e.Metadata.CausationID == "" || e.Metadata.CausationID == e.Metadata.CommandID || e.Metadata.CorrelationID != "corr-7" {
					t.Errorf("%s: task %q has causation %q, correlation %q", when, ts.Title, e.Metadata.CausationID, e.Metadata.CorrelationID)
				}
			}
			if len(got) != len(want) {
				t.Fatalf("%s: tasks %q, want %d", when, got, len(want))
			}
			for _, w := range want {
				if !slices.ContainsFunc(got, func(g string) bool {
					f := strings.Split(g, "|")
					return f[0] == w.actor && strings.HasPrefix(f[1], w.title) && f[2] == string(w.due) && f[3] == w.assignee
				}) {
					t.Errorf("%s: no task %+v in %q", when, w, got)
				}
			}
		}
		check("live")

		// Redeliveries, concurrent, of every event; then a replay of the whole log.
		all := projectiontest.AllEvents(t, store)
		var wg sync.WaitGroup
		for _, p := range a.procs {
			for range 2 {
				wg.Go(func() {
					for _, e := range all {
						if err := p.Handle(ctx, e); err != nil {
							t.Errorf("%s redelivered %s: %v", p.Group(), e.Type, err)
						}
					}
				})
			}
		}
		wg.Wait()
		check("redelivered")
		stop()
		a.resetGroups(t)
		a.run(t)
		a.settle(t, won.Position)
		check("replayed")

		// Switched off in the settings: a later ticket schedules nothing.
		procs := settings.Defaults().Processes
		procs.SupportTicket = false
		if _, err := a.cmds.ChangeProcessSettings(ctx, commands.Meta{Actor: "admin", Reason: "handled by the help desk"},
			commands.ChangeProcessSettings{Processes: procs}); err != nil {
			t.Fatal(err)
		}
		a.settle(t, touch("support_ticket"))
		check("switched off")
	})
}

// An imported touchpoint (business time long before it was recorded) is history: no task.
func TestFollowUpsLeaveImportedHistoryAlone(t *testing.T) {
	projectiontest.ForEachBackend(t, func(t *testing.T, store eventstore.Store, _ *projections.DB) {
		ctx := context.Background()
		a := newAutomation(t, store, time.UTC)
		c, err := a.cmds.CreateContact(ctx, commands.Meta{Actor: "import"}, commands.CreateContact{Name: "Old Customer", Channel: "referral"})
		if err != nil {
			t.Fatal(err)
		}
		old := commands.Meta{Actor: "import", OccurredAt: time.Now().AddDate(-1, 0, 0)}
		tp, err := a.cmds.RecordTouchpoint(ctx, old, commands.RecordTouchpoint{ContactID: c.ID, Kind: "support_ticket"})
		if err != nil {
			t.Fatal(err)
		}
		a.run(t)
		a.settle(t, tp.Position)
		if tasks, _ := taskEvents(t, a.cmds, c.ID); len(tasks) != 0 {
			t.Fatalf("imported history scheduled %d tasks", len(tasks))
		}
	})
}

// A contact merged into another takes no more commands: the follow-up of an event of its own,
// handled after the merge (a deal of the duplicate won later, a ticket the process had not
// reached yet), is scheduled once for the contact it was merged into, through every later
// merge, also when the event is delivered again; and the deal won moves that contact to won.
func TestFollowUpsOfAMergedContactGoToTheSurvivor(t *testing.T) {
	projectiontest.ForEachBackend(t, func(t *testing.T, store eventstore.Store, _ *projections.DB) {
		ctx := context.Background()
		a := newAutomation(t, store, time.UTC)
		rep := commands.Meta{Actor: "rep-a"}
		contactOf := func(name, owner string) string {
			t.Helper()
			c, err := a.cmds.CreateContact(ctx, rep, commands.CreateContact{Name: name, Channel: "seminar", Owner: owner})
			if err != nil {
				t.Fatal(err)
			}
			return c.ID
		}
		duplicate, middle, survivor := contactOf("Yui Sato", "rep-a"), contactOf("Yui Satou", "rep-c"), contactOf("Sato Yui", "rep-d")
		if _, err := a.cmds.RecordTouchpoint(ctx, rep, commands.RecordTouchpoint{ContactID: duplicate, Kind: "support_ticket"}); err != nil {
			t.Fatal(err)
		}
		d, err := a.cmds.OpenDeal(ctx, rep, commands.OpenDeal{ContactID: duplicate, Title: "Annual plan", Amount: 1000, Currency: "JPY", Owner: "rep-b"})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range [][2]string{{duplicate, middle}, {middle, survivor}} {
			if _, err := a.cmds.MergeContact(ctx, rep, commands.MergeContact{ContactID: m[0], Into: m[1]}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := a.cmds.WinDeal(ctx, rep, commands.WinDeal{DealID: d.ID}); err != nil {
			t.Fatal(err)
		}
		all := projectiontest.AllEvents(t, store)
		dealWon, err := processes.NewDealWon(a.cfg)
		if err != nil {
			t.Fatal(err)
		}
		for round := range 2 { // the second: every event delivered again
			for _, e := range all {
				if err := dealWon.Handle(ctx, e); err != nil {
					t.Fatalf("round %d: the deal-won process handled %s: %v", round, e.Type, err)
				}
			}
			for _, p := range a.procs {
				for _, e := range all {
					if err := p.Handle(ctx, e); err != nil {
						t.Fatalf("round %d: %s handled %s: %v", round, p.Group(), e.Type, err)
					}
				}
			}
		}
		for _, tt := range []struct {
			contact string
			want    []string
		}{
			{duplicate, nil},
			{middle, nil},
			{survivor, []string{processes.SupportTicketActor + "|rep-d", processes.OnboardingActor + "|rep-b"}},
		} {
			tasks, _ := taskEvents(t, a.cmds, tt.contact)
			var got []string
			for _, e := range tasks {
				ev, err := a.cmds.Registry().Decode(e.Type, e.Data)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, e.Metadata.Actor+"|"+ev.(*contact.TaskScheduled).Assignee)
			}
			slices.Sort(got)
			slices.Sort(tt.want)
			if !slices.Equal(got, tt.want) {
				t.Errorf("tasks of %s: %q, want %q", tt.contact, got, tt.want)
			}
		}
		// The deal won moves the survivor to won, once.
		won := 0
		history, err := a.cmds.History(ctx, contact.StreamName(survivor))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range history {
			if e.Type == contact.TypePhaseChanged && e.Metadata.Actor == processes.DealWonActor {
				won++
			}
		}
		c, err := a.cmds.Contact(ctx, survivor, commands.At{})
		if err != nil {
			t.Fatal(err)
		}
		if c.Phase != contact.Won || won != 1 {
			t.Errorf("the survivor is at %s after %d phase changes of the deal won, want won after 1", c.Phase, won)
		}
	})
}
