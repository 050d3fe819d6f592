// Package catalog is the one explicit place where every persisted event name is registered.
package catalog

import (
	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/account"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/domain/deal"
	"github.com/eventcrm/crm/domain/settings"
)

// Registry returns a registry of every event type of the CRM.
func Registry() *domain.Registry {
	var all []domain.Event
	all = append(all, contact.Events()...)
	all = append(all, deal.Events()...)
	all = append(all, account.Events()...)
	all = append(all, settings.Events()...)
	return domain.NewRegistry(all...)
}
