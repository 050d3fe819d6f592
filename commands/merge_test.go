package commands_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/eventstore"
)

func mustCreateNamed(t testing.TB, h *commands.Handler, name string) string {
	t.Helper()
	res, err := h.CreateContact(context.Background(), commands.Meta{Actor: "alice"}, commands.CreateContact{Name: name, Channel: "web_form"})
	if err != nil {
		t.Fatalf("create contact: %v", err)
	}
	return res.ID
}

// lastEvent returns the last event of a contact's stream.
func lastEvent(t testing.TB, store eventstore.Store, id string) eventstore.Event {
	t.Helper()
	ctx := context.Background()
	events, err := store.ReadStream(ctx, contact.StreamName(id), 1, 100)
	if err != nil {
		t.Fatal(err)
	}
	return events[len(events)-1]
}

func TestMergeContact(t *testing.T) {
	t.Parallel()
	h, store := newHandler(t)
	ctx := context.Background()
	dup, survivor := mustCreateNamed(t, h, "Aiko Tanaka"), mustCreateNamed(t, h, "田中 愛子")
	res, err := h.MergeContact(ctx, commands.Meta{Actor: "bob", Reason: "same person"}, commands.MergeContact{ContactID: dup, Into: survivor})
	if err != nil {
		t.Fatal(err)
	}
	merged, absorbed := lastEvent(t, store, dup), lastEvent(t, store, survivor)
	if res.ID != dup || res.Version != 2 || res.Position != absorbed.Position {
		t.Errorf("result %+v; want the duplicate at version 2 and the survivor's position %d", res, absorbed.Position)
	}
	if merged.Type != contact.TypeMergedInto || absorbed.Type != contact.TypeDuplicateAbsorbed {
		t.Fatalf("events %s and %s", merged.Type, absorbed.Type)
	}
	if merged.Metadata.CommandID != absorbed.Metadata.CommandID || absorbed.Metadata.Actor != "bob" || absorbed.Metadata.Reason != "same person" {
		t.Errorf("metadata %+v and %+v: want one command, actor and reason", merged.Metadata, absorbed.Metadata)
	}
	state, err := h.Contact(ctx, dup, commands.At{})
	if err != nil || state.MergedInto != survivor {
		t.Fatalf("merged contact %+v, %v; want merged_into %s", state, err, survivor)
	}
	if s, err := h.Contact(ctx, survivor, commands.At{}); err != nil || len(s.Absorbed) != 1 || s.Absorbed[0] != dup {
		t.Errorf("survivor %+v, %v; want it to list %s as absorbed", s, err, dup)
	}

	commandsOnTheDuplicate := []struct {
		name string
		run  func() error
	}{
		{"touchpoint", func() error {
			_, err := h.RecordTouchpoint(ctx, commands.Meta{Actor: "a"}, commands.RecordTouchpoint{ContactID: dup, Kind: "call"})
			return err
		}},
		{"phase", func() error {
			_, err := h.ChangePhase(ctx, commands.Meta{Actor: "a"}, commands.ChangePhase{ContactID: dup, Phase: "approach"})
			return err
		}},
		{"note", func() error {
			_, err := h.AddNote(ctx, commands.Meta{Actor: "a"}, commands.AddNote{ContactID: dup, Text: "hello"})
			return err
		}},
		{"merge again", func() error {
			_, err := h.MergeContact(ctx, commands.Meta{Actor: "a"}, commands.MergeContact{ContactID: dup, Into: survivor})
			return err
		}},
		{"open a deal for it", func() error {
			_, err := h.OpenDeal(ctx, commands.Meta{Actor: "a"}, commands.OpenDeal{ContactID: dup, Title: "x", Amount: 1, Currency: "JPY"})
			return err
		}},
	}
	for _, tc := range commandsOnTheDuplicate {
		t.Run(tc.name+" on the merged contact names the survivor", func(t *testing.T) {
			err := tc.run()
			if into, ok := domain.MergedInto(err); !ok || into != survivor {
				t.Errorf("err = %v; want a merged error naming %s", err, survivor)
			}
		})
	}
	if v := lastEvent(t, store, dup).Version; v != 2 {
		t.Errorf("the duplicate is at version %d after refused commands, want 2", v)
	}
	if v := lastEvent(t, store, survivor).Version; v != 2 {
		t.Errorf("the survivor is at version %d after a refused repeat merge, want 2", v)
	}
}

func TestMergeContactRefusals(t *testing.T) {
	t.Parallel()
	h, _ := newHandler(t)
	ctx := context.Background()
	meta := commands.Meta{Actor: "alice"}
	dup, survivor, other := mustCreateNamed(t, h, "Dup"), mustCreateNamed(t, h, "Survivor"), mustCreateNamed(t, h, "Other")
	gone, goneInto := mustCreateNamed(t, h, "Gone"), mustCreateNamed(t, h, "Gone's survivor")
	if _, err := h.MergeContact(ctx, meta, commands.MergeContact{ContactID: gone, Into: goneInto}); err != nil {
		t.Fatal(err)
	}
	accountA, accountB := mustCreateAccount(t, h, "A"), mustCreateAccount(t, h, "B")
	for id, acc := range map[string]string{dup: accountA.ID, survivor: accountB.ID, other: accountA.ID} {
		if _, err := h.LinkContactToAccount(ctx, meta, commands.LinkContactToAccount{ContactID: id, AccountID: acc}); err != nil {
			t.Fatal(err)
		}
	}
	merge := func(from, into string, allowCross bool) func(ctx context.Context) (commands.Result, error) {
		return func(ctx context.Context) (commands.Result, error) {
			return h.MergeContact(ctx, meta, commands.MergeContact{ContactID: from, Into: into, AllowCrossAccount: allowCross})
		}
	}
	runSteps(t, h, dup, []step{
		{"into itself is refused", merge(dup, dup, false), domain.CodeRefused},
		{"into a missing contact is invalid", merge(dup, "nope", false), domain.CodeInvalid},
		{"without a survivor is invalid", merge(dup, "", false), domain.CodeInvalid},
		{"into a merged contact is refused", merge(dup, gone, false), domain.CodeRefused},
		{"across accounts is refused", merge(dup, survivor, false), domain.CodeRefused},
		{"across accounts when allowed is merged", merge(dup, survivor, true), ""},
	})
	runSteps(t, h, other, []step{
		{"into the duplicate merged before is refused", merge(other, dup, false), domain.CodeRefused},
	})
	if _, err := h.MergeContact(ctx, meta, commands.MergeContact{ContactID: "nope", Into: survivor}); domain.ErrorCode(err) != domain.CodeNotFound {
		t.Errorf("merging a missing contact: %v, want not found", err)
	}
}

// TestMergeInterrupted: a merge that stopped after the duplicate's half is completed by the
// same command sent again, and only once.
func TestMergeInterrupted(t *testing.T) {
	t.Parallel()
	h, store := newHandler(t)
	ctx := context.Background()
	dup, survivor := mustCreateNamed(t, h, "Dup"), mustCreateNamed(t, h, "Survivor")
	half, err := domain.Encode(&contact.MergedInto{ContactID: dup, Into: survivor})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Append(ctx, contact.StreamName(dup), 1, []eventstore.EventData{{ID: uuid.NewString(), Type: contact.TypeMergedInto, Data: half,
		Metadata: eventstore.Metadata{Actor: "alice", CommandID: uuid.NewString()}}}); err != nil {
		t.Fatal(err)
	}
	fresh := commands.NewHandler(store)
	tests := []struct {
		name string
		into string
		code domain.Code
	}{
		{"into another contact is refused, naming the survivor", mustCreateNamed(t, h, "Third"), domain.CodeMerged},
		{"sent again, it completes", survivor, ""},
		{"sent once more, it is refused", survivor, domain.CodeMerged},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := fresh.MergeContact(ctx, commands.Meta{Actor: "alice"}, commands.MergeContact{ContactID: dup, Into: tc.into})
			if got := domain.ErrorCode(err); got != tc.code || (tc.code == "" && err != nil) {
				t.Fatalf("err = %v; want code %q", err, tc.code)
			}
			if tc.code == "" && (res.Version != 2 || res.Position == 0) {
				t.Errorf("result %+v; want the duplicate's version 2 and the survivor's position", res)
			}
		})
	}
	s, err := fresh.Contact(ctx, survivor, commands.At{})
	if err != nil || s.Version != 2 || len(s.Absorbed) != 1 {
		t.Fatalf("survivor %+v, %v; want exactly one absorbed duplicate", s, err)
	}
}

func TestMergeIdempotencyKey(t *testing.T) {
	t.Parallel()
	h, _ := newHandler(t)
	ctx := context.Background()
	dup, survivor := mustCreateNamed(t, h, "Dup"), mustCreateNamed(t, h, "Survivor")
	meta := commands.Meta{Actor: "alice", IdempotencyKey: "merge-1"}
	cmd := commands.MergeContact{ContactID: dup, Into: survivor}
	first, err := h.MergeContact(ctx, meta, cmd)
	if err != nil {
		t.Fatal(err)
	}
	again, err := h.MergeContact(ctx, meta, cmd)
	if err != nil || !again.Replayed || again.Version != first.Version || again.Position != first.Position {
		t.Fatalf("retry %+v, %v; first %+v", again, err, first)
	}
	s, err := h.Contact(ctx, survivor, commands.At{})
	if err != nil || s.Version != 2 {
		t.Fatalf("survivor %+v, %v; want version 2", s, err)
	}
}
