package domain_test

import (
	"testing"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/domaintest"
)

func TestNewMoney(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		amount      int64
		currency    string
		want        domain.Money
		wantMessage string // "" when valid
	}{
		{name: "yen", amount: 1_200_000, currency: "JPY", want: domain.Money{Amount: 1_200_000, Currency: "JPY"}},
		{name: "cents", amount: 1999, currency: "USD", want: domain.Money{Amount: 1999, Currency: "USD"}},
		{name: "zero is allowed", amount: 0, currency: "EUR", want: domain.Money{Amount: 0, Currency: "EUR"}},
		{name: "largest amount", amount: 1<<63 - 1, currency: "KWD", want: domain.Money{Amount: 1<<63 - 1, Currency: "KWD"}},
		{name: "negative", amount: -1, currency: "JPY", wantMessage: "price: amount -1 is negative"},
		{name: "negative with bad currency reports the amount", amount: -1, currency: "yen", wantMessage: "amount -1 is negative"},
		{name: "lower case currency", amount: 1, currency: "jpy", wantMessage: `price: "jpy" is not an ISO 4217 currency code (e.g. JPY, USD, EUR)`},
		{name: "empty currency", amount: 1, currency: "", wantMessage: `price: "" is not an ISO 4217 currency code`},
		{name: "unknown code", amount: 1, currency: "YEN", wantMessage: `"YEN" is not an ISO 4217 currency code`},
		{name: "withdrawn code", amount: 1, currency: "HRK", wantMessage: `"HRK" is not an ISO 4217 currency code`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := domain.NewMoney("price", tc.amount, tc.currency)
			if tc.wantMessage != "" {
				domaintest.CheckError(t, err, domain.CodeInvalid, tc.wantMessage)
				if got != (domain.Money{}) {
					t.Errorf("NewMoney returned %v along with an error", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("NewMoney = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestValidateCurrency(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code  string
		valid bool
	}{
		{"JPY", true}, {"USD", true}, {"EUR", true}, {"GBP", true}, {"CNY", true}, {"KRW", true},
		{"AED", true}, {"ZWG", true}, {"VED", true}, {"VES", true}, {"XCG", true}, {"SLE", true},
		{"", false}, {"jpy", false}, {"Jpy", false}, {"JP", false}, {"JPYY", false}, {" JPY", false},
		{"JPY ", false}, {"AED AFN", false}, {"ED ", false}, {" AE", false}, {"   ", false},
		{"XXX", false}, {"XAU", false}, {"BTC", false}, {"HRK", false}, {"ZWL", false},
	}
	for _, tc := range tests {
		t.Run(tc.code, func(t *testing.T) {
			t.Parallel()
			err := domain.ValidateCurrency("currency", tc.code)
			if tc.valid && err != nil {
				t.Errorf("ValidateCurrency(%q) = %v; want valid", tc.code, err)
			}
			if !tc.valid {
				domaintest.CheckError(t, err, domain.CodeInvalid, "currency: ")
			}
		})
	}
}

func TestMoneyString(t *testing.T) {
	t.Parallel()
	if got := (domain.Money{Amount: 1999, Currency: "USD"}).String(); got != "1999 USD" {
		t.Errorf("String() = %q", got)
	}
}
