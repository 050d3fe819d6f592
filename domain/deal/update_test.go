package deal_test

import (
	"strings"
	"testing"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/deal"
	"github.com/eventcrm/crm/domain/domaintest"
)

func update(cmd deal.Update) func(*deal.Deal) ([]domain.Event, error) {
	return func(d *deal.Deal) ([]domain.Event, error) { return d.Update(cmd) }
}

func usd(amount int64) domain.Money { return domain.Money{Amount: amount, Currency: "USD"} }

func TestUpdate(t *testing.T) {
	t.Parallel()
	domaintest.Run(t, []dealCase{
		{Name: "editing a missing deal is not found", When: update(deal.Update{Title: ptr("x")}), WantCode: domain.CodeNotFound, WantMessage: "deal not found"},
		{
			Name:  "every field changes, one event each, in a fixed order",
			Given: inStage(deal.StageProposal),
			When: update(deal.Update{Owner: ptr(" bob "), ExpectedClose: ptr("2025-07-31"), Amount: ptr(int64(3_500_000)),
				Title: ptr(" CRM rollout, 60 seats ")}),
			Then: []domain.Event{
				&deal.TitleChanged{DealID: dealID, From: "CRM rollout", To: "CRM rollout, 60 seats"},
				&deal.AmountChanged{DealID: dealID, From: jpy(3_000_000), To: jpy(3_500_000)},
				&deal.ExpectedCloseChanged{DealID: dealID, From: "2025-06-30", To: "2025-07-31"},
				&deal.OwnerChanged{DealID: dealID, From: "alice", To: "bob"},
			},
		},
		{
			Name: "only the fields that really change are recorded", Given: inStage(deal.StageProposal),
			When: update(deal.Update{Title: ptr("CRM rollout"), Amount: ptr(int64(3_000_000)), Currency: ptr("JPY"), Owner: ptr("carol")}),
			Then: []domain.Event{&deal.OwnerChanged{DealID: dealID, From: "alice", To: "carol"}},
		},
		{Name: "an update that changes nothing is refused", Given: inStage(deal.StageProposal),
			When:     update(deal.Update{Title: ptr("CRM rollout"), Amount: ptr(int64(3_000_000)), ExpectedClose: ptr("2025-06-30"), Owner: ptr("alice")}),
			WantCode: domain.CodeRefused, WantMessage: "the update changes nothing"},
		{Name: "an empty update is refused", Given: inStage(deal.StageProposal), When: update(deal.Update{}), WantCode: domain.CodeRefused, WantMessage: "the update changes nothing"},
		{
			Name: "the expected close can be cleared", Given: inStage(deal.StageQualification), When: update(deal.Update{ExpectedClose: ptr("")}),
			Then: []domain.Event{&deal.ExpectedCloseChanged{DealID: dealID, From: "2025-06-30"}},
		},
		{
			Name: "a free deal (amount 0) is accepted", Given: inStage(deal.StageQualification), When: update(deal.Update{Amount: ptr(int64(0))}),
			Then: []domain.Event{&deal.AmountChanged{DealID: dealID, From: jpy(3_000_000), To: jpy(0)}},
		},
		{
			Name: "the currency changes with the amount in qualification", Given: inStage(deal.StageQualification),
			When: update(deal.Update{Amount: ptr(int64(25_000_00)), Currency: ptr("USD")}),
			Then: []domain.Event{&deal.AmountChanged{DealID: dealID, From: jpy(3_000_000), To: usd(25_000_00)}},
		},
		{
			Name: "the currency changes in needs_analysis", Given: inStage(deal.StageNeedsAnalysis),
			When: update(deal.Update{Amount: ptr(int64(25_000_00)), Currency: ptr("USD")}),
			Then: []domain.Event{&deal.AmountChanged{DealID: dealID, From: jpy(3_000_000), To: usd(25_000_00)}},
		},
		{
			Name:  "the currency changes again after a move back before proposal",
			Given: append(inStage(deal.StageProposal), &deal.StageChanged{DealID: dealID, From: deal.StageProposal, To: deal.StageNeedsAnalysis}),
			When:  update(deal.Update{Amount: ptr(int64(100)), Currency: ptr("EUR")}),
			Then:  []domain.Event{&deal.AmountChanged{DealID: dealID, From: jpy(3_000_000), To: domain.Money{Amount: 100, Currency: "EUR"}}},
		},
		{Name: "the currency is fixed from proposal on", Given: inStage(deal.StageProposal), When: update(deal.Update{Amount: ptr(int64(25_000_00)), Currency: ptr("USD")}),
			WantCode: domain.CodeRefused, WantMessage: "the deal's currency is JPY and is fixed from stage proposal on (the deal is in proposal)"},
		{Name: "the currency is fixed in negotiation", Given: inStage(deal.StageNegotiation), When: update(deal.Update{Amount: ptr(int64(1)), Currency: ptr("EUR")}),
			WantCode: domain.CodeRefused, WantMessage: "fixed from stage proposal on"},
		{Name: "a currency without an amount is invalid", Given: inStage(deal.StageQualification), When: update(deal.Update{Currency: ptr("USD")}),
			WantCode: domain.CodeInvalid, WantMessage: "currency: is changed only together with the amount"},
		{Name: "a bad currency is invalid", Given: inStage(deal.StageQualification), When: update(deal.Update{Amount: ptr(int64(1)), Currency: ptr("usd")}),
			WantCode: domain.CodeInvalid, WantMessage: `currency: "usd" is not an ISO 4217 currency code`},
		{Name: "a negative amount is invalid", Given: inStage(deal.StageQualification), When: update(deal.Update{Amount: ptr(int64(-1))}),
			WantCode: domain.CodeInvalid, WantMessage: "amount: amount -1 is negative"},
		{Name: "an empty title is invalid", Given: inStage(deal.StageQualification), When: update(deal.Update{Title: ptr(" ")}), WantCode: domain.CodeInvalid, WantMessage: "title: must not be empty"},
		{Name: "a title of 501 characters is invalid", Given: inStage(deal.StageQualification), When: update(deal.Update{Title: ptr(strings.Repeat("t", 501))}),
			WantCode: domain.CodeInvalid, WantMessage: "title: is longer than 500 characters"},
		{Name: "a bad expected close is invalid", Given: inStage(deal.StageQualification), When: update(deal.Update{ExpectedClose: ptr("2025-06-31")}),
			WantCode: domain.CodeInvalid, WantMessage: `expected_close: "2025-06-31" is not a date`},
		{Name: "an empty owner is invalid", Given: inStage(deal.StageQualification), When: update(deal.Update{Owner: ptr("")}), WantCode: domain.CodeInvalid, WantMessage: "owner: must not be empty"},
		{Name: "a bad field refuses the whole update", Given: inStage(deal.StageQualification), When: update(deal.Update{Title: ptr("New"), Owner: ptr(" ")}),
			WantCode: domain.CodeInvalid, WantMessage: "owner: must not be empty"},
		{Name: "a won deal is refused", Given: wonFrom(deal.StageNegotiation), When: update(deal.Update{Owner: ptr("bob")}),
			WantCode: domain.CodeRefused, WantMessage: "deal is won: reopen it before editing it"},
		{Name: "a lost deal is refused", Given: lostFrom(deal.StageProposal), When: update(deal.Update{Title: ptr("x")}),
			WantCode: domain.CodeRefused, WantMessage: "deal is lost: reopen it before editing it"},
		{
			Name:  "a reopened deal can be edited",
			Given: append(lostFrom(deal.StageProposal), &deal.Reopened{DealID: dealID, From: deal.StageLost, To: deal.StageProposal}),
			When:  update(deal.Update{Owner: ptr("bob")}),
			Then:  []domain.Event{&deal.OwnerChanged{DealID: dealID, From: "alice", To: "bob"}},
		},
	})
}

func TestApplyEdits(t *testing.T) {
	t.Parallel()
	d := domaintest.Fold[deal.Deal](append(inStage(deal.StageQualification),
		&deal.TitleChanged{DealID: dealID, From: "CRM rollout", To: "Renamed"},
		&deal.AmountChanged{DealID: dealID, From: jpy(3_000_000), To: usd(100)},
		&deal.ExpectedCloseChanged{DealID: dealID, From: "2025-06-30"},
		&deal.OwnerChanged{DealID: dealID, From: "alice", To: "bob"},
	))
	tests := []struct {
		name      string
		got, want any
	}{
		{"title", d.Title, "Renamed"},
		{"amount", d.Amount, usd(100)},
		{"expected close", d.ExpectedClose, domain.Date("")},
		{"owner", d.Owner, "bob"},
		{"version", d.Version, int64(5)},
		{"stage unchanged", d.Stage, deal.StageQualification},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.got != tc.want {
				t.Errorf("%s = %v; want %v", tc.name, tc.got, tc.want)
			}
		})
	}
}
