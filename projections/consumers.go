package projections

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/eventcrm/crm/eventstore"
)

// ConsumerCheckpoints keeps the checkpoints of the store's consumer groups in the read-model
// database, for stores that keep none themselves (EventStoreDB: its read models and their
// checkpoints live in PostgreSQL).
type ConsumerCheckpoints struct {
	db *DB
}

var _ eventstore.Checkpoints = (*ConsumerCheckpoints)(nil)

// NewConsumerCheckpoints creates the table if needed.
func NewConsumerCheckpoints(ctx context.Context, db *DB) (*ConsumerCheckpoints, error) {
	if _, err := db.SQL.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS consumer_checkpoints (name TEXT PRIMARY KEY, position BIGINT NOT NULL)`); err != nil {
		return nil, fmt.Errorf("create consumer checkpoints: %w", err)
	}
	return &ConsumerCheckpoints{db: db}, nil
}

// LoadCheckpoint returns the saved position of name, 0 when none was saved.
func (c *ConsumerCheckpoints) LoadCheckpoint(ctx context.Context, name string) (int64, error) {
	var pos int64
	err := c.db.SQL.QueryRowContext(ctx, c.db.Dialect.Rebind(`SELECT position FROM consumer_checkpoints WHERE name = ?`), name).Scan(&pos)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("load checkpoint %s: %w", name, err)
	}
	return pos, nil
}

// SaveCheckpoint saves the position of name.
func (c *ConsumerCheckpoints) SaveCheckpoint(ctx context.Context, name string, position int64) error {
	_, err := c.db.SQL.ExecContext(ctx, c.db.Dialect.Rebind(`INSERT INTO consumer_checkpoints (name, position) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET position = excluded.position`), name, position)
	if err != nil {
		return fmt.Errorf("save checkpoint %s: %w", name, err)
	}
	return nil
}
