package projections_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
	_ "time/tzdata" // Asia/Tokyo, whatever the host has

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/domain/deal"
	"github.com/eventcrm/crm/domain/settings"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/analytics"
	"github.com/eventcrm/crm/projections/board"
	"github.com/eventcrm/crm/projections/churn"
	"github.com/eventcrm/crm/projections/diff"
	"github.com/eventcrm/crm/projections/directory"
	"github.com/eventcrm/crm/projections/hooks"
	"github.com/eventcrm/crm/projections/journey"
	"github.com/eventcrm/crm/projections/leadscore"
	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/rebuild"
	"github.com/eventcrm/crm/projections/schedule"
	"github.com/eventcrm/crm/projections/tasks"
	"github.com/eventcrm/crm/projections/timeline"
	"github.com/eventcrm/crm/projections/value"
)

func readModels() []projections.Projection {
	return []projections.Projection{board.Projection(), journey.Projection(), churn.Projection(),
		timeline.Projection(), tasks.Projection(), directory.Projection(), analytics.Projection(), value.Projection(tokyoZone()),
		leadscore.Projection(), schedule.Projection(time.UTC), hooks.Projection()}
}

// contactReadModels are the read models a history of contacts alone fills: every one but
// the webhook subscriptions'.
func contactReadModels() []projections.Projection {
	ps := readModels()
	return slices.DeleteFunc(ps, func(p projections.Projection) bool { return p.Name() == hooks.Name })
}

// tokyoZone is the business zone of the read models that take one: not UTC, so that a
// business month differs from a UTC one somewhere in the workload.
func tokyoZone() *time.Location {
	loc, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		panic(err) // the zone database is built into the test binary (time/tzdata)
	}
	return loc
}

// workload issues random commands through the real command handler: creations, detail and
// owner changes, forward, backward and exit moves with win-backs, touchpoints, surveys,
// tasks, deals moved back and forth, won, lost and reopened, with stale If-Match versions
// (refused), idempotent retries (replayed) and concurrent writers on the same streams
// (conflicts the handler retries). Refusals are part of it: the domain decides.
type workload struct {
	h *commands.Handler

	mu       sync.Mutex
	contacts []string
	deals    []string
	tasks    map[string][]string // contact id -> task ids
	versions map[string]int64    // last version seen per aggregate
	phase    map[string]int      // index in phases of each contact's phase, as far as known
	keys     []retry             // commands to retry with their idempotency key
	accepted int
	refused  int
	replayed int
	clock    time.Time
}

type retry struct {
	key  string
	meta commands.Meta // who sent it and its business time: a retry sends them again
	run  func(commands.Meta) (commands.Result, error)
}

func newWorkload(h *commands.Handler) *workload {
	return &workload{h: h, tasks: map[string][]string{}, versions: map[string]int64{}, phase: map[string]int{},
		clock: time.Date(2024, 1, 1, 9, 0, 0, 0, time.UTC)}
}

var (
	phases   = []string{"lead", "approach", "discovery", "proposal", "won", "follow_up", "loyal", "lost", "churned"}
	stages   = []string{"qualification", "needs_analysis", "proposal", "negotiation"}
	kinds    = []string{"call", "email", "meeting", "visit", "webinar", "email_open", "support_ticket"}
	channels = []string{"web_form", "seminar", "exhibition", "referral", "social_ad"}
	owners   = []string{"rep-a", "rep-b", "rep-c"}
	reasons  = []string{"price", "competitor", "timing", "no_budget"}
)

// run issues n commands with rng.
func (w *workload) run(ctx context.Context, t testing.TB, rng *rand.Rand, n int) {
	t.Helper()
	pick := func(list []string) string { return list[rng.IntN(len(list))] }
	for range n {
		w.mu.Lock()
		// Business time mostly moves on, sometimes a little back (late entries).
		w.clock = w.clock.Add(time.Duration(rng.IntN(72)-6) * time.Hour)
		m := commands.Meta{Actor: pick(owners), OccurredAt: w.clock}
		contacts, deals := len(w.contacts), len(w.deals)
		var contactID, dealID string
		if contacts > 0 {
			contactID = w.contacts[rng.IntN(contacts)]
		}
		if deals > 0 {
			dealID = w.deals[rng.IntN(deals)]
		}
		var again *retry
		if len(w.keys) > 0 && rng.IntN(12) == 0 {
			r := w.keys[rng.IntN(len(w.keys))]
			again = &r
		}
		if rng.IntN(8) == 0 && contactID != "" {
			// A stale If-Match: refused unless nobody wrote since.
			v := max(1, w.versions[contactID]-int64(rng.IntN(2)))
			m.ExpectedVersion = &v
		}
		w.mu.Unlock()

		if again != nil {
			m.IdempotencyKey, m.Actor, m.OccurredAt = again.key, again.meta.Actor, again.meta.OccurredAt
			res, err := again.run(m)
			w.record(t, "retry", "", "", res, err)
			continue
		}
		if rng.IntN(3) == 0 {
			m.IdempotencyKey = fmt.Sprintf("k-%d", rng.Uint64())
		}
		var (
			res    commands.Result
			err    error
			op     string
			id     string
			target string // the phase asked for
			exec   func(commands.Meta) (commands.Result, error)
		)
		switch x := rng.IntN(100); {
		case contacts < 5 || x < 8:
			op = "create"
			cmd := commands.CreateContact{Name: fmt.Sprintf("Contact %d", rng.IntN(1000)), Channel: pick(channels),
				Owner: pick(owners), Segment: pick([]string{"smb", "enterprise", ""})}
			exec = func(m commands.Meta) (commands.Result, error) { return w.h.CreateContact(ctx, m, cmd) }
		case x < 14:
			op, id = "update", contactID
			name, seg, owner := fmt.Sprintf("Renamed %d", rng.IntN(100)), pick([]string{"smb", "mid_market"}), pick(owners)
			cmd := commands.UpdateContact{ContactID: contactID}
			switch rng.IntN(3) {
			case 0:
				cmd.Name = &name
			case 1:
				cmd.Segment = &seg
			default:
				cmd.Owner = &owner
			}
			exec = func(m commands.Meta) (commands.Result, error) { return w.h.UpdateContact(ctx, m, cmd) }
		case x < 40:
			op, id = "phase", contactID
			to := pick(phases)
			w.mu.Lock()
			// Mostly onwards, so that contacts reach won, churn and come back.
			switch cur := w.phase[contactID]; {
			case rng.IntN(2) == 0:
			case cur >= 7: // an exit
				to = pick([]string{"lead", "approach"})
			case cur >= 4 && rng.IntN(3) == 0:
				to = "churned"
			case cur < 4 && rng.IntN(6) == 0:
				to = "lost"
			default:
				to = phases[min(cur+1, 6)]
			}
			w.mu.Unlock()
			target = to
			cmd := commands.ChangePhase{ContactID: contactID, Phase: to, Reason: pick([]string{"", "asked for it"})}
			exec = func(m commands.Meta) (commands.Result, error) { return w.h.ChangePhase(ctx, m, cmd) }
		case x < 58:
			op, id = "touchpoint", contactID
			cmd := commands.RecordTouchpoint{ContactID: contactID, Kind: pick(kinds)}
			exec = func(m commands.Meta) (commands.Result, error) { return w.h.RecordTouchpoint(ctx, m, cmd) }
		case x < 62:
			op, id = "survey", contactID
			// Surveys, purchases (in two currencies) and usage reports, in turn.
			switch rng.IntN(3) {
			case 0:
				cmd := commands.RecordSurvey{ContactID: contactID, NPS: rng.IntN(11)}
				exec = func(m commands.Meta) (commands.Result, error) { return w.h.RecordSurvey(ctx, m, cmd) }
			case 1:
				cmd := commands.RecordPurchase{ContactID: contactID, Amount: int64(100 * (1 + rng.IntN(50))),
					Currency: pick([]string{"JPY", "USD"}), Product: "CRM Pro"}
				exec = func(m commands.Meta) (commands.Result, error) { return w.h.RecordPurchase(ctx, m, cmd) }
			default:
				cmd := commands.ReportUsage{ContactID: contactID, PercentOfLimit: 50 + rng.IntN(60)}
				exec = func(m commands.Meta) (commands.Result, error) { return w.h.ReportUsage(ctx, m, cmd) }
			}
		case x < 66:
			op, id = "task", contactID
			cmd := commands.ScheduleTask{ContactID: contactID, Title: "call back", Due: m.OccurredAt.AddDate(0, 0, rng.IntN(20)).Format(time.DateOnly)}
			exec = func(m commands.Meta) (commands.Result, error) { return w.h.ScheduleTask(ctx, m, cmd) }
		case x < 70:
			op, id = "complete", contactID
			w.mu.Lock()
			taskID := "none"
			if ts := w.tasks[contactID]; len(ts) > 0 {
				taskID = ts[rng.IntN(len(ts))]
			}
			w.mu.Unlock()
			// A task changes before it closes: rescheduled, reassigned, done or cancelled.
			switch rng.IntN(4) {
			case 0:
				cmd := commands.RescheduleTask{ContactID: contactID, TaskID: taskID, Due: m.OccurredAt.AddDate(0, 0, rng.IntN(30)).Format(time.DateOnly)}
				exec = func(m commands.Meta) (commands.Result, error) { return w.h.RescheduleTask(ctx, m, cmd) }
			case 1:
				cmd := commands.ReassignTask{ContactID: contactID, TaskID: taskID, Assignee: pick(owners)}
				exec = func(m commands.Meta) (commands.Result, error) { return w.h.ReassignTask(ctx, m, cmd) }
			case 2:
				cmd := commands.CancelTask{ContactID: contactID, TaskID: taskID, Reason: "not needed"}
				exec = func(m commands.Meta) (commands.Result, error) { return w.h.CancelTask(ctx, m, cmd) }
			default:
				cmd := commands.CompleteTask{ContactID: contactID, TaskID: taskID}
				exec = func(m commands.Meta) (commands.Result, error) { return w.h.CompleteTask(ctx, m, cmd) }
			}
		case x < 76 || deals == 0:
			op = "open"
			cmd := commands.OpenDeal{ContactID: contactID, Title: "Deal", Amount: int64(100 * (1 + rng.IntN(50))),
				Currency: pick([]string{"JPY", "USD"}), Owner: pick(owners)}
			exec = func(m commands.Meta) (commands.Result, error) { return w.h.OpenDeal(ctx, m, cmd) }
		case x < 88:
			op, id = "stage", dealID
			cmd := commands.ChangeDealStage{DealID: dealID, Stage: pick(stages)}
			exec = func(m commands.Meta) (commands.Result, error) { return w.h.ChangeDealStage(ctx, m, cmd) }
		case x < 92:
			op, id = "win", dealID
			cmd := commands.WinDeal{DealID: dealID}
			if rng.IntN(2) == 0 {
				amount := int64(100 * (1 + rng.IntN(80)))
				cmd.Amount = &amount
			}
			exec = func(m commands.Meta) (commands.Result, error) { return w.h.WinDeal(ctx, m, cmd) }
		case x < 96:
			op, id = "lose", dealID
			cmd := commands.LoseDeal{DealID: dealID, Reason: pick(reasons)}
			exec = func(m commands.Meta) (commands.Result, error) { return w.h.LoseDeal(ctx, m, cmd) }
		default:
			op, id = "reopen", dealID
			cmd := commands.ReopenDeal{DealID: dealID}
			exec = func(m commands.Meta) (commands.Result, error) { return w.h.ReopenDeal(ctx, m, cmd) }
		}
		if id == "" || op == "create" || op == "open" {
			m.ExpectedVersion = nil
		}
		res, err = exec(m)
		if err == nil && m.IdempotencyKey != "" {
			w.mu.Lock()
			w.keys = append(w.keys, retry{key: m.IdempotencyKey, meta: m, run: exec})
			w.mu.Unlock()
		}
		w.record(t, op, contactID, target, res, err)
	}
}

// script writes, once, a history with every case the random part may miss: a contact moved
// forward, skipped ahead, back, won, churned, won back, lost and won back again; a deal moved
// back and forth, lost, reopened, won, reopened; a task completed, one rescheduled, reassigned
// and cancelled; a note; a duplicate with a task merged into the contact.
func (w *workload) script(ctx context.Context, t testing.TB) {
	t.Helper()
	at := w.clock
	m := func() commands.Meta {
		at = at.Add(time.Hour)
		return commands.Meta{Actor: "rep-a", OccurredAt: at}
	}
	must := func(res commands.Result, err error) commands.Result {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	c := must(w.h.CreateContact(ctx, m(), commands.CreateContact{Name: "Scripted", Channel: "referral"})).ID
	for _, step := range []struct{ phase, reason string }{{"approach", ""}, {"proposal", "fast"}, {"discovery", "back"},
		{"proposal", ""}, {"won", ""}, {"follow_up", ""}, {"churned", "left"}, {"lead", ""}, {"lost", "gone"}, {"approach", ""}} {
		must(w.h.ChangePhase(ctx, m(), commands.ChangePhase{ContactID: c, Phase: step.phase, Reason: step.reason}))
	}
	name, owner := "Scripted again", "rep-b"
	must(w.h.UpdateContact(ctx, m(), commands.UpdateContact{ContactID: c, Name: &name, Owner: &owner}))
	must(w.h.RecordSurvey(ctx, m(), commands.RecordSurvey{ContactID: c, NPS: 9}))
	task := must(w.h.ScheduleTask(ctx, m(), commands.ScheduleTask{ContactID: c, Title: "call", Due: at.Format(time.DateOnly)})).EntityID
	must(w.h.CompleteTask(ctx, m(), commands.CompleteTask{ContactID: c, TaskID: task}))
	task = must(w.h.ScheduleTask(ctx, m(), commands.ScheduleTask{ContactID: c, Title: "visit", Due: at.Format(time.DateOnly)})).EntityID
	must(w.h.RescheduleTask(ctx, m(), commands.RescheduleTask{ContactID: c, TaskID: task, Due: at.AddDate(0, 0, 7).Format(time.DateOnly)}))
	must(w.h.ReassignTask(ctx, m(), commands.ReassignTask{ContactID: c, TaskID: task, Assignee: "rep-c"}))
	must(w.h.CancelTask(ctx, m(), commands.CancelTask{ContactID: c, TaskID: task, Reason: "moved"}))
	must(w.h.AddNote(ctx, m(), commands.AddNote{ContactID: c, Text: "メモ"}))
	dup := must(w.h.CreateContact(ctx, m(), commands.CreateContact{Name: "Scripted twin", Channel: "other"})).ID
	must(w.h.ScheduleTask(ctx, m(), commands.ScheduleTask{ContactID: dup, Title: "call twin", Due: at.Format(time.DateOnly)}))
	must(w.h.RecordPurchase(ctx, m(), commands.RecordPurchase{ContactID: c, Amount: 1200, Currency: "JPY", Product: "CRM Basic"}))
	must(w.h.RecordPurchase(ctx, m(), commands.RecordPurchase{ContactID: dup, Amount: 300, Currency: "USD", Product: "CRM Basic"}))
	must(w.h.ReportUsage(ctx, m(), commands.ReportUsage{ContactID: dup, PercentOfLimit: 90}))
	must(w.h.MergeContact(ctx, m(), commands.MergeContact{ContactID: dup, Into: c}))
	d := must(w.h.OpenDeal(ctx, m(), commands.OpenDeal{ContactID: c, Title: "Scripted", Amount: 1000, Currency: "JPY"})).ID
	for _, stage := range []string{"proposal", "needs_analysis", "negotiation"} {
		must(w.h.ChangeDealStage(ctx, m(), commands.ChangeDealStage{DealID: d, Stage: stage}))
	}
	must(w.h.LoseDeal(ctx, m(), commands.LoseDeal{DealID: d, Reason: "price"}))
	must(w.h.ReopenDeal(ctx, m(), commands.ReopenDeal{DealID: d}))
	amount := int64(1500)
	must(w.h.WinDeal(ctx, m(), commands.WinDeal{DealID: d, Amount: &amount}))
	must(w.h.ReopenDeal(ctx, m(), commands.ReopenDeal{DealID: d}))
	w.mu.Lock()
	w.contacts = append(w.contacts, c)
	w.deals = append(w.deals, d)
	w.mu.Unlock()
}

func (w *workload) record(t testing.TB, op, contactID, phase string, res commands.Result, err error) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	var de *domain.Error
	switch {
	case err == nil:
		w.accepted++
		if res.Replayed {
			w.replayed++
			return
		}
		w.versions[res.ID] = res.Version
		switch op {
		case "create":
			w.contacts = append(w.contacts, res.ID)
		case "open":
			w.deals = append(w.deals, res.ID)
		case "task":
			w.tasks[contactID] = append(w.tasks[contactID], res.EntityID)
		case "phase":
			w.phase[contactID] = slices.Index(phases, phase)
		}
	case errors.As(err, &de), errors.Is(err, commands.ErrPreconditionFailed), errors.Is(err, commands.ErrIdempotencyConflict),
		errors.Is(err, commands.ErrContention):
		w.refused++
	default:
		t.Errorf("%s: %v", op, err)
	}
}

// redelivering wraps a subscriber: it delivers some messages twice in a row, and now and
// then one it delivered a while ago, as brokers do after lost acknowledgements.
type redelivering struct {
	message.Subscriber
	rng *rand.Rand
	mu  *sync.Mutex
}

func (s redelivering) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	in, err := s.Subscriber.Subscribe(ctx, topic)
	if err != nil {
		return nil, err
	}
	out := make(chan *message.Message)
	go func() {
		defer close(out)
		var past []*message.Message
		send := func(m *message.Message) bool {
			select {
			case out <- m:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for msg := range in {
			s.mu.Lock()
			twice, old := s.rng.IntN(5) == 0, s.rng.IntN(10) == 0
			oldIndex := s.rng.IntN(len(past) + 1)
			s.mu.Unlock()
			past = append(past, msg.Copy())
			if len(past) > 50 {
				past = past[1:]
			}
			if !send(msg) {
				return
			}
			if twice && !send(msg.Copy()) {
				return
			}
			if old && oldIndex < len(past) && !send(past[oldIndex].Copy()) {
				return
			}
		}
	}()
	return out, nil
}

// Live equals rebuilt: a random workload runs through the command handler while the live
// runner projects it (with redeliveries and a restart); then every projection is rebuilt
// and the live tables must equal the rebuilt ones row for row. Then a second workload runs
// while a second rebuild switches under it: the tables served afterwards must equal a
// fresh build of the whole log (no event lost or applied twice in the hand-over).
func TestLiveEqualsRebuilt(t *testing.T) {
	projectiontest.ForEachBackend(t, func(t *testing.T, store eventstore.Store, db *projections.DB) {
		seed := uint64(time.Now().UnixNano())
		t.Logf("seed %d", seed)
		rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
		var rngMu sync.Mutex
		ctx := context.Background()
		ps := readModels()
		cfg := projectiontest.RunnerConfig(store, db)
		newSubscriber := cfg.NewSubscriber
		cfg.NewSubscriber = func(group string) (message.Subscriber, error) {
			sub, err := newSubscriber(group)
			if err != nil {
				return nil, err
			}
			return redelivering{Subscriber: sub, rng: rng, mu: &rngMu}, nil
		}
		cfg.AdvanceGroup = nil // after a restart the group delivers again what the catch-up applied
		w := newWorkload(commands.NewHandler(store))
		runWorkers := func(workers, each int) {
			var wg sync.WaitGroup
			for i := range workers {
				r := rand.New(rand.NewPCG(seed+uint64(i)+1, uint64(i)))
				wg.Go(func() { w.run(ctx, t, r, each) })
			}
			wg.Wait()
		}

		r := projectiontest.NewRunner(t, cfg, ps...)
		stop := projectiontest.Start(t, r)
		w.script(ctx, t)
		runWorkers(4, 150)
		w.linkAccounts(ctx, t)         // the directory's roll-ups per account and stage move from here on
		changeLeadScoring(ctx, t, w.h) // every contact is scored again, in the middle of the history
		changePipeline(ctx, t, w.h)    // weighted figures change from here on; subscriptions come and go
		stop()                         // a restart: the next runner catches up from the checkpoints
		r = projectiontest.NewRunner(t, cfg, ps...)
		projectiontest.Start(t, r)
		runWorkers(4, 150)
		waitAll(t, db, store, ps)
		t.Logf("workload: %d accepted (%d replayed), %d refused; %d events", w.accepted, w.replayed, w.refused, len(projectiontest.AllEvents(t, store)))
		if w.refused == 0 || w.replayed == 0 {
			t.Fatal("the workload had no refusal or no idempotent retry")
		}
		assertVariety(t, projectiontest.AllEvents(t, store))
		stages := projections.TablesFor(directory.Projection(), "").Name("account_stages")
		if projectiontest.Count(t, db, `SELECT COUNT(*) FROM `+stages) == 0 {
			t.Fatal("no account has an open deal: the roll-ups per stage are not exercised (run again)")
		}

		rcfg := rebuild.RebuildConfig{DB: db, Store: store, Runner: r, Batch: 1 + rng.IntN(40), KeepOld: true, DropDelay: time.Millisecond}
		res, err := rebuild.Rebuild(ctx, rcfg, ps...)
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range ps {
			live, rebuilt := projections.TablesFor(p, ""), projections.TablesFor(p, "g1")
			if res[i].TableSet != rebuilt.Prefix() || res[i].Parked != 0 {
				t.Fatalf("rebuild of %s = %+v", p.Name(), res[i])
			}
			assertSameSets(t, db, p, live, rebuilt)
		}

		// A rebuild under load: it switches while commands go on.
		var wg sync.WaitGroup
		wg.Go(func() { runWorkers(3, 150) })
		rcfg.KeepOld = false
		rcfg.Batch = 1 + rng.IntN(40)
		if _, err := rebuild.Rebuild(ctx, rcfg, ps...); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		waitAll(t, db, store, ps)
		for _, p := range ps {
			served, err := r.Tables(p.Name())
			if err != nil || served != projections.TablesFor(p, "g2") {
				t.Fatalf("runner serves %s (%v), want g2", served.Prefix(), err)
			}
			if projectiontest.TableExists(t, db, projections.TablesFor(p, "g1").Prefix()+"contacts") {
				t.Fatalf("g1 of %s was not dropped", p.Name())
			}
			assertSameSets(t, db, p, projectiontest.Rebuilt(t, db, store, p), served)
		}
	})
}

// assertVariety fails unless the history holds the cases the read models must get right:
// backward moves, exits and win-backs, reopened, won and lost deals, completed tasks.
func assertVariety(t testing.TB, events []eventstore.Event) {
	t.Helper()
	seen := map[string]int{}
	for _, e := range events {
		seen[e.Type]++
		if e.Type == contact.TypePhaseChanged {
			var ev contact.PhaseChanged
			if err := json.Unmarshal(e.Data, &ev); err != nil {
				t.Fatal(err)
			}
			seen["rule:"+string(ev.Rule)]++
		}
	}
	for _, want := range []string{"rule:backward", "rule:win_back", "rule:lost", "rule:churned", "rule:forward", deal.TypeReopened,
		deal.TypeWon, deal.TypeLost, deal.TypeStageChanged, contact.TypeTaskCompleted, contact.TypeOwnerChanged,
		contact.TypeTaskRescheduled, contact.TypeTaskReassigned, contact.TypeTaskCancelled, contact.TypeNoteAdded,
		contact.TypeDuplicateAbsorbed,
		contact.TypeDetailsChanged, contact.TypeSurveyRecorded, contact.TypePurchaseRecorded, contact.TypeUsageReported} {
		if seen[want] == 0 {
			t.Fatalf("the workload wrote no %s: %v (run again)", want, seen)
		}
	}
	t.Logf("history: %v", seen)
}

// waitAll waits until the served set of every projection has reached the log's head.
func waitAll(t testing.TB, db *projections.DB, store eventstore.Store, ps []projections.Projection) {
	t.Helper()
	last := projectiontest.LastPosition(t, store)
	for _, p := range ps {
		projectiontest.WaitUntil(t, 60*time.Second, p.Name()+" at the head", func() bool {
			cp, err := db.Checkpoint(context.Background(), projectiontest.Active(t, db, p))
			return err == nil && cp >= last
		})
	}
}

// assertSameSets compares two sets of p by digest (order-independent), and shows the
// differing rows when they differ.
func assertSameSets(t testing.TB, db *projections.DB, p projections.Projection, a, b projections.Tables) {
	t.Helper()
	ctx := context.Background()
	da, err := diff.Digest(ctx, db, p, a)
	if err != nil {
		t.Fatal(err)
	}
	dbb, err := diff.Digest(ctx, db, p, b)
	if err != nil {
		t.Fatal(err)
	}
	same := len(da) == len(dbb)
	var rows int64
	for table, d := range da {
		if dbb[table] != d {
			same = false
		}
		rows += d.Rows
	}
	if rows == 0 {
		t.Fatalf("%s: no rows to compare", a.Prefix())
	}
	if same {
		return
	}
	reportDiff(t, db, p, a, b)
	t.Fatalf("%s and %s differ (digests %v / %v)", a.Prefix(), b.Prefix(), da, dbb)
}

// reportDiff reports, as errors, the rows added, removed and changed from set a to set b of
// one database, with a sample of each.
func reportDiff(t testing.TB, db *projections.DB, p projections.Projection, a, b projections.Tables) {
	t.Helper()
	d, err := diff.CompareSets(context.Background(), db, a, p, b, 5)
	if err != nil {
		t.Fatal(err)
	}
	for _, td := range d.Tables {
		if !td.Identical() {
			t.Errorf("%s vs %s, table %s: %d added, %d removed, %d changed; added %v removed %v changed %v", a.Prefix(), b.Prefix(),
				td.Table, td.Added, td.Removed, td.Changed, td.SampleAdded, td.SampleRemoved, td.SampleChanged)
		}
	}
}

// changePipeline changes the stage probabilities and subscribes, changes, disables and
// deletes webhooks, as an admin would.
func changePipeline(ctx context.Context, t testing.TB, h *commands.Handler) {
	t.Helper()
	admin := commands.Meta{Actor: "admin", Reason: "quarterly review"}
	_, err := h.ChangeStageProbabilities(ctx, admin, commands.ChangeStageProbabilities{Probabilities: map[deal.Stage]int{
		deal.StageQualification: 5, deal.StageNeedsAnalysis: 30, deal.StageProposal: 45, deal.StageNegotiation: 80}})
	if err != nil {
		t.Fatal(err)
	}
	a, err := h.CreateWebhook(ctx, admin, commands.CreateWebhook{URL: "https://a.example/h", EventTypes: []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.CreateWebhook(ctx, admin, commands.CreateWebhook{URL: "https://b.example/h", EventTypes: []string{"deal.*"}})
	if err != nil {
		t.Fatal(err)
	}
	url := "https://a.example/v2"
	for _, err := range []error{
		second(h.ChangeWebhook(ctx, admin, commands.ChangeWebhook{SubscriptionID: a.ID, URL: &url})),
		second(h.SwitchWebhook(ctx, admin, commands.SwitchWebhook{SubscriptionID: a.ID})),
		second(h.DeleteWebhook(ctx, admin, commands.DeleteWebhook{SubscriptionID: b.ID})),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func second[T any](_ T, err error) error { return err }

// linkAccounts creates two accounts and links every third contact known so far to one of
// them, so that the deals moved, won, lost and reopened afterwards (and the change of the
// stage probabilities) move the directory's roll-ups per account and stage. A contact the
// domain refuses to link (a merged duplicate) stays out.
func (w *workload) linkAccounts(ctx context.Context, t testing.TB) {
	t.Helper()
	admin := commands.Meta{Actor: "rep-a", OccurredAt: w.clock}
	var accounts []string
	for _, name := range []string{"Mori Trading", "Acme"} {
		res, err := w.h.CreateAccount(ctx, admin, commands.CreateAccount{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		accounts = append(accounts, res.ID)
	}
	w.mu.Lock()
	contacts := slices.Clone(w.contacts)
	w.mu.Unlock()
	linked := 0
	for i := 0; i < len(contacts); i += 3 {
		_, err := w.h.LinkContactToAccount(ctx, admin, commands.LinkContactToAccount{ContactID: contacts[i], AccountID: accounts[i%2]})
		var de *domain.Error
		switch {
		case err == nil:
			linked++
		case !errors.As(err, &de):
			t.Fatal(err)
		}
	}
	if linked == 0 {
		t.Fatal("no contact was linked to an account")
	}
}

// changeLeadScoring changes every part of the lead scoring, as an admin would.
func changeLeadScoring(ctx context.Context, t testing.TB, h *commands.Handler) {
	t.Helper()
	_, err := h.ChangeLeadScoring(ctx, commands.Meta{Actor: "admin"}, commands.ChangeLeadScoring{
		Weights:      map[contact.TouchpointKind]int{contact.KindMeeting: 30, contact.KindCall: 12, contact.KindEmailOpen: 2},
		Rules:        []settings.AttributeRule{{Field: settings.FieldChannel, Match: settings.MatchEquals, Value: "referral", Points: 15}},
		HalfLifeDays: 10, HotThreshold: 40, Reason: "recalibrated",
	})
	if err != nil {
		t.Fatal(err)
	}
}
