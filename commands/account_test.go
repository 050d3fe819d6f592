package commands_test

import (
	"context"
	"testing"

	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/account"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/domain/domaintest"
)

func mustCreateAccount(t testing.TB, h *commands.Handler, name string) commands.Result {
	t.Helper()
	res, err := h.CreateAccount(context.Background(), commands.Meta{Actor: "alice"},
		commands.CreateAccount{Name: name, Domain: "tanaka.example", Size: "10-49", Address: &account.Address{City: "Osaka", Country: "JP"}})
	if err != nil {
		t.Fatalf("create account: %v", err)
	}
	return res
}

func TestCreateAndUpdateAccount(t *testing.T) {
	t.Parallel()
	h, _ := newHandler(t)
	ctx := context.Background()
	a := mustCreateAccount(t, h, "Tanaka Shoji")
	tests := []struct {
		name    string
		cmd     commands.UpdateAccount
		code    domain.Code
		version int64
	}{
		{"a real change is recorded", commands.UpdateAccount{Industry: ptr("wholesale"), Size: ptr("10-49")}, "", 2},
		{"the same values are refused", commands.UpdateAccount{Industry: ptr("wholesale"), Name: ptr("Tanaka Shoji")}, domain.CodeRefused, 2},
		{"a bad size band is invalid", commands.UpdateAccount{Size: ptr("huge")}, domain.CodeInvalid, 2},
		{"the address is replaced", commands.UpdateAccount{Address: &account.Address{City: "Kyoto", Country: "jp"}}, "", 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cmd.AccountID = a.ID
			_, err := h.UpdateAccount(ctx, commands.Meta{Actor: "alice"}, tc.cmd)
			if got := domain.ErrorCode(err); got != tc.code || (tc.code == "" && err != nil) {
				t.Fatalf("err = %v; want code %q", err, tc.code)
			}
			got, err := h.Account(ctx, a.ID, commands.At{})
			if err != nil || got.Version != tc.version {
				t.Fatalf("account %+v, %v; want version %d", got, err, tc.version)
			}
		})
	}
	got, err := h.Account(ctx, a.ID, commands.At{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "Tanaka Shoji" || got.Industry != "wholesale" || got.Address == nil || *got.Address != (account.Address{City: "Kyoto", Country: "JP"}) {
		t.Errorf("account = %+v (address %+v)", got, got.Address)
	}
	if _, err := h.Account(ctx, "nope", commands.At{}); domain.ErrorCode(err) != domain.CodeNotFound {
		t.Errorf("unknown account: %v, want not found", err)
	}
}

// TestContactMovesBetweenAccounts: the contact's stream shows which account it belonged to
// when, and a move is one event naming both accounts.
func TestContactMovesBetweenAccounts(t *testing.T) {
	t.Parallel()
	h, store := newHandler(t)
	ctx := context.Background()
	c := mustCreate(t, h)
	first, second := mustCreateAccount(t, h, "Tanaka Shoji"), mustCreateAccount(t, h, "Sato Trading")
	meta := commands.Meta{Actor: "alice"}
	link := func(accountID string) func(ctx context.Context) (commands.Result, error) {
		return func(ctx context.Context) (commands.Result, error) {
			return h.LinkContactToAccount(ctx, meta, commands.LinkContactToAccount{ContactID: c.ID, AccountID: accountID})
		}
	}
	unlink := func(accountID string) func(ctx context.Context) (commands.Result, error) {
		return func(ctx context.Context) (commands.Result, error) {
			return h.UnlinkContactFromAccount(ctx, meta, commands.UnlinkContactFromAccount{ContactID: c.ID, AccountID: accountID})
		}
	}
	runSteps(t, h, c.ID, []step{
		{"link to a missing account is invalid", link("nope"), domain.CodeInvalid},
		{"link without an account is invalid", link(""), domain.CodeInvalid},
		{"unlink while in no account is refused", unlink(first.ID), domain.CodeRefused},
		{"link", link(first.ID), ""},
		{"link again to the same account is refused", link(first.ID), domain.CodeRefused},
		{"move to another account", link(second.ID), ""},
		{"unlink from the account it left is refused", unlink(first.ID), domain.CodeRefused},
		{"unlink", unlink(second.ID), ""},
	})
	events, err := store.ReadStream(ctx, contact.StreamName(c.ID), 2, 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []domain.Event
	for _, e := range events {
		de, err := h.Registry().Decode(e.Type, e.Data)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, de)
	}
	want := []domain.Event{
		&contact.AccountLinked{ContactID: c.ID, AccountID: first.ID},
		&contact.AccountLinked{ContactID: c.ID, AccountID: second.ID, FromAccountID: first.ID},
		&contact.AccountUnlinked{ContactID: c.ID, AccountID: second.ID},
	}
	if d := domaintest.DiffEvents(want, got); d != "" {
		t.Errorf("contact history (-want +got):\n%s", d)
	}
	past, err := h.Contact(ctx, c.ID, commands.At{Version: 3})
	if err != nil || past.AccountID != second.ID {
		t.Errorf("at version 3 the contact is in %q (%v); want %s", past.AccountID, err, second.ID)
	}
}
