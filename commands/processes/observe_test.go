package processes_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/eventcrm/crm/commands/processes"
	"github.com/eventcrm/crm/eventstore"
)

// outcomes records what a process reports to Config.Observe.
type outcomes struct {
	mu  sync.Mutex
	got []string
}

func (o *outcomes) observe(process, outcome string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got = append(o.got, process+" "+outcome)
}

func (o *outcomes) take() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	got := o.got
	o.got = nil
	return got
}

// Each event a process reacts to is reported once per delivery with its outcome; events of
// other kinds are not reported. A deal won: the deal-won process acts (the contact moves to
// won); the onboarding process skips it (its business time, 2025-04-01, is more than
// ImportAge before it was recorded: history being imported). The same event again: both skip
// (the deal-won process finds its change done). An event of another kind: nothing reported.
// A delivery whose reads fail (a context ended): both failed.
func TestProcessesReportTheirOutcomes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var o outcomes
	f.cfg.Observe = o.observe
	dealWon, err := processes.NewDealWon(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	onboarding, err := processes.NewOnboarding(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	contactID := f.contact(t, "approach")
	_, won := f.winDeal(t, contactID, "")
	history, err := f.cmds.History(context.Background(), "contact-"+contactID)
	if err != nil {
		t.Fatal(err)
	}
	created := history[0]
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()

	for _, tc := range []struct {
		name    string
		ctx     context.Context
		e       eventstore.Event
		wantErr bool
		want    []string
	}{
		{"deal won", context.Background(), won, false,
			[]string{"process:deal_won_contact_phase acted", "process:onboarding_follow_up skipped"}},
		{"the same event again", context.Background(), won, false,
			[]string{"process:deal_won_contact_phase skipped", "process:onboarding_follow_up skipped"}},
		{"an event of another kind", context.Background(), created, false, nil},
		{"reads failing", cancelled, won, true,
			[]string{"process:deal_won_contact_phase failed", "process:onboarding_follow_up failed"}},
	} {
		for _, p := range []interface {
			Handle(context.Context, eventstore.Event) error
		}{dealWon, onboarding} {
			if err := p.Handle(tc.ctx, tc.e); (err != nil) != tc.wantErr {
				t.Fatalf("%s: %T: error %v, want an error: %v", tc.name, p, err, tc.wantErr)
			}
		}
		if got := o.take(); !slices.Equal(got, tc.want) {
			t.Errorf("%s: reported %v, want %v", tc.name, got, tc.want)
		}
	}
}
