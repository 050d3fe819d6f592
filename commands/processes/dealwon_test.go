package processes_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/commands/processes"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/domain/deal"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/sqlite"
	"github.com/eventcrm/crm/eventstore/wmstore"
)

type fixture struct {
	store *sqlite.Store
	cmds  *commands.Handler
	cfg   processes.Config
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "crm.db"), sqlite.WithPollInterval(50*time.Millisecond))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { store.Close() })
	cmds := commands.NewHandler(store)
	return &fixture{store: store, cmds: cmds, cfg: processes.Config{
		Commands: cmds,
		NewSubscriber: func(group string) (message.Subscriber, error) {
			return wmstore.NewSubscriber(store, wmstore.SubscriberConfig{ConsumerGroup: group, NackDelay: 10 * time.Millisecond}, nil)
		},
		Decode:        wmstore.EventFromMessage,
		RetryInterval: time.Millisecond,
		MaxRetryDelay: 10 * time.Millisecond,
		RestartDelay:  20 * time.Millisecond,
	}}
}

// run runs a fresh DealWon until the returned stop is called.
func (f *fixture) run(t *testing.T) (stop func()) {
	t.Helper()
	m, err := processes.NewDealWon(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// caughtUp waits until the process's consumer group has acknowledged the whole log.
func (f *fixture) caughtUp(t *testing.T) {
	t.Helper()
	all, err := f.store.ReadAll(context.Background(), 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	head := all[len(all)-1].Position
	name := wmstore.CheckpointName(processes.DealWonGroup, wmstore.AllTopic)
	deadline := time.Now().Add(20 * time.Second)
	for {
		acked, err := f.store.LoadCheckpoint(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		if acked >= head {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the process acknowledged up to %d, the log ends at %d", acked, head)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// resetGroup makes the next run deliver the whole log again: a replay from scratch.
func (f *fixture) resetGroup(t *testing.T) {
	t.Helper()
	if err := f.store.SaveCheckpoint(context.Background(), wmstore.CheckpointName(processes.DealWonGroup, wmstore.AllTopic), 0); err != nil {
		t.Fatal(err)
	}
}

var user = commands.Meta{Actor: "alice"}

func (f *fixture) contact(t *testing.T, phases ...string) string {
	t.Helper()
	ctx := context.Background()
	res, err := f.cmds.CreateContact(ctx, user, commands.CreateContact{Name: "Yui Sato", Channel: "seminar"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range phases {
		if _, err := f.cmds.ChangePhase(ctx, user, commands.ChangePhase{ContactID: res.ID, Phase: p, Reason: "test"}); err != nil {
			t.Fatalf("move to %s: %v", p, err)
		}
	}
	return res.ID
}

// winDeal opens a deal for the contact and wins it; it returns the deal id and the
// deal.won event.
func (f *fixture) winDeal(t *testing.T, contactID, correlation string) (string, eventstore.Event) {
	t.Helper()
	ctx := context.Background()
	d, err := f.cmds.OpenDeal(ctx, user, commands.OpenDeal{ContactID: contactID, Title: "Annual plan", Amount: 120000, Currency: "JPY"})
	if err != nil {
		t.Fatal(err)
	}
	m := user
	m.CorrelationID = correlation
	m.OccurredAt = time.Date(2025, 4, 1, 9, 30, 0, 0, time.UTC)
	if _, err := f.cmds.WinDeal(ctx, m, commands.WinDeal{DealID: d.ID}); err != nil {
		t.Fatal(err)
	}
	events, err := f.cmds.History(ctx, deal.StreamName(d.ID))
	if err != nil {
		t.Fatal(err)
	}
	last := events[len(events)-1]
	if last.Type != deal.TypeWon {
		t.Fatalf("last deal event is %s", last.Type)
	}
	return d.ID, last
}

// causedBy returns the phase changes of the contact caused by the event id.
func (f *fixture) causedBy(t *testing.T, contactID, id string) []contact.PhaseChanged {
	t.Helper()
	events, err := f.cmds.History(context.Background(), contact.StreamName(contactID))
	if err != nil {
		t.Fatal(err)
	}
	var changes []contact.PhaseChanged
	for _, e := range events {
		if e.Metadata.CausationID != id {
			continue
		}
		if e.Type != contact.TypePhaseChanged || e.Metadata.Actor != processes.DealWonActor {
			t.Fatalf("event %s %s caused by %s", e.Type, e.Metadata.Actor, id)
		}
		var pc contact.PhaseChanged
		if err := json.Unmarshal(e.Data, &pc); err != nil {
			t.Fatal(err)
		}
		changes = append(changes, pc)
	}
	return changes
}

func phaseOf(t *testing.T, f *fixture, contactID string) contact.Phase {
	t.Helper()
	c, err := f.cmds.Contact(context.Background(), contactID, commands.At{})
	if err != nil {
		t.Fatal(err)
	}
	return c.Phase
}

func TestDealWonMovesTheContactToWonExactlyOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	contactID := f.contact(t, "approach", "discovery")
	dealID, won := f.winDeal(t, contactID, "corr-42")

	stop := f.run(t)
	f.caughtUp(t)
	if p := phaseOf(t, f, contactID); p != contact.Won {
		t.Fatalf("contact in %s, want won", p)
	}
	// Redeliveries: direct, concurrent, and a replay of the whole log after a restart.
	m, err := processes.NewDealWon(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if err := m.Handle(ctx, won); err != nil {
				t.Errorf("handle again: %v", err)
			}
		})
	}
	wg.Wait()
	stop()
	f.resetGroup(t)
	stop = f.run(t)
	f.caughtUp(t)
	stop()
	f.run(t)
	f.caughtUp(t)

	changes := f.causedBy(t, contactID, won.ID)
	want := contact.PhaseChanged{ContactID: contactID, From: contact.Discovery, To: contact.Won, Rule: contact.RuleSkipForward, Reason: "deal " + dealID + " won"}
	if len(changes) != 1 || changes[0] != want {
		t.Fatalf("phase changes caused by the deal: %+v, want exactly %+v", changes, want)
	}
	events, err := f.cmds.History(ctx, contact.StreamName(contactID))
	if err != nil {
		t.Fatal(err)
	}
	last := events[len(events)-1]
	if last.Metadata.CausationID != won.ID || last.Metadata.CorrelationID != "corr-42" || !last.OccurredAt.Equal(won.OccurredAt) {
		t.Fatalf("phase change metadata %+v at %v, want causation %s, correlation corr-42, at %v",
			last.Metadata, last.OccurredAt, won.ID, won.OccurredAt)
	}
}

func TestDealWonWinsBackALostOrChurnedContact(t *testing.T) {
	t.Parallel()
	for _, path := range [][]string{{"lost"}, {"approach", "discovery", "proposal", "won", "churned"}} {
		t.Run(path[len(path)-1], func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			contactID := f.contact(t, path...)
			dealID, won := f.winDeal(t, contactID, "corr-7")
			stop := f.run(t)
			f.caughtUp(t)
			stop()
			f.resetGroup(t)
			f.run(t)
			f.caughtUp(t)

			reason := "deal " + dealID + " won"
			from := contact.Phase(path[len(path)-1])
			want := []contact.PhaseChanged{
				{ContactID: contactID, From: from, To: contact.Approach, Rule: contact.RuleWinBack, Reason: reason},
				{ContactID: contactID, From: contact.Approach, To: contact.Won, Rule: contact.RuleSkipForward, Reason: reason},
			}
			changes := f.causedBy(t, contactID, won.ID)
			if len(changes) != 2 || changes[0] != want[0] || changes[1] != want[1] {
				t.Fatalf("phase changes %+v, want %+v", changes, want)
			}
		})
	}
}

// After a crash between the two steps, the redelivery finishes the second one only.
func TestDealWonFinishesAnInterruptedWinBack(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	contactID := f.contact(t, "lost")
	dealID, won := f.winDeal(t, contactID, "corr-9")
	// The first step as the process issues it, then the crash.
	_, err := f.cmds.ChangePhase(ctx, commands.Meta{Actor: processes.DealWonActor, CausationID: won.ID, CorrelationID: "corr-9",
		IdempotencyKey: "deal-won/" + won.ID + "/win-back", Reason: "deal " + dealID + " won", OccurredAt: won.OccurredAt},
		commands.ChangePhase{ContactID: contactID, Phase: "approach", Reason: "deal " + dealID + " won"})
	if err != nil {
		t.Fatal(err)
	}
	f.run(t)
	f.caughtUp(t)
	changes := f.causedBy(t, contactID, won.ID)
	if len(changes) != 2 || changes[0].To != contact.Approach || changes[1].To != contact.Won {
		t.Fatalf("phase changes %+v", changes)
	}
}

func TestDealWonLeavesAContactAlone(t *testing.T) {
	t.Parallel()
	t.Run("already a customer", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		contactID := f.contact(t, "approach", "discovery", "proposal", "won", "follow_up")
		_, won := f.winDeal(t, contactID, "")
		f.run(t)
		f.caughtUp(t)
		if changes := f.causedBy(t, contactID, won.ID); len(changes) != 0 || phaseOf(t, f, contactID) != contact.FollowUp {
			t.Fatalf("changes %+v", changes)
		}
	})
	t.Run("moved by someone after the deal was won", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		contactID := f.contact(t, "approach")
		_, won := f.winDeal(t, contactID, "")
		if _, err := f.cmds.ChangePhase(context.Background(), user, commands.ChangePhase{ContactID: contactID, Phase: "lost", Reason: "bought elsewhere"}); err != nil {
			t.Fatal(err)
		}
		f.run(t)
		f.caughtUp(t)
		if changes := f.causedBy(t, contactID, won.ID); len(changes) != 0 || phaseOf(t, f, contactID) != contact.Lost {
			t.Fatalf("changes %+v", changes)
		}
	})
	t.Run("a replay after the customer churned", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		contactID := f.contact(t, "approach", "discovery", "proposal")
		_, won := f.winDeal(t, contactID, "")
		stop := f.run(t)
		f.caughtUp(t)
		stop()
		if _, err := f.cmds.ChangePhase(context.Background(), user, commands.ChangePhase{ContactID: contactID, Phase: "churned", Reason: "cancelled"}); err != nil {
			t.Fatal(err)
		}
		f.resetGroup(t)
		f.run(t)
		f.caughtUp(t)
		changes := f.causedBy(t, contactID, won.ID)
		if len(changes) != 1 || changes[0].Rule != contact.RuleForward || phaseOf(t, f, contactID) != contact.Churned {
			t.Fatalf("changes %+v, phase %s", changes, phaseOf(t, f, contactID))
		}
	})
}

func TestNewDealWonRefusesAnIncompleteConfig(t *testing.T) {
	if _, err := processes.NewDealWon(processes.Config{}); err == nil {
		t.Fatal("no error")
	}
}

// Deliveries of one event racing each other (two consumers of the group, a redelivery while
// the first is still running) issue the command once.
func TestConcurrentDeliveriesOfOneDealWonIssueOneCommand(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, path := range [][]string{{"approach"}, {"lost"}} {
		contactID := f.contact(t, path...)
		_, won := f.winDeal(t, contactID, "")
		m, err := processes.NewDealWon(f.cfg)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				if err := m.Handle(context.Background(), won); err != nil {
					t.Errorf("handle: %v", err)
				}
			})
		}
		wg.Wait()
		changes := f.causedBy(t, contactID, won.ID)
		if want := map[string]int{"approach": 1, "lost": 2}[path[0]]; len(changes) != want || changes[len(changes)-1].To != contact.Won {
			t.Fatalf("from %s: phase changes %+v, want %d ending at won", path[0], changes, want)
		}
	}
}
