package contact

import (
	"strings"
	"time"
	"unicode"

	"github.com/eventcrm/crm/domain"
)

// TypeErased is the persisted name of an erasure: the contact's key was destroyed.
const TypeErased = "contact.erased.v1"

// Erased: the contact's personal data was erased (its key destroyed, so what was sealed with
// it reads as absent). It holds no personal data itself; the reason is in the metadata.
type Erased struct {
	ContactID string `json:"contact_id"`
}

// EventType implements domain.Event.
func (*Erased) EventType() string { return TypeErased }

// Erase decides the erasure of the contact's personal data. reason is required and must not
// name the person: it is kept in clear in the log, for good.
func (c *Contact) Erase(reason string) ([]domain.Event, error) {
	if !c.Exists() {
		return nil, domain.NotFound("contact not found")
	}
	if c.Erased {
		return nil, domain.Conflict("contact %s was erased already", c.ID)
	}
	if strings.TrimSpace(reason) == "" {
		return nil, domain.Invalid("reason", "is required: say why the person is erased (without naming them)")
	}
	if err := c.CheckReasonNamesNobody(reason); err != nil {
		return nil, err
	}
	return []domain.Event{&Erased{ContactID: c.ID}}, nil
}

// CheckReasonNamesNobody refuses a reason that holds the contact's name (as shown, in either
// order of its parts, or its reading), email or phone, however spaced or in whatever case:
// a reason stays in the log in clear, for good.
func (c *Contact) CheckReasonNamesNobody(reason string) error {
	low := squeeze(reason)
	n := c.NameParts
	for _, v := range []string{c.Name, c.Email, c.Phone, n.Family + n.Given, n.Given + n.Family,
		n.FamilyReading + n.GivenReading, n.GivenReading + n.FamilyReading} {
		if v := squeeze(v); len(v) >= 3 && strings.Contains(low, v) {
			return domain.Invalid("reason", "names the person: the reason stays in the log in clear, so it must not hold their name, email or phone")
		}
	}
	return nil
}

// squeeze is s in lower case without spaces and the marks a name or phone number is written
// with or without ("佐藤 花子" and "佐藤花子", "090-5555" and "090 5555").
func squeeze(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) || strings.ContainsRune("-‐－・()（）", r) {
			return -1
		}
		return unicode.ToLower(r)
	}, s)
}

// applyErased forgets the personal data the state held.
func (c *Contact) applyErased(occurredAt time.Time) {
	c.Erased, c.ErasedAt = true, &occurredAt
	c.Name, c.NameParts, c.Email, c.Phone = "", PersonName{}, "", ""
	for i := range c.Tasks {
		c.Tasks[i].Title = ""
	}
}
