package contact_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/domain/domaintest"
)

const survivorID = "c-2"

func inAccount(accountID string) []domain.Event {
	return append(existing(), &contact.AccountLinked{ContactID: contactID, AccountID: accountID})
}

func mergedInto(into string) []domain.Event {
	return append(existing(), &contact.MergedInto{ContactID: contactID, Into: into})
}

func link(accountID string) func(*contact.Contact) ([]domain.Event, error) {
	return func(c *contact.Contact) ([]domain.Event, error) { return c.LinkAccount(accountID) }
}

func unlink(accountID string) func(*contact.Contact) ([]domain.Event, error) {
	return func(c *contact.Contact) ([]domain.Event, error) { return c.UnlinkAccount(accountID) }
}

func TestLinkAccount(t *testing.T) {
	t.Parallel()
	domaintest.Run(t, []contactCase{
		{Name: "linking a missing contact is not found", When: link("a-1"), WantCode: domain.CodeNotFound, WantMessage: "contact not found"},
		{Name: "a contact without an account is linked", Given: existing(), When: link("a-1"),
			Then: []domain.Event{&contact.AccountLinked{ContactID: contactID, AccountID: "a-1"}}},
		{Name: "a contact in another account moves, naming both", Given: inAccount("a-1"), When: link("a-2"),
			Then: []domain.Event{&contact.AccountLinked{ContactID: contactID, AccountID: "a-2", FromAccountID: "a-1"}}},
		{Name: "linking to the account it is in changes nothing and is refused", Given: inAccount("a-1"), When: link("a-1"),
			WantCode: domain.CodeRefused, WantMessage: "contact already belongs to account a-1"},
		{Name: "an empty account id is invalid", Given: existing(), When: link(""), WantCode: domain.CodeInvalid, WantMessage: "account_id: is required"},
		{Name: "a contact unlinked earlier is linked again", Given: append(inAccount("a-1"), &contact.AccountUnlinked{ContactID: contactID, AccountID: "a-1"}), When: link("a-1"),
			Then: []domain.Event{&contact.AccountLinked{ContactID: contactID, AccountID: "a-1"}}},
		{Name: "a merged contact is refused, naming the survivor", Given: mergedInto(survivorID), When: link("a-1"),
			WantCode: domain.CodeMerged, WantMessage: "contact c-1 was merged into c-2"},
	})
}

func TestUnlinkAccount(t *testing.T) {
	t.Parallel()
	domaintest.Run(t, []contactCase{
		{Name: "unlinking a missing contact is not found", When: unlink("a-1"), WantCode: domain.CodeNotFound, WantMessage: "contact not found"},
		{Name: "a contact leaves its account", Given: inAccount("a-1"), When: unlink("a-1"),
			Then: []domain.Event{&contact.AccountUnlinked{ContactID: contactID, AccountID: "a-1"}}},
		{Name: "a contact in no account is refused", Given: existing(), When: unlink("a-1"), WantCode: domain.CodeRefused, WantMessage: "contact belongs to no account"},
		{Name: "a contact in another account is refused", Given: inAccount("a-2"), When: unlink("a-1"),
			WantCode: domain.CodeRefused, WantMessage: "contact belongs to account a-2, not a-1"},
		{Name: "an empty account id is invalid", Given: inAccount("a-1"), When: unlink(""), WantCode: domain.CodeInvalid, WantMessage: "account_id: is required"},
	})
}

// survivor is the state of contact c-2, built from its events.
func survivor(events ...domain.Event) *contact.Contact {
	created := &contact.Created{ContactID: survivorID, Name: contact.PersonName{Family: "Aiko Tanaka"}, Channel: contact.ChannelReferral, Owner: "bob"}
	return domaintest.Fold[contact.Contact](append([]domain.Event{created}, events...))
}

func merge(into string, s *contact.Contact, allowCross bool) func(*contact.Contact) ([]domain.Event, error) {
	return func(c *contact.Contact) ([]domain.Event, error) { return c.MergeInto(into, s, allowCross) }
}

func TestMergeInto(t *testing.T) {
	t.Parallel()
	linked := func(account string) *contact.AccountLinked {
		return &contact.AccountLinked{ContactID: survivorID, AccountID: account}
	}
	domaintest.Run(t, []contactCase{
		{Name: "merging a missing contact is not found", When: merge(survivorID, survivor(), false), WantCode: domain.CodeNotFound, WantMessage: "contact not found"},
		{Name: "a duplicate is merged into its survivor", Given: existing(), When: merge(survivorID, survivor(), false),
			Then: []domain.Event{&contact.MergedInto{ContactID: contactID, Into: survivorID}}},
		{Name: "a contact is not merged into itself", Given: existing(), When: merge(contactID, domaintest.Fold[contact.Contact](existing()), false),
			WantCode: domain.CodeRefused, WantMessage: "a contact cannot be merged into itself"},
		{Name: "a missing survivor is invalid", Given: existing(), When: merge(survivorID, nil, false), WantCode: domain.CodeInvalid, WantMessage: "into: contact c-2 does not exist"},
		{Name: "no survivor id is invalid", Given: existing(), When: merge("", nil, false), WantCode: domain.CodeInvalid, WantMessage: "into: is required"},
		{Name: "a duplicate merged before is refused, naming where it went", Given: mergedInto("c-9"), When: merge(survivorID, survivor(), false),
			WantCode: domain.CodeMerged, WantMessage: "contact c-1 was merged into c-9"},
		{Name: "a survivor merged before is refused, naming where it went", Given: existing(),
			When:     merge(survivorID, survivor(&contact.MergedInto{ContactID: survivorID, Into: "c-9"}), false),
			WantCode: domain.CodeRefused, WantMessage: "contact c-2 was itself merged into c-9: merge into that one"},
		{Name: "contacts of two accounts are refused", Given: inAccount("a-1"), When: merge(survivorID, survivor(linked("a-2")), false),
			WantCode: domain.CodeRefused, WantMessage: "contact c-1 belongs to account a-1 and c-2 to account a-2: set allow_cross_account"},
		{Name: "contacts of two accounts are merged when allowed, recorded as such", Given: inAccount("a-1"), When: merge(survivorID, survivor(linked("a-2")), true),
			Then: []domain.Event{&contact.MergedInto{ContactID: contactID, Into: survivorID, CrossAccount: true}}},
		{Name: "contacts of one account are merged", Given: inAccount("a-1"), When: merge(survivorID, survivor(linked("a-1")), false),
			Then: []domain.Event{&contact.MergedInto{ContactID: contactID, Into: survivorID}}},
		{Name: "a duplicate in no account merges into a survivor in one", Given: existing(), When: merge(survivorID, survivor(linked("a-2")), false),
			Then: []domain.Event{&contact.MergedInto{ContactID: contactID, Into: survivorID}}},
	})
}

// TestMergedContactRefusesEveryCommand: after the merge, every decision on the duplicate is a
// merged error that names the survivor.
func TestMergedContactRefusesEveryCommand(t *testing.T) {
	t.Parallel()
	given := append(withTask(false), &contact.MergedInto{ContactID: contactID, Into: survivorID})
	name := "Other"
	decisions := map[string]func(*contact.Contact) ([]domain.Event, error){
		"update":          update(contact.Update{Name: &name}),
		"change phase":    func(c *contact.Contact) ([]domain.Event, error) { return c.ChangePhase("approach", "") },
		"touchpoint":      touchAt("meeting", domaintest.OccurredAt),
		"purchase":        purchase(100, "JPY", "Suite", ""),
		"survey":          survey(9),
		"usage":           usage(50),
		"schedule task":   schedule("t-2", "Call", "2025-05-01", ""),
		"complete task":   complete("t-1"),
		"reschedule task": reschedule("t-1", "2025-05-01"),
		"reassign task":   reassign("t-1", "bob"),
		"cancel task":     cancel("t-1", "merged"),
		"opt out":         optOut("email"),
		"add note":        addNote("hello", "alice"),
		"link account":    link("a-1"),
		"unlink account":  unlink("a-1"),
		"merge again":     merge("c-3", survivor(), false),
	}
	var cases []contactCase
	for name, when := range decisions {
		cases = append(cases, contactCase{Name: name, Given: given, When: when, WantCode: domain.CodeMerged, WantMessage: "contact c-1 was merged into c-2"})
	}
	domaintest.Run(t, cases)
}

func absorb(duplicate *contact.Contact) func(*contact.Contact) ([]domain.Event, error) {
	return func(c *contact.Contact) ([]domain.Event, error) { return c.AbsorbDuplicate(duplicate) }
}

func TestAbsorbDuplicate(t *testing.T) {
	t.Parallel()
	merged := domaintest.Fold[contact.Contact](mergedInto(survivorID))
	survivorEvents := func(events ...domain.Event) []domain.Event {
		return append([]domain.Event{&contact.Created{ContactID: survivorID, Name: contact.PersonName{Family: "Aiko"}, Channel: contact.ChannelReferral, Owner: "bob"}}, events...)
	}
	domaintest.Run(t, []contactCase{
		{Name: "the survivor records the duplicate", Given: survivorEvents(), When: absorb(merged),
			Then: []domain.Event{&contact.DuplicateAbsorbed{ContactID: survivorID, DuplicateID: contactID}}},
		{Name: "a duplicate absorbed before is a conflict", Given: survivorEvents(&contact.DuplicateAbsorbed{ContactID: survivorID, DuplicateID: contactID}),
			When: absorb(merged), WantCode: domain.CodeConflict, WantMessage: "contact c-2 has already absorbed c-1"},
		{Name: "a survivor merged on since still records the duplicate", Given: survivorEvents(&contact.MergedInto{ContactID: survivorID, Into: "c-9"}),
			When: absorb(merged), Then: []domain.Event{&contact.DuplicateAbsorbed{ContactID: survivorID, DuplicateID: contactID}}},
		{Name: "a contact not merged into the survivor is refused", Given: survivorEvents(), When: absorb(domaintest.Fold[contact.Contact](existing())),
			WantCode: domain.CodeRefused, WantMessage: "only a contact merged into c-2 can be absorbed by it"},
		{Name: "a missing survivor is not found", When: absorb(merged), WantCode: domain.CodeNotFound, WantMessage: "contact not found"},
	})
}

func TestApplyLaterEvents(t *testing.T) {
	t.Parallel()
	got := foldContact([]timedEvent{
		{at(1), created()},
		{at(2), &contact.TaskScheduled{ContactID: contactID, TaskID: "t-1", Title: "Call", Due: "2025-04-10", Assignee: "alice"}},
		{at(2), &contact.TaskScheduled{ContactID: contactID, TaskID: "t-2", Title: "Mail", Due: "2025-04-11", Assignee: "alice"}},
		{at(3), &contact.TaskRescheduled{ContactID: contactID, TaskID: "t-1", From: "2025-04-10", To: "2025-04-17"}},
		{at(3), &contact.TaskReassigned{ContactID: contactID, TaskID: "t-1", From: "alice", To: "bob"}},
		{at(4), &contact.TaskCancelled{ContactID: contactID, TaskID: "t-2", Reason: "duplicate"}},
		{at(5), &contact.NoteAdded{ContactID: contactID, NoteID: "n-1", Text: "hi", Author: "alice"}},
		{at(5), &contact.NoteAdded{ContactID: contactID, NoteID: "n-2", Text: "again", Author: "bob"}},
		{at(6), &contact.AccountLinked{ContactID: contactID, AccountID: "a-1"}},
		{at(7), &contact.AccountLinked{ContactID: contactID, AccountID: "a-2", FromAccountID: "a-1"}},
		{at(8), &contact.DuplicateAbsorbed{ContactID: contactID, DuplicateID: "c-7"}},
		{at(9), &contact.MergedInto{ContactID: contactID, Into: "c-9"}},
	})
	tests := []struct {
		name      string
		got, want any
	}{
		{"task t-1 was moved and handed over", got.Tasks[0], contact.Task{ID: "t-1", Title: "Call", Due: "2025-04-17", Assignee: "bob"}},
		{"task t-2 was cancelled", got.Tasks[1], contact.Task{ID: "t-2", Title: "Mail", Due: "2025-04-11", Assignee: "alice", Cancelled: true, CancelReason: "duplicate", CancelledAt: ptr(at(4))}},
		{"notes are counted", got.Notes, 2},
		{"the account is the last one linked", got.AccountID, "a-2"},
		{"absorbed duplicates are listed", got.Absorbed, []string{"c-7"}},
		{"the survivor is named", got.MergedInto, "c-9"},
		{"the version counts every event", got.Version, int64(12)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if !equal(tc.got, tc.want) {
				t.Errorf("got %+v; want %+v", tc.got, tc.want)
			}
		})
	}
	t.Run("unlinking leaves no account", func(t *testing.T) {
		t.Parallel()
		c := foldContact([]timedEvent{{at(1), created()}, {at(2), &contact.AccountLinked{ContactID: contactID, AccountID: "a-1"}},
			{at(3), &contact.AccountUnlinked{ContactID: contactID, AccountID: "a-1"}}})
		if c.AccountID != "" {
			t.Errorf("account %q after unlink", c.AccountID)
		}
	})
	t.Run("an opt-out takes effect at its business time", func(t *testing.T) {
		t.Parallel()
		c := foldContact([]timedEvent{{at(1), created()}, {at(4), &contact.OptedOut{ContactID: contactID, Channel: contact.ConsentSMS}}})
		if want := map[contact.ConsentChannel]time.Time{contact.ConsentSMS: at(4)}; !equal(c.OptedOutAt, want) {
			t.Errorf("OptedOutAt = %v; want %v", c.OptedOutAt, want)
		}
	})
}

func equal(a, b any) bool { return reflect.DeepEqual(a, b) }
