// Package domain holds what every part of the CRM shares about its business: events and their
// registry, money, calendar dates and the domain error type. The aggregates live in the
// subpackages contact and deal; the explicit list of persisted event names is in catalog.
//
// Nothing here imports infrastructure: decisions are pure functions of state and command, and
// are tested as given/when/then tables without I/O.
package domain
