// Package account is the account aggregate: a company that contacts belong to. One account is
// one event stream. Which contacts belong to it is recorded on the contacts' streams (see
// contact.LinkAccount), so that a contact is in at most one account at a time.
package account

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/eventcrm/crm/domain"
)

// Account is the state of one account, folded from its events.
type Account struct {
	ID        string    `json:"id"`
	Version   int64     `json:"version"`
	Name      string    `json:"name"`
	Domain    string    `json:"domain,omitempty"`
	Industry  string    `json:"industry,omitempty"`
	Size      SizeBand  `json:"size,omitempty"`
	Address   *Address  `json:"address,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// Exists reports whether the account was created.
func (a *Account) Exists() bool { return a.Version > 0 }

// Apply folds one event into the state; occurredAt is the event's business time.
func (a *Account) Apply(e domain.Event, occurredAt time.Time) {
	a.Version++
	switch e := e.(type) {
	case *Created:
		a.ID, a.Name, a.Domain, a.Industry, a.Size = e.AccountID, e.Name, e.Domain, e.Industry, e.Size
		a.Address, a.CreatedAt = e.Address, occurredAt
	case *DetailsChanged:
		set(&a.Name, e.Name)
		set(&a.Domain, e.Domain)
		set(&a.Industry, e.Industry)
		if e.Size != nil {
			a.Size = *e.Size
		}
		if e.Address != nil {
			a.Address = e.Address
			if e.Address.IsZero() {
				a.Address = nil
			}
		}
	}
}

func set(dst *string, v *string) {
	if v != nil {
		*dst = *v
	}
}

// Details are the fields of an account a command sets.
type Details struct {
	Name, Domain, Industry, Size string
	Address                      *Address
}

// Create decides the creation of an account; only the name is required.
func (a *Account) Create(id string, d Details) ([]domain.Event, error) {
	if a.Exists() {
		return nil, domain.Conflict("account %s exists already", id)
	}
	if id == "" {
		return nil, domain.Invalid("id", "is required")
	}
	name, err := parseName(d.Name)
	if err != nil {
		return nil, err
	}
	web, err := ParseDomain("domain", d.Domain)
	if err != nil {
		return nil, err
	}
	industry, err := parseIndustry(d.Industry)
	if err != nil {
		return nil, err
	}
	size, err := ParseSizeBand("size", d.Size)
	if err != nil {
		return nil, err
	}
	address, err := parseAddress(d.Address)
	if err != nil {
		return nil, err
	}
	return []domain.Event{&Created{AccountID: id, Name: name, Domain: web, Industry: industry, Size: size, Address: address}}, nil
}

func parseName(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", domain.Invalid("name", "is required")
	}
	if utf8.RuneCountInString(s) > 500 {
		return "", domain.Invalid("name", "is longer than 500 characters")
	}
	return s, nil
}

func parseIndustry(s string) (string, error) {
	s = strings.TrimSpace(s)
	if utf8.RuneCountInString(s) > 200 {
		return "", domain.Invalid("industry", "is longer than 200 characters")
	}
	return s, nil
}

// parseAddress returns nil for no address or an empty one.
func parseAddress(a *Address) (*Address, error) {
	if a == nil {
		return nil, nil
	}
	n, err := a.normalized("address")
	if err != nil || n.IsZero() {
		return nil, err
	}
	return &n, nil
}

// ParseDomain validates a company's web domain (tanaka.example), lower-cased; "" means none.
// A URL or an email address is refused rather than guessed at.
func ParseDomain(field, s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		return "", nil
	}
	labels := strings.Split(s, ".")
	if len(s) > 253 || len(labels) < 2 {
		return "", domain.Invalid(field, "%q is not a domain name (e.g. tanaka.example)", s)
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || strings.Trim(l, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" || l[0] == '-' || l[len(l)-1] == '-' {
			return "", domain.Invalid(field, "%q is not a domain name (e.g. tanaka.example)", s)
		}
	}
	return s, nil
}

// StreamName is the event stream of an account.
func StreamName(id string) string { return "account-" + id }

// IDFromStream returns the account id of an account stream name.
func IDFromStream(stream string) (string, error) {
	id, ok := strings.CutPrefix(stream, "account-")
	if !ok || id == "" {
		return "", fmt.Errorf("%q is not an account stream", stream)
	}
	return id, nil
}
