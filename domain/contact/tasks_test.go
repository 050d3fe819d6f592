package contact_test

import (
	"strings"
	"testing"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/domain/domaintest"
)

func withCancelledTask() []domain.Event {
	return append(withTask(false), &contact.TaskCancelled{ContactID: contactID, TaskID: "t-1", Reason: "no longer needed"})
}

func reschedule(taskID, due string) func(*contact.Contact) ([]domain.Event, error) {
	return func(c *contact.Contact) ([]domain.Event, error) { return c.RescheduleTask(taskID, due) }
}

func reassign(taskID, assignee string) func(*contact.Contact) ([]domain.Event, error) {
	return func(c *contact.Contact) ([]domain.Event, error) { return c.ReassignTask(taskID, assignee) }
}

func cancel(taskID, reason string) func(*contact.Contact) ([]domain.Event, error) {
	return func(c *contact.Contact) ([]domain.Event, error) { return c.CancelTask(taskID, reason) }
}

func TestRescheduleTask(t *testing.T) {
	t.Parallel()
	domaintest.Run(t, []contactCase{
		{Name: "rescheduling a task of a missing contact is not found", When: reschedule("t-1", "2025-04-20"), WantCode: domain.CodeNotFound, WantMessage: "contact not found"},
		{
			Name: "an open task gets a new due date", Given: withTask(false), When: reschedule("t-1", "2025-04-20"),
			Then: []domain.Event{&contact.TaskRescheduled{ContactID: contactID, TaskID: "t-1", From: "2025-04-10", To: "2025-04-20"}},
		},
		{
			Name: "a task can be moved earlier", Given: withTask(false), When: reschedule("t-1", "2025-04-01"),
			Then: []domain.Event{&contact.TaskRescheduled{ContactID: contactID, TaskID: "t-1", From: "2025-04-10", To: "2025-04-01"}},
		},
		{Name: "the same due date changes nothing and is refused", Given: withTask(false), When: reschedule("t-1", "2025-04-10"), WantCode: domain.CodeRefused, WantMessage: "task t-1 is already due on 2025-04-10"},
		{Name: "a bad date is invalid", Given: withTask(false), When: reschedule("t-1", "2025-04-31"), WantCode: domain.CodeInvalid, WantMessage: `due: "2025-04-31" is not a date`},
		{Name: "an unknown task is not found", Given: withTask(false), When: reschedule("t-2", "2025-04-20"), WantCode: domain.CodeNotFound, WantMessage: "task t-2 not found"},
		{Name: "a done task is refused", Given: withTask(true), When: reschedule("t-1", "2025-04-20"), WantCode: domain.CodeRefused, WantMessage: "task t-1 is already done"},
		{Name: "a cancelled task is refused", Given: withCancelledTask(), When: reschedule("t-1", "2025-04-20"), WantCode: domain.CodeRefused, WantMessage: "task t-1 was cancelled (no longer needed)"},
	})
}

func TestReassignTask(t *testing.T) {
	t.Parallel()
	domaintest.Run(t, []contactCase{
		{Name: "reassigning a task of a missing contact is not found", When: reassign("t-1", "bob"), WantCode: domain.CodeNotFound, WantMessage: "contact not found"},
		{
			Name: "an open task is handed to someone else, trimmed", Given: withTask(false), When: reassign("t-1", " bob "),
			Then: []domain.Event{&contact.TaskReassigned{ContactID: contactID, TaskID: "t-1", From: "alice", To: "bob"}},
		},
		{Name: "the same assignee changes nothing and is refused", Given: withTask(false), When: reassign("t-1", "alice"), WantCode: domain.CodeRefused, WantMessage: "task t-1 is already assigned to alice"},
		{Name: "an empty assignee is invalid", Given: withTask(false), When: reassign("t-1", "  "), WantCode: domain.CodeInvalid, WantMessage: "assignee: is required"},
		{Name: "an assignee of 501 characters is invalid", Given: withTask(false), When: reassign("t-1", strings.Repeat("a", 501)), WantCode: domain.CodeInvalid, WantMessage: "assignee: is longer than 500 characters"},
		{Name: "an unknown task is not found", Given: withTask(false), When: reassign("t-2", "bob"), WantCode: domain.CodeNotFound, WantMessage: "task t-2 not found"},
		{Name: "a done task is refused", Given: withTask(true), When: reassign("t-1", "bob"), WantCode: domain.CodeRefused, WantMessage: "task t-1 is already done"},
		{Name: "a cancelled task is refused", Given: withCancelledTask(), When: reassign("t-1", "bob"), WantCode: domain.CodeRefused, WantMessage: "task t-1 was cancelled"},
	})
}

func TestCancelTask(t *testing.T) {
	t.Parallel()
	domaintest.Run(t, []contactCase{
		{Name: "cancelling a task of a missing contact is not found", When: cancel("t-1", "x"), WantCode: domain.CodeNotFound, WantMessage: "contact not found"},
		{
			Name: "an open task is cancelled with its reason, trimmed", Given: withTask(false), When: cancel("t-1", " duplicate of t-2 "),
			Then: []domain.Event{&contact.TaskCancelled{ContactID: contactID, TaskID: "t-1", Reason: "duplicate of t-2"}},
		},
		{Name: "a cancel without a reason is invalid", Given: withTask(false), When: cancel("t-1", " "), WantCode: domain.CodeInvalid, WantMessage: "reason: is required"},
		{Name: "a reason of 1001 characters is invalid", Given: withTask(false), When: cancel("t-1", strings.Repeat("r", 1001)), WantCode: domain.CodeInvalid, WantMessage: "reason: is longer than 1000 characters"},
		{Name: "an unknown task is not found", Given: withTask(false), When: cancel("t-2", "x"), WantCode: domain.CodeNotFound, WantMessage: "task t-2 not found"},
		{Name: "a done task cannot be cancelled", Given: withTask(true), When: cancel("t-1", "x"), WantCode: domain.CodeRefused, WantMessage: "task t-1 is already done"},
		{Name: "a cancelled task cannot be cancelled again", Given: withCancelledTask(), When: cancel("t-1", "x"), WantCode: domain.CodeRefused, WantMessage: "task t-1 was cancelled"},
	})
}

// TestCompleteClosedTask: completing is refused on a task closed either way.
func TestCompleteClosedTask(t *testing.T) {
	t.Parallel()
	domaintest.Run(t, []contactCase{
		{Name: "completing a cancelled task is refused", Given: withCancelledTask(), When: complete("t-1"), WantCode: domain.CodeRefused, WantMessage: "task t-1 was cancelled (no longer needed)"},
		{
			Name:  "a rescheduled and reassigned task can still be completed",
			Given: append(withTask(false), &contact.TaskRescheduled{ContactID: contactID, TaskID: "t-1", From: "2025-04-10", To: "2025-04-20"}, &contact.TaskReassigned{ContactID: contactID, TaskID: "t-1", From: "alice", To: "bob"}),
			When:  complete("t-1"),
			Then:  []domain.Event{&contact.TaskCompleted{ContactID: contactID, TaskID: "t-1"}},
		},
	})
}

func addNote(text, author string) func(*contact.Contact) ([]domain.Event, error) {
	return func(c *contact.Contact) ([]domain.Event, error) { return c.AddNote("n-1", text, author) }
}

func TestAddNote(t *testing.T) {
	t.Parallel()
	domaintest.Run(t, []contactCase{
		{Name: "a note on a missing contact is not found", When: addNote("hello", "alice"), WantCode: domain.CodeNotFound, WantMessage: "contact not found"},
		{
			Name: "a note is recorded with its author, trimmed", Given: existing(), When: addNote(" 予算は4月に確定 ", "bob"),
			Then: []domain.Event{&contact.NoteAdded{ContactID: contactID, NoteID: "n-1", Text: "予算は4月に確定", Author: "bob"}},
		},
		{
			Name: "a note of 10000 Japanese characters is accepted", Given: existing(), When: addNote(strings.Repeat("話", 10000), "bob"),
			Then: []domain.Event{&contact.NoteAdded{ContactID: contactID, NoteID: "n-1", Text: strings.Repeat("話", 10000), Author: "bob"}},
		},
		{Name: "a note of 10001 characters is invalid", Given: existing(), When: addNote(strings.Repeat("n", 10001), "bob"), WantCode: domain.CodeInvalid, WantMessage: "text: is longer than 10000 characters"},
		{Name: "an empty note is invalid", Given: existing(), When: addNote(" \n ", "bob"), WantCode: domain.CodeInvalid, WantMessage: "text: is required"},
		{Name: "a note without an author is invalid", Given: existing(), When: addNote("hello", ""), WantCode: domain.CodeInvalid, WantMessage: "author: is required"},
	})
}
