package commands_test

import (
	"context"
	"slices"
	"testing"

	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/deal"
)

func ptr[T any](v T) *T { return &v }

func mustOpenDeal(t testing.TB, h *commands.Handler, contactID string) commands.Result {
	t.Helper()
	res, err := h.OpenDeal(context.Background(), commands.Meta{Actor: "alice"},
		commands.OpenDeal{ContactID: contactID, Title: "CRM rollout", Amount: 3_000_000, Currency: "JPY", ExpectedClose: "2026-06-30"})
	if err != nil {
		t.Fatalf("open deal: %v", err)
	}
	return res
}

func TestUpdateDeal(t *testing.T) {
	t.Parallel()
	h, store := newHandler(t)
	ctx := context.Background()
	d := mustOpenDeal(t, h, mustCreate(t, h).ID)
	meta := commands.Meta{Actor: "alice"}
	tests := []struct {
		name      string
		cmd       commands.UpdateDeal
		code      domain.Code
		wantTypes []string
	}{
		{"amount and owner, each an event", commands.UpdateDeal{Amount: ptr(int64(3_500_000)), Owner: ptr("bob"), Title: ptr("CRM rollout")},
			"", []string{deal.TypeAmountChanged, deal.TypeOwnerChanged}},
		{"the same values change nothing and are refused", commands.UpdateDeal{Amount: ptr(int64(3_500_000)), Owner: ptr("bob")}, domain.CodeRefused, nil},
		{"the currency changes with the amount in qualification", commands.UpdateDeal{Amount: ptr(int64(25_000_00)), Currency: ptr("USD")},
			"", []string{deal.TypeAmountChanged}},
		{"a currency alone is invalid", commands.UpdateDeal{Currency: ptr("EUR")}, domain.CodeInvalid, nil},
		{"title and expected close", commands.UpdateDeal{Title: ptr("CRM rollout, 60 seats"), ExpectedClose: ptr("2026-07-31")},
			"", []string{deal.TypeTitleChanged, deal.TypeExpectedCloseChanged}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, err := h.Deal(ctx, d.ID, commands.At{})
			if err != nil {
				t.Fatal(err)
			}
			tc.cmd.DealID = d.ID
			res, err := h.UpdateDeal(ctx, meta, tc.cmd)
			if got := domain.ErrorCode(err); got != tc.code || (tc.code == "" && err != nil) {
				t.Fatalf("err = %v (code %q); want code %q", err, got, tc.code)
			}
			if tc.code != "" {
				if after, _ := h.Deal(ctx, d.ID, commands.At{}); after.Version != before.Version {
					t.Errorf("a refused update moved the deal from version %d to %d", before.Version, after.Version)
				}
				return
			}
			events, err := store.ReadStream(ctx, deal.StreamName(d.ID), before.Version+1, 10)
			if err != nil {
				t.Fatal(err)
			}
			var types []string
			for _, e := range events {
				types = append(types, e.Type)
			}
			if res.Version != before.Version+int64(len(tc.wantTypes)) || !slices.Equal(types, tc.wantTypes) {
				t.Errorf("version %d, events %v; want %d, %v", res.Version, types, before.Version+int64(len(tc.wantTypes)), tc.wantTypes)
			}
		})
	}
	got, err := h.Deal(ctx, d.ID, commands.At{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Amount != (domain.Money{Amount: 25_000_00, Currency: "USD"}) || got.Owner != "bob" || got.Title != "CRM rollout, 60 seats" || got.ExpectedClose != "2026-07-31" {
		t.Errorf("deal = %+v", got)
	}
}

func TestUpdateDealCurrencyFixedFromProposal(t *testing.T) {
	t.Parallel()
	h, _ := newHandler(t)
	ctx := context.Background()
	d := mustOpenDeal(t, h, mustCreate(t, h).ID)
	if _, err := h.ChangeDealStage(ctx, commands.Meta{Actor: "alice"}, commands.ChangeDealStage{DealID: d.ID, Stage: "proposal"}); err != nil {
		t.Fatal(err)
	}
	_, err := h.UpdateDeal(ctx, commands.Meta{Actor: "alice"}, commands.UpdateDeal{DealID: d.ID, Amount: ptr(int64(100)), Currency: ptr("USD")})
	if domain.ErrorCode(err) != domain.CodeRefused {
		t.Fatalf("currency change in proposal: %v, want refused", err)
	}
	if _, err := h.WinDeal(ctx, commands.Meta{Actor: "alice"}, commands.WinDeal{DealID: d.ID}); err != nil {
		t.Fatal(err)
	}
	_, err = h.UpdateDeal(ctx, commands.Meta{Actor: "alice"}, commands.UpdateDeal{DealID: d.ID, Owner: ptr("bob")})
	if domain.ErrorCode(err) != domain.CodeRefused {
		t.Fatalf("editing a won deal: %v, want refused", err)
	}
}
