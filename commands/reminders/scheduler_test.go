package reminders_test

import (
	"context"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/commands/reminders"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/domain/settings"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/codec"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/readmodel"
	"github.com/eventcrm/crm/projections/schedule"
)

// clock is a clock the test moves.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// liveSchedule is the schedule (business time in UTC) kept live over store until the test
// ends, and its tables.
func liveSchedule(t *testing.T, store eventstore.Store, db *projections.DB) (*readmodel.Model, projections.Tables) {
	t.Helper()
	p := schedule.Projection(time.UTC)
	projectiontest.Start(t, projectiontest.NewRunner(t, projectiontest.RunnerConfig(store, db), p))
	return p, projections.TablesFor(p, "")
}

func TestRemindersFireOnceAcrossRestartsDowntimeAndRebuild(t *testing.T) {
	projectiontest.ForEachBackend(t, func(t *testing.T, store eventstore.Store, db *projections.DB) {
		ctx := context.Background()
		p, live := liveSchedule(t, store, db)
		cmds := commands.NewHandler(store)
		clk := &clock{now: at("2030-01-05T12:00:00Z")}
		reported := map[string]int{} // by Config.Fired, over every scheduler of the test
		newScheduler := func(tables projections.Tables) *reminders.Scheduler {
			s, err := reminders.New(reminders.Config{Commands: cmds, Now: clk.Now, Fired: func(kind string) { reported[kind]++ },
				Due: func(ctx context.Context, from schedule.After, now time.Time, limit int) ([]schedule.Deadline, error) {
					return schedule.Due(ctx, db, tables, from, now, limit)
				}})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		var last int64
		must := func(res commands.Result, err error) commands.Result {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
			last = max(last, res.Position)
			return res
		}
		rep := commands.Meta{Actor: "rep-a", OccurredAt: at("2029-10-01T10:00:00Z")}
		c := must(cmds.CreateContact(ctx, rep, commands.CreateContact{Name: "Yui Sato", Channel: "seminar", Owner: "rep-a"}))
		// Dormant from 2029-12-30T10:00Z (90 days after the touchpoint).
		must(cmds.RecordTouchpoint(ctx, rep, commands.RecordTouchpoint{ContactID: c.ID, Kind: "meeting"}))
		task := func(title string) string {
			return must(cmds.ScheduleTask(ctx, rep, commands.ScheduleTask{ContactID: c.ID, Title: title, Due: "2030-01-10"})).EntityID
		}
		t1, t2, t3, t4 := task("call back"), task("send the quote"), task("done early"), task("no longer needed")
		// Due long before the first tick (an imported history): more than a week late, never fires.
		must(cmds.ScheduleTask(ctx, rep, commands.ScheduleTask{ContactID: c.ID, Title: "imported", Due: "2029-12-20"}))
		must(cmds.CompleteTask(ctx, rep, commands.CompleteTask{ContactID: c.ID, TaskID: t3}))
		must(cmds.CancelTask(ctx, rep, commands.CancelTask{ContactID: c.ID, TaskID: t4, Reason: "merged into the quote"}))
		projectiontest.WaitCheckpoint(t, db, p, last)

		s := newScheduler(live)
		tick := func(s *reminders.Scheduler, when string, want int) {
			t.Helper()
			n, err := s.Tick(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if n != want {
				t.Fatalf("%s: %d fired, want %d", when, n, want)
			}
		}
		caughtUp := func() { projectiontest.WaitCheckpoint(t, db, p, projectiontest.LastPosition(t, store)) }
		tick(s, "Jan 5, 12:00 (dormant since Dec 30)", 1)
		caughtUp()
		// The reactivation task is due on Dec 30: its reminder and escalation are late.
		tick(s, "Jan 5, the reactivation task", 2)
		caughtUp()
		tick(s, "Jan 5 again", 0)
		clk.Set(at("2030-01-10T09:00:00Z"))
		tick(s, "Jan 10, 09:00: t1 and t2 are due, t3 done and t4 cancelled before", 2)
		// A restart before the schedule has seen the firings: nothing twice.
		tick(newScheduler(live), "a restart", 0)
		must(cmds.CompleteTask(ctx, rep, commands.CompleteTask{ContactID: c.ID, TaskID: t2}))
		// Down until Jan 12: the escalation of t1 (Jan 11, 09:00) is caught up; t2 was done.
		clk.Set(at("2030-01-12T08:00:00Z"))
		restarted := newScheduler(live)
		tick(restarted, "Jan 12 after a downtime", 1)
		caughtUp()
		tick(restarted, "Jan 12 again", 0)

		fired := map[string]int{}
		var reactivation []string
		for _, e := range projectiontest.AllEvents(t, store) {
			switch e.Type {
			case contact.TypeReminderFired:
				ev, err := cmds.Registry().Decode(e.Type, e.Data)
				if err != nil {
					t.Fatal(err)
				}
				rf := ev.(*contact.ReminderFired)
				fired[rf.Kind+" "+rf.TaskID]++
				if e.Metadata.Actor != reminders.Actor || !e.OccurredAt.Equal(at(rf.FireAt)) {
					t.Errorf("%s fired by %s at %s (fire_at %s)", rf.Kind, e.Metadata.Actor, e.OccurredAt, rf.FireAt)
				}
			case contact.TypeTaskScheduled:
				if e.Metadata.Actor == reminders.Actor {
					ev, err := cmds.Registry().Decode(e.Type, e.Data)
					if err != nil {
						t.Fatal(err)
					}
					reactivation = append(reactivation, ev.(*contact.TaskScheduled).TaskID)
				}
			}
		}
		if len(reactivation) != 1 {
			t.Fatalf("%d reactivation tasks, want 1", len(reactivation))
		}
		want := map[string]int{"dormant ": 1, "task_due " + t1: 1, "task_due " + t2: 1, "task_overdue " + t1: 1,
			"task_due " + reactivation[0]: 1, "task_overdue " + reactivation[0]: 1}
		if len(fired) != len(want) {
			t.Fatalf("fired %v, want %v", fired, want)
		}
		for k, n := range want {
			if fired[k] != n {
				t.Errorf("%s fired %d times, want %d", k, fired[k], n)
			}
		}
		// Config.Fired was told each firing recorded, by kind, and nothing else.
		if want := map[string]int{"dormant": 1, "task_due": 3, "task_overdue": 2}; !reflect.DeepEqual(reported, want) {
			t.Errorf("reported firings %v, want %v", reported, want)
		}
		// A rebuilt schedule holds the firings of the log: nothing fires again.
		rebuilt := projectiontest.Rebuilt(t, db, store, p)
		tick(newScheduler(rebuilt), "after a rebuild", 0)
		if l, b := projectiontest.Dump(t, db, live)["entries"], projectiontest.Dump(t, db, rebuilt)["entries"]; len(l) == 0 || !reflect.DeepEqual(l, b) {
			t.Errorf("the live schedule differs from a rebuild:\n%v\n%v", l, b)
		}
	})
}

// Deadlines a tick passes over (their switch is off) never hold back those after them, however
// many there are: with the task reminders off and more task deadlines due than a tick reads
// at once, the dormancy deadline that falls due after them fires.
func TestDeadlinesPassedOverHoldBackNothing(t *testing.T) {
	projectiontest.ForEachBackend(t, func(t *testing.T, store eventstore.Store, db *projections.DB) {
		ctx := context.Background()
		p, live := liveSchedule(t, store, db)
		cmds := commands.NewHandler(store)
		s, err := reminders.New(reminders.Config{Commands: cmds, Batch: 2, Now: func() time.Time { return at("2030-01-05T12:00:00Z") },
			Due: func(ctx context.Context, from schedule.After, now time.Time, limit int) ([]schedule.Deadline, error) {
				return schedule.Due(ctx, db, live, from, now, limit)
			}})
		if err != nil {
			t.Fatal(err)
		}
		off := settings.Defaults().Processes
		off.TaskReminders = false
		if _, err := cmds.ChangeProcessSettings(ctx, commands.Meta{Actor: "admin", Reason: "quiet week"},
			commands.ChangeProcessSettings{Processes: off}); err != nil {
			t.Fatal(err)
		}
		rep := commands.Meta{Actor: "rep-a", OccurredAt: at("2029-10-01T10:00:00Z")}
		c, err := cmds.CreateContact(ctx, rep, commands.CreateContact{Name: "Yui Sato", Channel: "seminar", Owner: "rep-a"})
		if err != nil {
			t.Fatal(err)
		}
		// Dormant from 2029-12-30T10:00Z, after the reminders of the tasks due that day (09:00).
		if _, err := cmds.RecordTouchpoint(ctx, rep, commands.RecordTouchpoint{ContactID: c.ID, Kind: "meeting"}); err != nil {
			t.Fatal(err)
		}
		for _, title := range []string{"call back", "send the quote", "book the visit"} {
			if _, err := cmds.ScheduleTask(ctx, rep, commands.ScheduleTask{ContactID: c.ID, Title: title, Due: "2029-12-30"}); err != nil {
				t.Fatal(err)
			}
		}
		projectiontest.WaitCheckpoint(t, db, p, projectiontest.LastPosition(t, store))
		n, err := s.Tick(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Fatalf("%d fired, want 1: the dormancy deadline behind the task reminders switched off", n)
		}
		var kinds []string
		for _, e := range projectiontest.AllEvents(t, store) {
			if e.Type == contact.TypeReminderFired {
				ev, err := cmds.Registry().Decode(e.Type, e.Data)
				if err != nil {
					t.Fatal(err)
				}
				kinds = append(kinds, ev.(*contact.ReminderFired).Kind)
			}
		}
		if !reflect.DeepEqual(kinds, []string{contact.ReminderDormant}) {
			t.Fatalf("fired %v, want only the dormancy deadline", kinds)
		}
	})
}

// A contact merged into another, or erased, takes no more commands: the schedule keeps none of
// its deadlines (its tasks' reminders, its dormancy), so none is listed as to fire, and the
// scheduler fires only those of the others.
func TestMergedAndErasedContactsHaveNoDeadlines(t *testing.T) {
	projectiontest.ForEachBackend(t, func(t *testing.T, store eventstore.Store, db *projections.DB) {
		ctx := context.Background()
		c := projectiontest.SealingCodec(t, "")
		sealed := codec.NewStore(store, c)
		p, live := liveSchedule(t, sealed, db)
		cmds := commands.NewHandler(sealed, commands.WithShredder(c))
		rep := commands.Meta{Actor: "rep-a", OccurredAt: at("2030-01-02T10:00:00Z")}
		contactWithTask := func(name string) string {
			t.Helper()
			res, err := cmds.CreateContact(ctx, rep, commands.CreateContact{Name: name, Channel: "seminar", Owner: "rep-a"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := cmds.RecordTouchpoint(ctx, rep, commands.RecordTouchpoint{ContactID: res.ID, Kind: "call"}); err != nil {
				t.Fatal(err)
			}
			if _, err := cmds.ScheduleTask(ctx, rep, commands.ScheduleTask{ContactID: res.ID, Title: "call back", Due: "2030-01-10"}); err != nil {
				t.Fatal(err)
			}
			return res.ID
		}
		duplicate, survivor, erased, kept := contactWithTask("Yui Sato"), contactWithTask("Yui Satou"), contactWithTask("Ken Mori"), contactWithTask("Mei Kato")
		if _, err := cmds.MergeContact(ctx, commands.Meta{Actor: "rep-a"}, commands.MergeContact{ContactID: duplicate, Into: survivor}); err != nil {
			t.Fatal(err)
		}
		if _, err := cmds.EraseContact(ctx, commands.Meta{Actor: "admin"}, commands.EraseContact{ContactID: erased, Reason: "asked to be forgotten"}); err != nil {
			t.Fatal(err)
		}
		projectiontest.WaitCheckpoint(t, db, p, projectiontest.LastPosition(t, store))
		pending, err := schedule.Pending(ctx, db, live, at("2031-01-01T00:00:00Z"), 1000)
		if err != nil {
			t.Fatal(err)
		}
		count := map[string]int{}
		for _, d := range pending {
			count[d.ContactID]++
		}
		if want := map[string]int{survivor: 3, kept: 3}; !reflect.DeepEqual(count, want) {
			t.Fatalf("deadlines by contact %v, want 3 (task due, overdue, dormant) for the survivor %s and for %s only (merged %s, erased %s)",
				count, survivor, kept, duplicate, erased)
		}
	})
}
