// Package catalog is the one explicit place where every persisted event name is registered.
package catalog

import (
	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/account"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/domain/deal"
	"github.com/eventcrm/crm/domain/settings"
	"github.com/eventcrm/crm/domain/webhook"
)

// Registry returns a registry of every event type of the CRM.
func Registry() *domain.Registry {
	var all []domain.Event
	all = append(all, contact.Events()...)
	all = append(all, deal.Events()...)
	all = append(all, account.Events()...)
	all = append(all, settings.Events()...)
	all = append(all, webhook.Events()...)
	return domain.NewRegistry(all...)
}

// SubjectMember is the member of an event's JSON that names its data subject: the contact
// whose key seals the event's personal members.
const SubjectMember = "contact_id"

// Personal lists, per persisted event name, the members of its JSON that are personal data:
// what identifies a person or is free text written about them. They are sealed with the
// contact's key and read as absent once it is destroyed. Why the others are not personal is
// in the decision record on personal data (docs/decisions).
func Personal() map[string][]string {
	return map[string][]string{
		contact.TypeCreatedV1:          {"name", "email", "phone"},
		contact.TypeDetailsChangedV1:   {"name", "email", "phone"},
		contact.TypeCreated:            {"name", "email", "phone"}, // v2: name is the family and given names with readings
		contact.TypeDetailsChanged:     {"name", "email", "phone"},
		contact.TypeTouchpointRecorded: {"note"},
		contact.TypeSurveyRecorded:     {"comment"},
		contact.TypeNoteAdded:          {"text"},
		contact.TypeTaskScheduled:      {"title"},
		deal.TypeLost:                  {"note"},
	}
}
