package contact_test

import (
	"testing"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/domain/domaintest"
)

func erase(reason string) func(*contact.Contact) ([]domain.Event, error) {
	return func(c *contact.Contact) ([]domain.Event, error) { return c.Erase(reason) }
}

func erased() []domain.Event {
	return append(existing(), &contact.Erased{ContactID: contactID})
}

func TestErase(t *testing.T) {
	t.Parallel()
	domaintest.Run(t, []contactCase{
		{Name: "erasing a missing contact is not found", When: erase("request of 2025-03-01"), WantCode: domain.CodeNotFound},
		{Name: "a contact is erased", Given: existing(), When: erase("right to erasure, request 42"),
			Then: []domain.Event{&contact.Erased{ContactID: contactID}}},
		{Name: "a reason is required", Given: existing(), When: erase("  "), WantCode: domain.CodeInvalid, WantMessage: "reason: is required"},
		{Name: "a reason naming the person is refused", Given: existing(), When: erase("request by aiko TANAKA"),
			WantCode: domain.CodeInvalid, WantMessage: "reason: names the person"},
		{Name: "erasing twice is a conflict", Given: erased(), When: erase("again"), WantCode: domain.CodeConflict, WantMessage: "erased already"},
		{Name: "an erased contact takes no more commands", Given: erased(), When: func(c *contact.Contact) ([]domain.Event, error) {
			return c.AddNote("n-1", "hello", "alice")
		}, WantCode: domain.CodeRefused, WantMessage: "was erased"},
	})
}

func TestErasedStateHoldsNoPersonalData(t *testing.T) {
	t.Parallel()
	c := domaintest.Fold[contact.Contact](append(existing(),
		&contact.TaskScheduled{ContactID: contactID, TaskID: "t-1", Title: "call Aiko back"},
		&contact.Erased{ContactID: contactID}))
	if !c.Erased || c.ErasedAt == nil || c.Name != "" || c.Email != "" || c.Phone != "" || c.Tasks[0].Title != "" {
		t.Errorf("erased state: %+v", c)
	}
	if c.Channel == "" || len(c.Tasks) != 1 {
		t.Error("an erasure forgot what is not personal")
	}
}
