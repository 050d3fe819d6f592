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

// The reason stays in the log in clear: it may not hold the person's name however it is
// written (without the space a Japanese name is often written without, in the other order,
// as its reading), nor the email or phone; what only resembles them is a reason.
func TestEraseRefusesAReasonNamingThePerson(t *testing.T) {
	t.Parallel()
	named := []domain.Event{&contact.Created{ContactID: contactID, Channel: contact.ChannelSeminar, Owner: "alice",
		Name:  contact.PersonName{Family: "佐藤", Given: "花子", FamilyReading: "サトウ", GivenReading: "ハナコ"},
		Email: "hanako@example.jp", Phone: "+81 90-5555-0199"}}
	latin := []domain.Event{&contact.Created{ContactID: contactID, Channel: contact.ChannelSeminar, Owner: "alice",
		Name: contact.PersonName{Family: "Sato", Given: "Hanako"}}}
	names := "reason: names the person"
	domaintest.Run(t, []contactCase{
		{Name: "the name as shown", Given: named, When: erase("佐藤 花子 asked"), WantCode: domain.CodeInvalid, WantMessage: names},
		{Name: "the name without its space", Given: named, When: erase("佐藤花子さんの依頼"), WantCode: domain.CodeInvalid, WantMessage: names},
		{Name: "the reading", Given: named, When: erase("request of サトウ ハナコ"), WantCode: domain.CodeInvalid, WantMessage: names},
		{Name: "the reading without its space", Given: named, When: erase("サトウハナコ"), WantCode: domain.CodeInvalid, WantMessage: names},
		{Name: "the given name first", Given: latin, When: erase("request of Hanako Sato"), WantCode: domain.CodeInvalid, WantMessage: names},
		{Name: "the email in capitals", Given: named, When: erase("HANAKO@EXAMPLE.JP wrote"), WantCode: domain.CodeInvalid, WantMessage: names},
		{Name: "the phone written otherwise", Given: named, When: erase("call from +81 90 5555 0199"), WantCode: domain.CodeInvalid, WantMessage: names},
		{Name: "a reason that names someone else", Given: named, When: erase("request 2025-17, handled by 鈴木"),
			Then: []domain.Event{&contact.Erased{ContactID: contactID}}},
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

func TestNameParts(t *testing.T) {
	t.Parallel()
	full := contact.PersonName{Family: "佐藤", Given: "花子", FamilyReading: "サトウ", GivenReading: "ハナコ"}
	named := []domain.Event{&contact.Created{ContactID: contactID, Name: full, Channel: contact.ChannelSeminar, Owner: "alice"}}
	domaintest.Run(t, []contactCase{
		{Name: "a new given name records the whole name", Given: named, When: update(contact.Update{GivenName: ptr("桜")}),
			Then: []domain.Event{&contact.DetailsChanged{ContactID: contactID, Name: &contact.PersonName{Family: "佐藤", Given: "桜", FamilyReading: "サトウ", GivenReading: "ハナコ"}}}},
		{Name: "a name as one string is the family name alone", Given: named, When: update(contact.Update{Name: ptr("Hanako Sato")}),
			Then: []domain.Event{&contact.DetailsChanged{ContactID: contactID, Name: &contact.PersonName{Family: "Hanako Sato"}}}},
		{Name: "name and parts together are invalid", Given: named, When: update(contact.Update{Name: ptr("x"), GivenName: ptr("y")}),
			WantCode: domain.CodeInvalid, WantMessage: "name: give either"},
		{Name: "the same parts change nothing", Given: named, When: update(contact.Update{FamilyName: ptr("佐藤")}),
			WantCode: domain.CodeRefused},
		{Name: "an empty family name is invalid", Given: named, When: update(contact.Update{FamilyName: ptr(" ")}),
			WantCode: domain.CodeInvalid, WantMessage: "family_name: is required"},
		{Name: "a contact is created with parts", When: func(c *contact.Contact) ([]domain.Event, error) {
			return c.Create(contact.Create{ContactID: contactID, Parts: full, Channel: "seminar", Owner: "alice"})
		}, Then: named},
	})
	c := domaintest.Fold[contact.Contact](named)
	if c.Name != "佐藤 花子" || c.NameParts != full {
		t.Errorf("state: %q %+v", c.Name, c.NameParts)
	}
}
