package account_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/account"
	"github.com/eventcrm/crm/domain/domaintest"
)

const accountID = "a-1"

type accountCase = domaintest.Case[account.Account]

func ptr[T any](v T) *T { return &v }

func tokyo() *account.Address {
	return &account.Address{Street: "1-2-3 Marunouchi", City: "Chiyoda-ku", Region: "Tokyo", PostalCode: "100-0005", Country: "JP"}
}

func created() *account.Created {
	return &account.Created{AccountID: accountID, Name: "Tanaka Shoji", Domain: "tanaka.example", Industry: "wholesale", Size: account.Size50to249, Address: tokyo()}
}

func existing() []domain.Event { return []domain.Event{created()} }

func create(d account.Details) func(*account.Account) ([]domain.Event, error) {
	return func(a *account.Account) ([]domain.Event, error) { return a.Create(accountID, d) }
}

func TestCreate(t *testing.T) {
	t.Parallel()
	cases := []accountCase{
		{Name: "an account with every field is created, trimmed and lower-cased",
			When: create(account.Details{Name: " Tanaka Shoji ", Domain: " Tanaka.EXAMPLE ", Industry: " wholesale ", Size: "50-249",
				Address: &account.Address{Street: " 1-2-3 Marunouchi", City: "Chiyoda-ku", Region: "Tokyo", PostalCode: "100-0005", Country: "jp"}}),
			Then: []domain.Event{created()}},
		{Name: "only the name is required", When: create(account.Details{Name: "Tanaka Shoji"}),
			Then: []domain.Event{&account.Created{AccountID: accountID, Name: "Tanaka Shoji"}}},
		{Name: "an empty address is no address", When: create(account.Details{Name: "Tanaka Shoji", Address: &account.Address{City: " "}}),
			Then: []domain.Event{&account.Created{AccountID: accountID, Name: "Tanaka Shoji"}}},
		{Name: "an existing account is a conflict", Given: existing(), When: create(account.Details{Name: "x"}), WantCode: domain.CodeConflict, WantMessage: "account a-1 exists already"},
		{Name: "no name is invalid", When: create(account.Details{Name: " "}), WantCode: domain.CodeInvalid, WantMessage: "name: is required"},
		{Name: "a name of 501 characters is invalid", When: create(account.Details{Name: strings.Repeat("社", 501)}), WantCode: domain.CodeInvalid, WantMessage: "name: is longer than 500 characters"},
		{Name: "an unknown size band is invalid", When: create(account.Details{Name: "x", Size: "huge"}),
			WantCode: domain.CodeInvalid, WantMessage: `size: "huge" is not a size band (1-9, 10-49, 50-249, 250-999, 1000-4999, 5000+)`},
		{Name: "a URL is not a domain", When: create(account.Details{Name: "x", Domain: "https://tanaka.example"}), WantCode: domain.CodeInvalid, WantMessage: "domain: \"https://tanaka.example\" is not a domain name"},
		{Name: "an email address is not a domain", When: create(account.Details{Name: "x", Domain: "info@tanaka.example"}), WantCode: domain.CodeInvalid, WantMessage: "is not a domain name"},
		{Name: "a single label is not a domain", When: create(account.Details{Name: "x", Domain: "localhost"}), WantCode: domain.CodeInvalid, WantMessage: "is not a domain name"},
		{Name: "a label starting with a hyphen is not a domain", When: create(account.Details{Name: "x", Domain: "-tanaka.example"}), WantCode: domain.CodeInvalid, WantMessage: "is not a domain name"},
		{Name: "an empty label is not a domain", When: create(account.Details{Name: "x", Domain: "tanaka..example"}), WantCode: domain.CodeInvalid, WantMessage: "is not a domain name"},
		{Name: "an industry of 201 characters is invalid", When: create(account.Details{Name: "x", Industry: strings.Repeat("i", 201)}), WantCode: domain.CodeInvalid, WantMessage: "industry: is longer than 200 characters"},
		{Name: "a three-letter country is invalid", When: create(account.Details{Name: "x", Address: &account.Address{Country: "JPN"}}),
			WantCode: domain.CodeInvalid, WantMessage: `address.country: "JPN" is not an ISO 3166-1 alpha-2 country code`},
		{Name: "a street of 501 characters is invalid", When: create(account.Details{Name: "x", Address: &account.Address{Street: strings.Repeat("s", 501)}}),
			WantCode: domain.CodeInvalid, WantMessage: "address.street: is longer than 500 characters"},
		{Name: "no id is invalid", When: func(a *account.Account) ([]domain.Event, error) { return a.Create("", account.Details{Name: "x"}) },
			WantCode: domain.CodeInvalid, WantMessage: "id: is required"},
	}
	for _, size := range account.SizeBands() {
		cases = append(cases, accountCase{Name: "size band " + string(size) + " is accepted", When: create(account.Details{Name: "x", Size: string(size)}),
			Then: []domain.Event{&account.Created{AccountID: accountID, Name: "x", Size: size}}})
	}
	domaintest.Run(t, cases)
}

func update(cmd account.Update) func(*account.Account) ([]domain.Event, error) {
	return func(a *account.Account) ([]domain.Event, error) { return a.Update(cmd) }
}

func TestUpdate(t *testing.T) {
	t.Parallel()
	osaka := account.Address{City: "Kita-ku", Region: "Osaka", Country: "JP"}
	domaintest.Run(t, []accountCase{
		{Name: "updating a missing account is not found", When: update(account.Update{Name: ptr("x")}), WantCode: domain.CodeNotFound, WantMessage: "account not found"},
		{Name: "only the changed fields are recorded", Given: existing(),
			When: update(account.Update{Name: ptr("Tanaka Shoji"), Domain: ptr("TANAKA.example"), Industry: ptr("trading"), Size: ptr("250-999"), Address: tokyo()}),
			Then: []domain.Event{&account.DetailsChanged{AccountID: accountID, Industry: ptr("trading"), Size: ptr(account.Size250to999)}}},
		{Name: "a new address replaces the old one", Given: existing(), When: update(account.Update{Address: &osaka}),
			Then: []domain.Event{&account.DetailsChanged{AccountID: accountID, Address: &osaka}}},
		{Name: "an empty address clears it", Given: existing(), When: update(account.Update{Address: &account.Address{}}),
			Then: []domain.Event{&account.DetailsChanged{AccountID: accountID, Address: &account.Address{}}}},
		{Name: "an empty domain, industry and size clear them", Given: existing(), When: update(account.Update{Domain: ptr(""), Industry: ptr(" "), Size: ptr("")}),
			Then: []domain.Event{&account.DetailsChanged{AccountID: accountID, Domain: ptr(""), Industry: ptr(""), Size: ptr(account.SizeBand(""))}}},
		{Name: "an update that changes nothing is refused", Given: existing(), When: update(account.Update{Name: ptr(" Tanaka Shoji "), Address: tokyo()}),
			WantCode: domain.CodeRefused, WantMessage: "the update changes nothing"},
		{Name: "an empty update is refused", Given: existing(), When: update(account.Update{}), WantCode: domain.CodeRefused, WantMessage: "the update changes nothing"},
		{Name: "an empty name is invalid", Given: existing(), When: update(account.Update{Name: ptr("")}), WantCode: domain.CodeInvalid, WantMessage: "name: is required"},
		{Name: "a bad size is invalid even beside a real change", Given: existing(), When: update(account.Update{Industry: ptr("trading"), Size: ptr("big")}),
			WantCode: domain.CodeInvalid, WantMessage: `size: "big" is not a size band`},
		{Name: "a bad domain is invalid", Given: existing(), When: update(account.Update{Domain: ptr("tanaka")}), WantCode: domain.CodeInvalid, WantMessage: "domain:"},
		{Name: "a bad country is invalid", Given: existing(), When: update(account.Update{Address: &account.Address{Country: "J1"}}), WantCode: domain.CodeInvalid, WantMessage: "address.country:"},
	})
}

func TestApply(t *testing.T) {
	t.Parallel()
	day := func(d int) time.Time { return time.Date(2025, 5, d, 9, 0, 0, 0, time.UTC) }
	fold := func(events ...domain.Event) *account.Account {
		var a account.Account
		for i, e := range events {
			a.Apply(e, day(i+1))
		}
		return &a
	}
	tests := []struct {
		name string
		got  *account.Account
		want account.Account
	}{
		{"created", fold(created()), account.Account{ID: accountID, Version: 1, Name: "Tanaka Shoji", Domain: "tanaka.example", Industry: "wholesale",
			Size: account.Size50to249, Address: tokyo(), CreatedAt: day(1)}},
		{"changed and cleared", fold(created(), &account.DetailsChanged{AccountID: accountID, Name: ptr("Tanaka HD"), Domain: ptr(""), Size: ptr(account.Size5000Plus)},
			&account.DetailsChanged{AccountID: accountID, Address: &account.Address{}}),
			account.Account{ID: accountID, Version: 3, Name: "Tanaka HD", Industry: "wholesale", Size: account.Size5000Plus, CreatedAt: day(1)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if !reflect.DeepEqual(*tc.got, tc.want) {
				t.Errorf("state\ngot  %+v (address %+v)\nwant %+v (address %+v)", *tc.got, tc.got.Address, tc.want, tc.want.Address)
			}
		})
	}
}

func TestStreamName(t *testing.T) {
	t.Parallel()
	if got := account.StreamName("a-1"); got != "account-a-1" {
		t.Errorf("StreamName = %q", got)
	}
	tests := []struct {
		name, stream, want string
		wantErr            bool
	}{
		{"an account stream", "account-a-1", "a-1", false},
		{"a contact stream", "contact-a-1", "", true},
		{"no id", "account-", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := account.IDFromStream(tc.stream)
			if got != tc.want || (err != nil) != tc.wantErr {
				t.Errorf("IDFromStream(%q) = %q, %v", tc.stream, got, err)
			}
		})
	}
}
