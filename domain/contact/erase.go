package contact

import (
	"strings"
	"time"

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
	low := strings.ToLower(reason)
	for _, v := range []string{c.Name, c.Email, c.Phone} {
		if len(strings.TrimSpace(v)) >= 3 && strings.Contains(low, strings.ToLower(strings.TrimSpace(v))) {
			return nil, domain.Invalid("reason", "names the person: the reason stays in the log in clear, so it must not hold their name, email or phone")
		}
	}
	return []domain.Event{&Erased{ContactID: c.ID}}, nil
}

// applyErased forgets the personal data the state held.
func (c *Contact) applyErased(occurredAt time.Time) {
	c.Erased, c.ErasedAt = true, &occurredAt
	c.Name, c.NameParts, c.Email, c.Phone = "", PersonName{}, "", ""
	for i := range c.Tasks {
		c.Tasks[i].Title = ""
	}
}
