package account

import (
	"strings"
	"unicode/utf8"

	"github.com/eventcrm/crm/domain"
)

// Address is a company's postal address. Country is an ISO 3166-1 alpha-2 code (JP, US).
type Address struct {
	Street     string `json:"street,omitempty"`
	City       string `json:"city,omitempty"`
	Region     string `json:"region,omitempty"`
	PostalCode string `json:"postal_code,omitempty"`
	Country    string `json:"country,omitempty"`
}

// IsZero reports whether no field is set.
func (a Address) IsZero() bool { return a == Address{} }

// normalized returns the address trimmed and checked; field prefixes the names in errors.
func (a Address) normalized(field string) (Address, error) {
	parts := []struct {
		name string
		v    *string
	}{{"street", &a.Street}, {"city", &a.City}, {"region", &a.Region}, {"postal_code", &a.PostalCode}, {"country", &a.Country}}
	for _, p := range parts {
		*p.v = strings.TrimSpace(*p.v)
		if utf8.RuneCountInString(*p.v) > 500 {
			return Address{}, domain.Invalid(field+"."+p.name, "is longer than 500 characters")
		}
	}
	a.Country = strings.ToUpper(a.Country)
	if a.Country != "" && (len(a.Country) != 2 || strings.Trim(a.Country, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "") {
		return Address{}, domain.Invalid(field+".country", "%q is not an ISO 3166-1 alpha-2 country code (e.g. JP, US)", a.Country)
	}
	return a, nil
}
