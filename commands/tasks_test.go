package commands_test

import (
	"context"
	"testing"
	"time"

	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/contact"
)

// step is one command of a sequence run on one store, with the domain code it must end with
// ("" for success).
type step struct {
	name string
	run  func(ctx context.Context) (commands.Result, error)
	code domain.Code
}

// runSteps runs steps in order as subtests and checks that a refused step appends nothing.
func runSteps(t *testing.T, h *commands.Handler, contactID string, steps []step) {
	t.Helper()
	ctx := context.Background()
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			before := mustContact(t, h, contactID)
			_, err := s.run(ctx)
			if got := domain.ErrorCode(err); got != s.code || (s.code == "" && err != nil) {
				t.Fatalf("err = %v (code %q); want code %q", err, got, s.code)
			}
			after := mustContact(t, h, contactID)
			if s.code != "" && after.Version != before.Version {
				t.Errorf("a refused command moved the contact from version %d to %d", before.Version, after.Version)
			}
		})
	}
}

func mustContact(t testing.TB, h *commands.Handler, id string) *contact.Contact {
	t.Helper()
	c, err := h.Contact(context.Background(), id, commands.At{})
	if err != nil {
		t.Fatalf("load contact %s: %v", id, err)
	}
	return c
}

func TestTaskLifecycle(t *testing.T) {
	t.Parallel()
	h, _ := newHandler(t)
	ctx := context.Background()
	c := mustCreate(t, h)
	meta := commands.Meta{Actor: "alice"}
	task, err := h.ScheduleTask(ctx, meta, commands.ScheduleTask{ContactID: c.ID, Title: "Call back", Due: "2026-03-10"})
	if err != nil {
		t.Fatal(err)
	}
	taskID := task.EntityID
	runSteps(t, h, c.ID, []step{
		{"reschedule", func(ctx context.Context) (commands.Result, error) {
			return h.RescheduleTask(ctx, meta, commands.RescheduleTask{ContactID: c.ID, TaskID: taskID, Due: "2026-03-17"})
		}, ""},
		{"reschedule to the same date is refused", func(ctx context.Context) (commands.Result, error) {
			return h.RescheduleTask(ctx, meta, commands.RescheduleTask{ContactID: c.ID, TaskID: taskID, Due: "2026-03-17"})
		}, domain.CodeRefused},
		{"reassign", func(ctx context.Context) (commands.Result, error) {
			return h.ReassignTask(ctx, meta, commands.ReassignTask{ContactID: c.ID, TaskID: taskID, Assignee: "bob"})
		}, ""},
		{"reassign to the same assignee is refused", func(ctx context.Context) (commands.Result, error) {
			return h.ReassignTask(ctx, meta, commands.ReassignTask{ContactID: c.ID, TaskID: taskID, Assignee: "bob"})
		}, domain.CodeRefused},
		{"cancel without a reason is invalid", func(ctx context.Context) (commands.Result, error) {
			return h.CancelTask(ctx, meta, commands.CancelTask{ContactID: c.ID, TaskID: taskID})
		}, domain.CodeInvalid},
		{"cancel an unknown task is not found", func(ctx context.Context) (commands.Result, error) {
			return h.CancelTask(ctx, meta, commands.CancelTask{ContactID: c.ID, TaskID: "nope", Reason: "x"})
		}, domain.CodeNotFound},
		{"cancel", func(ctx context.Context) (commands.Result, error) {
			return h.CancelTask(ctx, meta, commands.CancelTask{ContactID: c.ID, TaskID: taskID, Reason: "customer postponed"})
		}, ""},
		{"completing the cancelled task is refused", func(ctx context.Context) (commands.Result, error) {
			return h.CompleteTask(ctx, meta, commands.CompleteTask{ContactID: c.ID, TaskID: taskID})
		}, domain.CodeRefused},
		{"rescheduling the cancelled task is refused", func(ctx context.Context) (commands.Result, error) {
			return h.RescheduleTask(ctx, meta, commands.RescheduleTask{ContactID: c.ID, TaskID: taskID, Due: "2026-04-01"})
		}, domain.CodeRefused},
	})
	got := mustContact(t, h, c.ID).Tasks[0]
	if got.Due != "2026-03-17" || got.Assignee != "bob" || !got.Cancelled || got.CancelReason != "customer postponed" || got.Done {
		t.Errorf("task = %+v", got)
	}
}

func TestCancelTaskRecordsItsReason(t *testing.T) {
	t.Parallel()
	h, store := newHandler(t)
	ctx := context.Background()
	c := mustCreate(t, h)
	task, err := h.ScheduleTask(ctx, commands.Meta{Actor: "alice"}, commands.ScheduleTask{ContactID: c.ID, Title: "Call", Due: "2026-03-10"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := h.CancelTask(ctx, commands.Meta{Actor: "alice"}, commands.CancelTask{ContactID: c.ID, TaskID: task.EntityID, Reason: "met at the fair instead"})
	if err != nil {
		t.Fatal(err)
	}
	events, err := store.ReadStream(ctx, contact.StreamName(c.ID), res.Version, 1)
	if err != nil {
		t.Fatal(err)
	}
	if e := events[0]; e.Type != contact.TypeTaskCancelled || e.Metadata.Reason != "met at the fair instead" {
		t.Errorf("event %s with reason %q", e.Type, e.Metadata.Reason)
	}
}

func TestAddNote(t *testing.T) {
	t.Parallel()
	h, store := newHandler(t)
	ctx := context.Background()
	c := mustCreate(t, h)
	meta := commands.Meta{Actor: "bob", IdempotencyKey: "note-1"}
	first, err := h.AddNote(ctx, meta, commands.AddNote{ContactID: c.ID, Text: "prefers calls after 3pm"})
	if err != nil {
		t.Fatal(err)
	}
	again, err := h.AddNote(ctx, meta, commands.AddNote{ContactID: c.ID, Text: "prefers calls after 3pm"})
	if err != nil || !again.Replayed || again.EntityID != first.EntityID || first.EntityID == "" {
		t.Fatalf("retry = %+v, %v; first = %+v", again, err, first)
	}
	events, err := store.ReadStream(ctx, contact.StreamName(c.ID), 2, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 {
		t.Fatalf("%d events after the note, want 1", len(events))
	}
	note, err := h.Registry().Decode(events[0].Type, events[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	want := &contact.NoteAdded{ContactID: c.ID, NoteID: first.EntityID, Text: "prefers calls after 3pm", Author: "bob"}
	if got, ok := note.(*contact.NoteAdded); !ok || *got != *want {
		t.Errorf("note = %+v; want %+v", note, want)
	}
}

func TestTouchpointAfterOptOut(t *testing.T) {
	t.Parallel()
	h, _ := newHandler(t)
	ctx := context.Background()
	day := func(d int) time.Time { return time.Date(2026, 2, d, 9, 0, 0, 0, time.UTC) }
	c, err := h.CreateContact(ctx, commands.Meta{Actor: "alice", OccurredAt: day(1)}, commands.CreateContact{Name: "Mio", Channel: "web_form"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.OptOut(ctx, commands.Meta{Actor: "alice", OccurredAt: day(10)}, commands.OptOut{ContactID: c.ID, Channel: "email"}); err != nil {
		t.Fatal(err)
	}
	touch := func(kind string, at time.Time) func(ctx context.Context) (commands.Result, error) {
		return func(ctx context.Context) (commands.Result, error) {
			return h.RecordTouchpoint(ctx, commands.Meta{Actor: "alice", OccurredAt: at}, commands.RecordTouchpoint{ContactID: c.ID, Kind: kind})
		}
	}
	runSteps(t, h, c.ID, []step{
		{"an email after the opt-out is refused", touch("email", day(11)), domain.CodeRefused},
		{"an email with no business time (now, after the opt-out) is refused", func(ctx context.Context) (commands.Result, error) {
			return h.RecordTouchpoint(ctx, commands.Meta{Actor: "alice"}, commands.RecordTouchpoint{ContactID: c.ID, Kind: "email"})
		}, domain.CodeRefused},
		{"an email imported from before the opt-out is recorded", touch("email", day(5)), ""},
		{"a call after the email opt-out is recorded", touch("call", day(12)), ""},
		{"an email open after the opt-out is recorded", touch("email_open", day(12)), ""},
	})
}
