package account

import "github.com/eventcrm/crm/domain"

// Persisted event names of the account stream. Never change one: add a new version instead.
const (
	TypeCreated        = "account.created.v1"
	TypeDetailsChanged = "account.details_changed.v1"
)

// Created: a company became an account.
type Created struct {
	AccountID string   `json:"account_id"`
	Name      string   `json:"name"`
	Domain    string   `json:"domain,omitempty"`
	Industry  string   `json:"industry,omitempty"`
	Size      SizeBand `json:"size,omitempty"`
	Address   *Address `json:"address,omitempty"`
}

// DetailsChanged: account details were corrected; only the changed fields are set. An empty
// string clears a field; Address replaces the whole address (an empty one clears it).
type DetailsChanged struct {
	AccountID string    `json:"account_id"`
	Name      *string   `json:"name,omitempty"`
	Domain    *string   `json:"domain,omitempty"`
	Industry  *string   `json:"industry,omitempty"`
	Size      *SizeBand `json:"size,omitempty"`
	Address   *Address  `json:"address,omitempty"`
}

func (*Created) EventType() string        { return TypeCreated }
func (*DetailsChanged) EventType() string { return TypeDetailsChanged }

// Events returns a prototype of every account event, for the registry.
func Events() []domain.Event { return []domain.Event{&Created{}, &DetailsChanged{}} }
