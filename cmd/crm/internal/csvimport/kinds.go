package csvimport

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/contact"
)

// outcome is what became of a row.
type outcome int

const (
	created outcome = iota
	updated
	skipped
	refused
)

// KeyScope scopes the idempotency keys of every import, whoever sends it: a file imported
// again, by the command line or over HTTP, by any user, appends nothing, and a contact_key
// names the contact of that key whoever imported it.
const KeyScope = "csv-import"

// env is what the rows of one import are checked and applied with.
type env struct {
	h     *commands.Handler
	actor string
	zone  *time.Location
	dry   bool
	// position is the highest log position of the events the rows stand for.
	position *atomic.Int64
}

// meta is the metadata of a command of the import.
func (e env) meta(key string, occurredAt time.Time) commands.Meta {
	return commands.Meta{Actor: e.actor, KeyScope: KeyScope, IdempotencyKey: key, OccurredAt: occurredAt}
}

// saw notes where a command's events are in the log.
func (e env) saw(res commands.Result) {
	for {
		cur := e.position.Load()
		if res.Position <= cur || e.position.CompareAndSwap(cur, res.Position) {
			return
		}
	}
}

// kind is what a kind of file does with its rows.
type kind interface {
	name() string
	// columns are the columns a file may have; required lists the columns it must have, each
	// as alternatives.
	columns() []string
	required() [][]string
	// personal lists the columns whose values are personal data (sealed in the log, see
	// catalog.Personal): a report never quotes them.
	personal() []string
	// check returns the problems of a row's values; on a dry run also what the business
	// rules would refuse given the log as it is. An error is the import's, not the row's.
	check(ctx context.Context, e env, r row) ([]Problem, error)
	// apply sends the row's commands. A refusal of the commands is the row's (refused, with
	// the error); any other error is the import's.
	apply(ctx context.Context, e env, r row) (outcome, error)
}

var kinds = map[Kind]kind{Contacts: contactRows{}, Deals: dealRows{}, Touchpoints: touchpointRows{}}

// Keys of the commands of an import. A contact created from a row with a key is named by
// that key in deals and touchpoints files (contact_key).
const (
	contactKeyPrefix    = "import:contacts:key:"
	contactRowPrefix    = "import:contacts:row:"
	dealKeyPrefix       = "import:deals:key:"
	dealRowPrefix       = "import:deals:row:"
	touchpointKeyPrefix = "import:touchpoints:key:"
	touchpointRowPrefix = "import:touchpoints:row:"
)

// rowKey is the idempotency key of a row's first command: from its key column, or, without
// one, from its content (keyed tells which).
func rowKey(r row, k Kind, keyPrefix, rowPrefix string) (key string, keyed bool) {
	if v := r.get("key"); v != "" {
		return keyPrefix + v, true
	}
	return rowPrefix + r.hash(k), false
}

// isRefusal tells a refusal of the commands (the row's problem) from a failure of the store.
func isRefusal(err error) bool {
	return domain.ErrorCode(err) != "" || errors.Is(err, commands.ErrIdempotencyConflict) ||
		errors.Is(err, commands.ErrContention)
}

// contactOf resolves a row's contact: contact_id, or the contact imported with contact_key.
func (e env) contactOf(r row) (id, col string) {
	if v := r.get("contact_id"); v != "" {
		return v, "contact_id"
	}
	return commands.CreatedID(KeyScope, contactKeyPrefix+r.get("contact_key")), "contact_key"
}

// existingContact is the problem of a row whose contact is not in the log (or was merged
// into another).
func (e env) existingContact(ctx context.Context, r row) (*contact.Contact, *Problem, error) {
	id, col := e.contactOf(r)
	c, err := e.h.Contact(ctx, id, commands.At{})
	switch {
	case domain.ErrorCode(err) == domain.CodeNotFound:
		p := r.problem(col, "no such contact")
		if col == "contact_key" {
			p.Why = "no contact was imported with this key"
		}
		return nil, &p, nil
	case err != nil:
		return nil, nil, err
	case c.MergedInto != "":
		p := r.problem(col, "the contact was merged into %s", c.MergedInto)
		return nil, &p, nil
	}
	return c, nil, nil
}

// problemOf adds the problem of err, a validation's, to ps.
func problemOf(ps []Problem, r row, col string, err error) []Problem {
	if err == nil {
		return ps
	}
	var de *domain.Error
	if errors.As(err, &de) {
		return append(ps, r.problem(col, "%s", de.Message))
	}
	return append(ps, r.problem(col, "%v", err))
}
