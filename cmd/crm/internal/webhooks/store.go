package webhooks

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/eventcrm/crm/projections"
)

// Subscription is a webhook subscription as an admin sees it: its settings (from the read
// model of the subscription events) and how far delivery got (operational state). The
// secret is in the answer that creates the subscription only.
type Subscription struct {
	ID          string   `json:"id"`
	URL         string   `json:"url"`
	EventTypes  []string `json:"event_types"`
	Description string   `json:"description,omitempty"`
	Enabled     bool     `json:"enabled"`
	// DisabledReason says why a subscription is disabled (after a day of failures, or by an
	// admin).
	DisabledReason string `json:"disabled_reason,omitempty"`
	// Position is the log position of the last event handled: delivered, or not of its types.
	Position int64 `json:"position"`
	// FailingSince is when the current run of failed attempts began.
	FailingSince *time.Time `json:"failing_since,omitempty"`
	CreatedAt    time.Time  `json:"created_at"`
	CreatedBy    string     `json:"created_by"`
	// Version is the version of the subscription's stream (its ETag, for If-Match).
	Version int64 `json:"version,omitempty"`
	// Secret is shown once, in the answer that creates the subscription.
	Secret string `json:"secret,omitempty"`
	secret string
}

// Delivery is one event sent to one subscription, with every attempt counted.
type Delivery struct {
	// ID is the webhook-id header: the same in every attempt, so a receiver drops a duplicate.
	ID             string     `json:"id"`
	SubscriptionID string     `json:"subscription_id"`
	Position       int64      `json:"position"`
	EventID        string     `json:"event_id"`
	EventType      string     `json:"event_type"`
	Status         string     `json:"status"`
	Attempts       int64      `json:"attempts"`
	LastError      string     `json:"last_error,omitempty"`
	ResponseCode   int64      `json:"response_code,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	LastAttemptAt  *time.Time `json:"last_attempt_at,omitempty"`
	DeliveredAt    *time.Time `json:"delivered_at,omitempty"`
}

// Statuses of a delivery.
const (
	StatusPending   = "pending"
	StatusDelivered = "delivered"
	StatusFailed    = "failed" // the subscription was disabled while it was being attempted
)

// Table names, in the read-model database beside the read models (never part of a table set:
// rebuilds leave them alone). They hold delivery state only: the subscriptions themselves are
// events, and their read model is package projections/hooks.
const (
	tablePositions  = "webhook_positions"
	tableDeliveries = "webhook_deliveries"
)

func schema() []string {
	return []string{
		`CREATE TABLE IF NOT EXISTS ` + tablePositions + ` (
			subscription_id TEXT PRIMARY KEY, position BIGINT NOT NULL, failing_since BIGINT NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS ` + tableDeliveries + ` (
			id TEXT PRIMARY KEY, subscription_id TEXT NOT NULL, position BIGINT NOT NULL, event_id TEXT NOT NULL,
			event_type TEXT NOT NULL, status TEXT NOT NULL, attempts BIGINT NOT NULL, last_error TEXT NOT NULL,
			response_code BIGINT NOT NULL, created_at BIGINT NOT NULL, last_attempt_at BIGINT NOT NULL,
			delivered_at BIGINT NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS ` + tableDeliveries + `_sub ON ` + tableDeliveries + ` (subscription_id, position)`,
	}
}

// ErrNotFound: no such subscription or delivery.
var ErrNotFound = errors.New("not found")

// InvalidError is a bad field of a request.
type InvalidError struct{ Field, Message string }

func (e *InvalidError) Error() string { return e.Field + ": " + e.Message }

func invalid(field, format string, args ...any) error {
	return &InvalidError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// store reads and writes the two tables.
type store struct {
	db *projections.DB
	// statements counts the statements run (what an idle delivery costs the database).
	statements *atomic.Int64
}

func (s store) init(ctx context.Context) error {
	for _, stmt := range schema() {
		if _, err := s.db.SQL.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("webhook tables: %w", err)
		}
	}
	return nil
}

func (s store) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	s.statements.Add(1)
	return s.db.SQL.ExecContext(ctx, s.db.Dialect.Rebind(query), args...)
}

// progress is how far the delivery of a subscription got.
type progress struct {
	position int64
	failing  *time.Time
}

// progressOf reads the delivery state of every subscription, or of one (id set).
func (s store) progressOf(ctx context.Context, id string) (map[string]progress, error) {
	stmt, args := `SELECT subscription_id, position, failing_since FROM `+tablePositions, []any{}
	if id != "" {
		stmt, args = stmt+` WHERE subscription_id = ?`, append(args, id)
	}
	s.statements.Add(1)
	rows, err := s.db.SQL.QueryContext(ctx, s.db.Dialect.Rebind(stmt), args...)
	if err != nil {
		return nil, fmt.Errorf("webhook positions: %w", err)
	}
	defer rows.Close()
	out := map[string]progress{}
	for rows.Next() {
		var (
			sub               string
			position, failing int64
		)
		if err := rows.Scan(&sub, &position, &failing); err != nil {
			return nil, fmt.Errorf("webhook positions: %w", err)
		}
		out[sub] = progress{position: position, failing: timeOf(failing)}
	}
	return out, rows.Err()
}

// failing records when the current run of failures began (from the subscription's start when
// it has no position yet).
func (s store) failing(ctx context.Context, id string, start int64, since time.Time) error {
	_, err := s.exec(ctx, `INSERT INTO `+tablePositions+` (subscription_id, position, failing_since) VALUES (?, ?, ?)
		ON CONFLICT (subscription_id) DO UPDATE SET failing_since = excluded.failing_since WHERE `+tablePositions+`.failing_since = 0`,
		id, start, since.UnixMicro())
	if err != nil {
		return fmt.Errorf("webhook subscription %s: %w", id, err)
	}
	return nil
}

// recovered ends the current run of failures (an admin enabled the subscription again).
func (s store) recovered(ctx context.Context, id string) error {
	if _, err := s.exec(ctx, `UPDATE `+tablePositions+` SET failing_since = 0 WHERE subscription_id = ?`, id); err != nil {
		return fmt.Errorf("webhook subscription %s: %w", id, err)
	}
	return nil
}

// advance moves the subscription's position forward (never back) and ends its failures.
func (s store) advance(ctx context.Context, id string, position int64) error {
	_, err := s.exec(ctx, `INSERT INTO `+tablePositions+` (subscription_id, position, failing_since) VALUES (?, ?, 0)
		ON CONFLICT (subscription_id) DO UPDATE SET position = excluded.position, failing_since = 0
		WHERE `+tablePositions+`.position < excluded.position`, id, position)
	if err != nil {
		return fmt.Errorf("advance webhook subscription %s: %w", id, err)
	}
	return nil
}

// remove forgets a deleted subscription's delivery state.
func (s store) remove(ctx context.Context, id string) error {
	if _, err := s.exec(ctx, `DELETE FROM `+tablePositions+` WHERE subscription_id = ?`, id); err != nil {
		return fmt.Errorf("delete position of %s: %w", id, err)
	}
	if _, err := s.exec(ctx, `DELETE FROM `+tableDeliveries+` WHERE subscription_id = ?`, id); err != nil {
		return fmt.Errorf("delete deliveries of %s: %w", id, err)
	}
	return nil
}

// ensureDelivery records a delivery, pending, unless it is recorded already.
func (s store) ensureDelivery(ctx context.Context, d Delivery) error {
	_, err := s.exec(ctx, `INSERT INTO `+tableDeliveries+` (id, subscription_id, position, event_id, event_type, status, attempts,
		last_error, response_code, created_at, last_attempt_at, delivered_at) VALUES (?, ?, ?, ?, ?, ?, 0, '', 0, ?, 0, 0)
		ON CONFLICT (id) DO NOTHING`, d.ID, d.SubscriptionID, d.Position, d.EventID, d.EventType, StatusPending, d.CreatedAt.UnixMicro())
	if err != nil {
		return fmt.Errorf("record delivery %s: %w", d.ID, err)
	}
	return nil
}

// attempted records the outcome of one attempt: the delivery's status after it, and the
// error of a failed one ("" when the receiver took it: then it was delivered at).
func (s store) attempted(ctx context.Context, id, status, lastError string, code int, at time.Time) error {
	set, args := `status = ?, attempts = attempts + 1, last_error = ?, response_code = ?, last_attempt_at = ?`,
		[]any{status, lastError, code, at.UnixMicro()}
	if status == StatusDelivered && lastError == "" {
		set, args = set+`, delivered_at = ?`, append(args, at.UnixMicro())
	}
	if _, err := s.exec(ctx, `UPDATE `+tableDeliveries+` SET `+set+` WHERE id = ?`, append(args, id)...); err != nil {
		return fmt.Errorf("record attempt of %s: %w", id, err)
	}
	return nil
}

func (s store) setStatus(ctx context.Context, id, status string) error {
	_, err := s.exec(ctx, `UPDATE `+tableDeliveries+` SET status = ? WHERE id = ?`, status, id)
	return err
}

const deliveryColumns = `id, subscription_id, position, event_id, event_type, status, attempts, last_error, response_code, created_at, last_attempt_at, delivered_at`

// deliveries lists a subscription's deliveries, latest first.
func (s store) deliveries(ctx context.Context, subscriptionID string, limit int) ([]Delivery, error) {
	return s.queryDeliveries(ctx, ` WHERE subscription_id = ? ORDER BY position DESC LIMIT ?`, subscriptionID, limit)
}

func (s store) delivery(ctx context.Context, subscriptionID, id string) (Delivery, error) {
	list, err := s.queryDeliveries(ctx, ` WHERE subscription_id = ? AND id = ?`, subscriptionID, id)
	if err != nil {
		return Delivery{}, err
	}
	if len(list) == 0 {
		return Delivery{}, ErrNotFound
	}
	return list[0], nil
}

func (s store) queryDeliveries(ctx context.Context, where string, args ...any) ([]Delivery, error) {
	s.statements.Add(1)
	rows, err := s.db.SQL.QueryContext(ctx, s.db.Dialect.Rebind(`SELECT `+deliveryColumns+` FROM `+tableDeliveries+where), args...)
	if err != nil {
		return nil, fmt.Errorf("webhook deliveries: %w", err)
	}
	defer rows.Close()
	list := []Delivery{}
	for rows.Next() {
		var (
			d                        Delivery
			created, last, delivered int64
		)
		if err := rows.Scan(&d.ID, &d.SubscriptionID, &d.Position, &d.EventID, &d.EventType, &d.Status, &d.Attempts, &d.LastError,
			&d.ResponseCode, &created, &last, &delivered); err != nil {
			return nil, fmt.Errorf("webhook deliveries: %w", err)
		}
		d.CreatedAt, d.LastAttemptAt, d.DeliveredAt = time.UnixMicro(created).UTC(), timeOf(last), timeOf(delivered)
		list = append(list, d)
	}
	return list, rows.Err()
}

func timeOf(us int64) *time.Time {
	if us == 0 {
		return nil
	}
	t := time.UnixMicro(us).UTC()
	return &t
}
