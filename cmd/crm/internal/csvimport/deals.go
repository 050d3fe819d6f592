package csvimport

import (
	"context"
	"errors"
	"time"

	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/deal"
)

// dealRows opens a deal per row for an existing contact (or updates the one of the row's
// key), then moves it to the row's stage: an open stage, won or lost.
type dealRows struct{}

func (dealRows) name() string { return "deals" }

func (dealRows) columns() []string {
	return []string{"key", "contact_key", "contact_id", "title", "amount", "currency", "owner", "expected_close",
		"stage", "lost_reason", "lost_note", "closed_at", "occurred_at"}
}

func (dealRows) required() [][]string {
	return [][]string{{"contact_key", "contact_id"}, {"title"}, {"amount"}, {"currency"}}
}

func (dealRows) personal() []string { return []string{"lost_note"} }

// dealFields maps the fields of the deal commands to the columns that hold them.
var dealFields = map[string]string{"reason": "lost_reason", "note": "lost_note"}

func (dealRows) check(ctx context.Context, e env, r row) ([]Problem, error) {
	var ps []Problem
	if !r.has("contact_key") && !r.has("contact_id") {
		ps = append(ps, Problem{Row: r.n, Why: "names no contact: give contact_key or contact_id"})
	}
	open := deal.Open{DealID: "check", ContactID: "check", Title: r.get("title"), Currency: r.get("currency"), Owner: "check"}
	_, err := (&deal.Deal{}).Open(open)
	var de *domain.Error
	if errors.As(err, &de) && de.Field == "amount" {
		de.Field = "currency" // the amount is checked below; a currency is its own column
	}
	ps = problemOf(ps, r, fieldColumn(err), err)
	if amount, err := parseAmount(r.get("amount")); err != nil {
		ps = problemOf(ps, r, "amount", err)
	} else if amount < 0 {
		ps = append(ps, r.problem("amount", "is negative"))
	}
	for _, col := range []string{"expected_close", "closed_at"} {
		if r.has(col) {
			_, err := parseDate(r.get(col))
			ps = problemOf(ps, r, col, err)
		}
	}
	switch stage := r.get("stage"); stage {
	case "", string(deal.StageWon):
	case string(deal.StageLost):
		_, err := deal.ParseLostReason("lost_reason", r.get("lost_reason"))
		ps = problemOf(ps, r, "lost_reason", err)
	default:
		_, err := deal.ParseOpenStage("stage", stage)
		ps = problemOf(ps, r, "stage", err)
	}
	if _, p := r.occurredAt(e.zone); p != nil {
		ps = append(ps, *p)
	}
	if e.dry && len(ps) == 0 {
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

// fieldColumn is the column of a domain error's field.
func fieldColumn(err error) string {
	var de *domain.Error
	if !errors.As(err, &de) {
		return ""
	}
	if c, ok := dealFields[de.Field]; ok {
		return c
	}
	return de.Field
}

func (dealRows) apply(ctx context.Context, e env, r row) (outcome, error) {
	occurredAt, _ := r.occurredAt(e.zone)
	key, keyed := rowKey(r, Deals, dealKeyPrefix, dealRowPrefix)
	contactID, _ := e.contactOf(r)
	amount, _ := parseAmount(r.get("amount"))
	var expected domain.Date
	if r.has("expected_close") {
		expected, _ = parseDate(r.get("expected_close"))
	}
	res, err := e.h.OpenDeal(ctx, e.meta(key, occurredAt),
		commands.OpenDeal{ContactID: contactID, Title: r.get("title"), Amount: amount, Currency: r.get("currency"),
			Owner: r.get("owner"), ExpectedClose: string(expected)})
	switch {
	case errors.Is(err, commands.ErrIdempotencyConflict) && keyed:
		return updateDeal(ctx, e, r, commands.CreatedID(KeyScope, key), key, amount, expected)
	case err != nil:
		return refused, err
	}
	e.saw(res)
	out := created
	if res.Replayed {
		out = skipped
	}
	moved, err := moveDeal(ctx, e, r, res.ID, key, occurredAt)
	if err != nil {
		return refused, err
	}
	if moved && out == skipped {
		out = updated
	}
	return out, nil
}

// updateDeal records what the row changes of an open deal, now; then moves it.
func updateDeal(ctx context.Context, e env, r row, id, key string, amount int64, expected domain.Date) (outcome, error) {
	d, err := e.h.Deal(ctx, id, commands.At{})
	if err != nil {
		return refused, err
	}
	cmd := commands.UpdateDeal{DealID: id}
	changed := false
	if title := r.get("title"); title != d.Title {
		cmd.Title, changed = &title, true
	}
	if currency := r.get("currency"); amount != d.Amount.Amount || currency != d.Amount.Currency {
		cmd.Amount, changed = &amount, true
		if currency != d.Amount.Currency {
			cmd.Currency = &currency
		}
	}
	if expected != "" && expected != d.ExpectedClose {
		v := string(expected)
		cmd.ExpectedClose, changed = &v, true
	}
	if owner := r.get("owner"); owner != "" && owner != d.Owner {
		cmd.Owner, changed = &owner, true
	}
	out := skipped
	if changed {
		res, err := e.h.UpdateDeal(ctx, e.meta(key+":update:"+r.hash(Deals), time.Time{}), cmd)
		if err != nil {
			return refused, err
		}
		e.saw(res)
		out = updated
	}
	moved, err := moveDeal(ctx, e, r, id, key, time.Time{})
	if err != nil {
		return refused, err
	}
	if moved {
		out = updated
	}
	return out, nil
}

// moveDeal moves the deal to the row's stage, once per key and stage. A win or loss occurs
// at the start of closed_at's day in the business time zone, unless that is before the row's
// time, and its contract date is closed_at.
func moveDeal(ctx context.Context, e env, r row, id, key string, occurredAt time.Time) (bool, error) {
	stage := r.get("stage")
	if stage == "" {
		return false, nil
	}
	closedAt := occurredAt
	var closedOn domain.Date
	if r.has("closed_at") {
		closedOn, _ = parseDate(r.get("closed_at"))
		if t, err := time.ParseInLocation(domain.DateLayout, string(closedOn), e.zone); err == nil && t.After(occurredAt) {
			closedAt = t.UTC()
		}
	}
	meta := e.meta(key+":stage:"+stage, occurredAt)
	var (
		res commands.Result
		err error
	)
	switch stage {
	case string(deal.StageWon):
		meta.OccurredAt = closedAt
		res, err = e.h.WinDeal(ctx, meta, commands.WinDeal{DealID: id, ClosedAt: string(closedOn)})
	case string(deal.StageLost):
		meta.OccurredAt = closedAt
		res, err = e.h.LoseDeal(ctx, meta, commands.LoseDeal{DealID: id, Reason: r.get("lost_reason"), Note: r.get("lost_note")})
	default:
		res, err = e.h.ChangeDealStage(ctx, meta, commands.ChangeDealStage{DealID: id, Stage: stage})
	}
	switch {
	case errors.Is(err, commands.ErrIdempotencyConflict):
		return false, nil // moved there by this key before, at another time
	case domain.ErrorCode(err) == domain.CodeRefused:
		d, derr := e.h.Deal(ctx, id, commands.At{})
		if derr == nil && string(d.Stage) == stage {
			return false, nil // there already
		}
		return false, err
	case err != nil:
		return false, err
	}
	e.saw(res)
	return !res.Replayed, nil
}
