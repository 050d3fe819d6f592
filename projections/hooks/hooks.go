// Package hooks is the read model of the webhook subscriptions (projection
// "webhook_subscriptions"): every subscription not deleted, as its events (package
// domain/webhook) left it. The delivery (cmd/crm/internal/webhooks) reads which subscriptions
// to deliver to from it; how far each got and its attempts are the delivery's own operational
// state, not part of this read model. It holds no secret: a subscription's signing secret is
// in the key store only.
//
// Tables (prefix from projections.Tables):
//
//	subscriptions  id, url, event_types (comma-separated), description, enabled (0 or 1),
//	               disabled_reason, start_position (the position of the event that created
//	               it: delivery starts after it), created_at (microseconds), created_by,
//	               changed_at (microseconds, the latest event's business time)
package hooks

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/eventcrm/crm/domain/webhook"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/readmodel"
)

// Name is the persisted name of the projection.
const Name = "webhook_subscriptions"

const tableSubscriptions = "subscriptions"

type row struct {
	id, url, eventTypes, description string
	enabled                          int64
	disabledReason                   string
	startPosition, createdAt         int64
	createdBy                        string
	changedAt                        int64
}

type model struct{ subs *readmodel.Table[row] }

// Projection returns the read model of the webhook subscriptions.
func Projection() *readmodel.Model {
	type r = row
	m := &model{subs: readmodel.NewTable(tableSubscriptions, 1,
		readmodel.Text("id", func(r *r) *string { return &r.id }),
		readmodel.Text("url", func(r *r) *string { return &r.url }),
		readmodel.Text("event_types", func(r *r) *string { return &r.eventTypes }),
		readmodel.Text("description", func(r *r) *string { return &r.description }),
		readmodel.Integer("enabled", func(r *r) *int64 { return &r.enabled }),
		readmodel.Text("disabled_reason", func(r *r) *string { return &r.disabledReason }),
		readmodel.BigInt("start_position", func(r *r) *int64 { return &r.startPosition }),
		readmodel.BigInt("created_at", func(r *r) *int64 { return &r.createdAt }),
		readmodel.Text("created_by", func(r *r) *string { return &r.createdBy }),
		readmodel.BigInt("changed_at", func(r *r) *int64 { return &r.changedAt }))}
	return readmodel.Define(readmodel.Spec{Name: Name, Version: 1, Tables: []readmodel.AnyTable{m.subs}, Fold: m.fold})
}

func (m *model) fold(e *readmodel.Event, rows *readmodel.Rows) error {
	if !webhook.IsEvent(e.Type) {
		return nil
	}
	at := e.OccurredAt.UnixMicro()
	if e.Type == webhook.TypeCreated {
		ev, err := readmodel.Decode[webhook.Created](e)
		if err != nil {
			return err
		}
		m.subs.Upsert(rows, row{id: ev.SubscriptionID, url: ev.URL, eventTypes: strings.Join(ev.EventTypes, ","),
			description: ev.Description, enabled: 1, startPosition: e.Position, createdAt: at, createdBy: e.Actor, changedAt: at})
		return nil
	}
	var (
		id     string
		change func(*row)
	)
	switch e.Type {
	case webhook.TypeChanged:
		ev, err := readmodel.Decode[webhook.Changed](e)
		if err != nil {
			return err
		}
		id, change = ev.SubscriptionID, func(r *row) {
			if ev.URL != nil {
				r.url = *ev.URL
			}
			if ev.EventTypes != nil {
				r.eventTypes = strings.Join(*ev.EventTypes, ",")
			}
			if ev.Description != nil {
				r.description = *ev.Description
			}
		}
	case webhook.TypeDisabled:
		ev, err := readmodel.Decode[webhook.Disabled](e)
		if err != nil {
			return err
		}
		id, change = ev.SubscriptionID, func(r *row) { r.enabled, r.disabledReason = 0, ev.Reason }
	case webhook.TypeEnabled:
		ev, err := readmodel.Decode[webhook.Enabled](e)
		if err != nil {
			return err
		}
		id, change = ev.SubscriptionID, func(r *row) { r.enabled, r.disabledReason = 1, "" }
	case webhook.TypeDeleted:
		ev, err := readmodel.Decode[webhook.Deleted](e)
		if err != nil {
			return err
		}
		if _, err := m.subs.Need(rows, ev.SubscriptionID); err != nil {
			return err
		}
		m.subs.Delete(rows, ev.SubscriptionID)
		return nil
	default:
		return nil
	}
	r, err := m.subs.Need(rows, id)
	if err != nil {
		return err
	}
	change(&r)
	r.changedAt = at
	m.subs.Upsert(rows, r)
	return nil
}

// Subscription is a subscription as the read model holds it.
type Subscription struct {
	ID             string
	URL            string
	EventTypes     []string
	Description    string
	Enabled        bool
	DisabledReason string
	// StartPosition is the position of the event that created the subscription: delivery
	// starts after it.
	StartPosition int64
	CreatedAt     time.Time
	CreatedBy     string
}

// List reads every subscription, oldest first; with id set, that one only (none when it does
// not exist).
func List(ctx context.Context, db *projections.DB, t projections.Tables, id string) ([]Subscription, error) {
	stmt := `SELECT id, url, event_types, description, enabled, disabled_reason, start_position, created_at, created_by FROM ` +
		t.Name(tableSubscriptions)
	var args []any
	if id != "" {
		stmt += ` WHERE id = ?`
		args = append(args, id)
	}
	rows, err := db.SQL.QueryContext(ctx, db.Dialect.Rebind(stmt+` ORDER BY created_at, id`), args...)
	if err != nil {
		return nil, fmt.Errorf("webhook subscriptions: %w", err)
	}
	defer rows.Close()
	list := []Subscription{}
	for rows.Next() {
		var (
			s              Subscription
			types          string
			enabled, since int64
		)
		if err := rows.Scan(&s.ID, &s.URL, &types, &s.Description, &enabled, &s.DisabledReason, &s.StartPosition, &since, &s.CreatedBy); err != nil {
			return nil, fmt.Errorf("webhook subscriptions: %w", err)
		}
		s.EventTypes, s.Enabled, s.CreatedAt = strings.Split(types, ","), enabled == 1, time.UnixMicro(since).UTC()
		list = append(list, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("webhook subscriptions: %w", err)
	}
	return list, nil
}
