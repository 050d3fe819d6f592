package csvimport

import (
	"context"
	"time"

	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/domain/contact"
)

// touchpointRows records a touchpoint per row, at the row's time, for an existing contact.
type touchpointRows struct{}

func (touchpointRows) name() string { return "touchpoints" }

func (touchpointRows) columns() []string {
	return []string{"key", "contact_key", "contact_id", "kind", "note", "occurred_at"}
}

func (touchpointRows) required() [][]string {
	return [][]string{{"contact_key", "contact_id"}, {"kind"}}
}

func (touchpointRows) personal() []string { return []string{"note"} }

func (touchpointRows) check(ctx context.Context, e env, r row) ([]Problem, error) {
	var ps []Problem
	if !r.has("contact_key") && !r.has("contact_id") {
		ps = append(ps, Problem{Row: r.n, Why: "names no contact: give contact_key or contact_id"})
	}
	occurredAt, p := r.occurredAt(e.zone)
	if p != nil {
		ps = append(ps, *p)
	}
	if occurredAt.IsZero() {
		occurredAt = time.Now()
	}
	// A contact that exists and opted out of nothing: the values alone are checked.
	c := &contact.Contact{ID: "check", Version: 1, Phase: contact.Lead}
	if e.dry && len(ps) == 0 {
		real, p, err := e.existingContact(ctx, r)
		if err != nil {
			return nil, err
		}
		if p != nil {
			return append(ps, *p), nil
		}
		c = real // what the business rules would say: consent
	}
	if _, err := c.RecordTouchpoint("check", r.get("kind"), r.get("note"), occurredAt); err != nil {
		ps = append(ps, r.refusal(err, nil))
	}
	return ps, nil
}

func (touchpointRows) apply(ctx context.Context, e env, r row) (outcome, error) {
	occurredAt, _ := r.occurredAt(e.zone)
	key, _ := rowKey(r, Touchpoints, touchpointKeyPrefix, touchpointRowPrefix)
	contactID, _ := e.contactOf(r)
	res, err := e.h.RecordTouchpoint(ctx, e.meta(key, occurredAt),
		commands.RecordTouchpoint{ContactID: contactID, Kind: r.get("kind"), Note: r.get("note")})
	if err != nil {
		return refused, err
	}
	e.saw(res)
	if res.Replayed {
		return skipped, nil
	}
	return created, nil
}
