package catalog

import "github.com/eventcrm/crm/domain/contact"

// Upcaster turns the stored JSON of one version of an event type into the next version.
type Upcaster struct {
	From, To string
	Up       func(data []byte) ([]byte, error)
}

// Upcasters lists every upcaster, each vN -> vN+1: events are read as their newest version.
// A new version of an event type adds one here, its v(N-1) Go type is kept for its golden
// JSON, and every reader folds the newest only.
func Upcasters() []Upcaster {
	return []Upcaster{
		{From: contact.TypeCreatedV1, To: contact.TypeCreated, Up: contact.UpcastNameV1},
		{From: contact.TypeDetailsChangedV1, To: contact.TypeDetailsChanged, Up: contact.UpcastNameV1},
	}
}
