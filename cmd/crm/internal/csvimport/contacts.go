package csvimport

import (
	"context"
	"errors"
	"time"

	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/contact"
)

// contactRows creates a contact per row (or updates the one of the row's key or
// contact_id), then moves it to the row's phase.
type contactRows struct{}

func (contactRows) name() string { return "contacts" }

func (contactRows) columns() []string {
	return []string{"key", "contact_id", "name", "email", "phone", "company", "title", "channel", "owner", "segment",
		"phase", "occurred_at"}
}

func (contactRows) required() [][]string { return [][]string{{"name"}} }

// importReason is the reason of the phase changes an import makes (a skip forward needs one).
const importReason = "imported"

// base is a contact that passes the domain's checks, for checking one value at a time.
func baseContact() contact.Create {
	return contact.Create{ContactID: "check", Name: "check", Channel: string(contact.ChannelOther), Owner: "check"}
}

func (contactRows) personal() []string { return []string{"name", "email", "phone"} }

func (contactRows) check(ctx context.Context, e env, r row) ([]Problem, error) {
	var ps []Problem
	for _, f := range []struct {
		col string
		set func(*contact.Create, string)
	}{
		{"name", func(c *contact.Create, v string) { c.Name = v }},
		{"email", func(c *contact.Create, v string) { c.Email = v }},
		{"phone", func(c *contact.Create, v string) { c.Phone = v }},
		{"company", func(c *contact.Create, v string) { c.Company = v }},
		{"title", func(c *contact.Create, v string) { c.Title = v }},
		{"segment", func(c *contact.Create, v string) { c.Segment = v }},
	} {
		cmd := baseContact()
		f.set(&cmd, r.get(f.col))
		_, err := (&contact.Contact{}).Create(cmd)
		ps = problemOf(ps, r, f.col, err)
	}
	switch {
	case r.has("channel"):
		_, err := contact.ParseChannel("channel", r.get("channel"))
		ps = problemOf(ps, r, "channel", err)
	case !r.has("contact_id"):
		ps = append(ps, r.problem("channel", "is required for a new contact"))
	}
	if r.has("phase") {
		to, err := contact.ParsePhase("phase", r.get("phase"))
		if err == nil && to != contact.Lead {
			_, err = contact.Transition(contact.Lead, to, importReason)
		}
		ps = problemOf(ps, r, "phase", err)
	}
	if _, p := r.occurredAt(e.zone); p != nil {
		ps = append(ps, *p)
	}
	if e.dry && r.has("contact_id") {
		_, p, err := e.existingContact(ctx, r)
		if err != nil {
			return nil, err
		}
		if p != nil {
			ps = append(ps, *p)
		}
	}
	return ps, nil
}

func (contactRows) apply(ctx context.Context, e env, r row) (outcome, error) {
	occurredAt, _ := r.occurredAt(e.zone)
	key, keyed := rowKey(r, Contacts, contactKeyPrefix, contactRowPrefix)
	if r.has("contact_id") {
		return updateContact(ctx, e, r, r.get("contact_id"), key)
	}
	res, err := e.h.CreateContact(ctx, e.meta(key, occurredAt),
		commands.CreateContact{Name: r.get("name"), Email: r.get("email"), Phone: r.get("phone"), Company: r.get("company"),
			Title: r.get("title"), Channel: r.get("channel"), Owner: r.get("owner"), Segment: r.get("segment")})
	switch {
	case errors.Is(err, commands.ErrIdempotencyConflict) && keyed:
		// The key's contact exists, created from another version of the row: update it.
		return updateContact(ctx, e, r, commands.CreatedID(KeyScope, key), key)
	case err != nil:
		return refused, err
	}
	e.saw(res)
	out := created
	if res.Replayed {
		out = skipped
	}
	moved, err := movePhase(ctx, e, r, res.ID, key, occurredAt)
	if err != nil {
		return refused, err
	}
	if moved && out == skipped {
		out = updated // an earlier import stopped between the two
	}
	return out, nil
}

// updateContact records what the row changes of an existing contact, now: an empty cell
// changes nothing.
func updateContact(ctx context.Context, e env, r row, id, key string) (outcome, error) {
	c, err := e.h.Contact(ctx, id, commands.At{})
	if err != nil {
		return refused, err
	}
	cmd := commands.UpdateContact{ContactID: id}
	changed := false
	for _, f := range []struct {
		col     string
		current string
		field   **string
	}{
		{"name", c.Name, &cmd.Name}, {"email", c.Email, &cmd.Email}, {"phone", c.Phone, &cmd.Phone},
		{"company", c.Company, &cmd.Company}, {"title", c.Title, &cmd.Title}, {"segment", c.Segment, &cmd.Segment},
		{"owner", c.Owner, &cmd.Owner},
	} {
		if v := r.get(f.col); v != "" && v != f.current {
			*f.field, changed = &v, true
		}
	}
	out := skipped
	if changed {
		res, err := e.h.UpdateContact(ctx, e.meta(key+":update:"+r.hash(Contacts), time.Time{}), cmd)
		if err != nil {
			return refused, err
		}
		e.saw(res)
		out = updated
	}
	moved, err := movePhase(ctx, e, r, id, key, time.Time{})
	if err != nil {
		return refused, err
	}
	if moved {
		out = updated
	}
	return out, nil
}

// movePhase moves the contact to the row's phase, once per key and phase: a phase the contact
// is in already, or a move this key made before, appends nothing.
func movePhase(ctx context.Context, e env, r row, id, key string, occurredAt time.Time) (bool, error) {
	phase := r.get("phase")
	if phase == "" {
		return false, nil
	}
	res, err := e.h.ChangePhase(ctx, e.meta(key+":phase:"+phase, occurredAt),
		commands.ChangePhase{ContactID: id, Phase: phase, Reason: importReason})
	switch {
	case errors.Is(err, commands.ErrIdempotencyConflict):
		return false, nil // moved there by this key before, at another time
	case domain.ErrorCode(err) == domain.CodeRefused:
		c, cerr := e.h.Contact(ctx, id, commands.At{})
		if cerr == nil && string(c.Phase) == phase {
			return false, nil // there already
		}
		return false, err
	case err != nil:
		return false, err
	}
	e.saw(res)
	return !res.Replayed, nil
}
