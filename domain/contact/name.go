package contact

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/eventcrm/crm/domain"
)

// PersonName is a contact's name as Japanese CRMs keep it: family and given name, each with
// its reading (furigana), so that lists sort and search by reading. A name given as one
// string (and every name recorded before v2) is the family name alone: no program can tell
// which part of "Yui Sato" or "佐藤 花子" is the family name.
type PersonName struct {
	Family        string `json:"family"`
	Given         string `json:"given,omitempty"`
	FamilyReading string `json:"family_reading,omitempty"`
	GivenReading  string `json:"given_reading,omitempty"`
}

// Display is the name as shown: family name first, then given name, as written in Japanese.
func (n PersonName) Display() string {
	return strings.TrimSpace(n.Family + " " + n.Given)
}

// DisplayOf is the display name of a changed name, nil when the name did not change.
func DisplayOf(n *PersonName) *string {
	if n == nil {
		return nil
	}
	s := n.Display()
	return &s
}

// CreatedV1 is contact.created.v1, the name one string. Stored v1 events are read as v2
// (UpcastNameV1); the type is kept for its golden JSON.
type CreatedV1 struct {
	ContactID string  `json:"contact_id"`
	Name      string  `json:"name"`
	Email     string  `json:"email,omitempty"`
	Phone     string  `json:"phone,omitempty"`
	Company   string  `json:"company,omitempty"`
	Title     string  `json:"title,omitempty"`
	Channel   Channel `json:"channel"`
	Owner     string  `json:"owner"`
	Segment   string  `json:"segment,omitempty"`
}

// DetailsChangedV1 is contact.details_changed.v1, the name one string.
type DetailsChangedV1 struct {
	ContactID string  `json:"contact_id"`
	Name      *string `json:"name,omitempty"`
	Email     *string `json:"email,omitempty"`
	Phone     *string `json:"phone,omitempty"`
	Company   *string `json:"company,omitempty"`
	Title     *string `json:"title,omitempty"`
	Segment   *string `json:"segment,omitempty"`
}

// EventType implements domain.Event.
func (*CreatedV1) EventType() string { return TypeCreatedV1 }

// EventType implements domain.Event.
func (*DetailsChangedV1) EventType() string { return TypeDetailsChangedV1 }

// UpcastNameV1 turns the JSON of contact.created.v1 or contact.details_changed.v1 into v2:
// the member "name", one string, becomes {"family": that string}. Every other member, and
// an absent name (an erased one, or a details change without it), stays as it is.
func UpcastNameV1(data []byte) ([]byte, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(data, &members); err != nil {
		return nil, fmt.Errorf("upcast name: %w", err)
	}
	raw, ok := members["name"]
	if !ok {
		return data, nil
	}
	var name string
	if err := json.Unmarshal(raw, &name); err != nil {
		return nil, fmt.Errorf("upcast name: %w", err)
	}
	parts, err := json.Marshal(PersonName{Family: name})
	if err != nil {
		return nil, fmt.Errorf("upcast name: %w", err)
	}
	members["name"] = parts
	out, err := json.Marshal(members)
	if err != nil {
		return nil, fmt.Errorf("upcast name: %w", err)
	}
	return out, nil
}

// nameOf is the name of a new contact: parts, or name alone as the family name.
func nameOf(name string, parts PersonName) (PersonName, error) {
	if parts != (PersonName{}) {
		if name != "" {
			return PersonName{}, domain.Invalid("name", "give either name or its parts (family_name, given_name and readings), not both")
		}
		return validName(parts)
	}
	if strings.TrimSpace(name) == "" {
		return PersonName{}, domain.Invalid("name", "must not be empty")
	}
	n, err := validName(PersonName{Family: name})
	if err != nil {
		return n, domain.Invalid("name", "is longer than 500 characters")
	}
	return n, nil
}

// validName trims and checks every part; the family name is required.
func validName(n PersonName) (PersonName, error) {
	for _, p := range []struct {
		field string
		v     *string
	}{{"family_name", &n.Family}, {"given_name", &n.Given}, {"family_name_reading", &n.FamilyReading}, {"given_name_reading", &n.GivenReading}} {
		*p.v = strings.TrimSpace(*p.v)
		if utf8.RuneCountInString(*p.v) > 500 {
			return PersonName{}, domain.Invalid(p.field, "is longer than 500 characters")
		}
	}
	if n.Family == "" {
		return PersonName{}, domain.Invalid("family_name", "is required")
	}
	return n, nil
}

// newName is the name an update sets, nil when it leaves the name as it is.
func (c *Contact) newName(cmd Update) (*PersonName, error) {
	parts := []*string{cmd.FamilyName, cmd.GivenName, cmd.FamilyNameReading, cmd.GivenNameReading}
	anyPart := slices.ContainsFunc(parts, func(p *string) bool { return p != nil })
	if cmd.Name == nil && !anyPart {
		return nil, nil
	}
	if cmd.Name != nil && anyPart {
		return nil, domain.Invalid("name", "give either name or its parts (family_name, given_name and readings), not both")
	}
	n := c.NameParts
	if cmd.Name != nil {
		n = PersonName{Family: *cmd.Name}
	}
	for i, dst := range []*string{&n.Family, &n.Given, &n.FamilyReading, &n.GivenReading} {
		if parts[i] != nil {
			*dst = *parts[i]
		}
	}
	n, err := validName(n)
	if err != nil {
		if cmd.Name != nil {
			return nil, domain.Invalid("name", "must not be empty")
		}
		return nil, err
	}
	if n == c.NameParts {
		return nil, nil
	}
	return &n, nil
}
