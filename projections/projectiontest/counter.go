package projectiontest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
)

// Counter is the runtime tests' own projection. Per stream and type it counts events; it
// keeps the id of every applied event (applying one twice fails on the primary key) and the
// last version applied per stream (an event out of stream order fails).
type Counter struct {
	// ProjectionName is its name (default "event_counts").
	ProjectionName string
	// Refuse, when set, may refuse or panic on an event.
	Refuse func(e eventstore.Event) error
	// CountOnly keeps the counts only: nothing in the tables refuses an event applied twice.
	CountOnly bool
}

// Name is ProjectionName or "event_counts".
func (c *Counter) Name() string {
	if c.ProjectionName == "" {
		return "event_counts"
	}
	return c.ProjectionName
}

// Version is 1.
func (c *Counter) Version() int { return 1 }

// Schema has the tables counts, seen and streams.
func (c *Counter) Schema(_ projections.Dialect, t projections.Tables) []string {
	return []string{
		`CREATE TABLE IF NOT EXISTS ` + t.Name("counts") + ` (stream TEXT NOT NULL, type TEXT NOT NULL, n BIGINT NOT NULL, PRIMARY KEY (stream, type))`,
		`CREATE TABLE IF NOT EXISTS ` + t.Name("seen") + ` (event_id TEXT PRIMARY KEY, position BIGINT NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS ` + t.Name("streams") + ` (stream TEXT PRIMARY KEY, version BIGINT NOT NULL)`,
	}
}

// Apply counts e, after Refuse had its say.
func (c *Counter) Apply(ctx context.Context, tx *projections.Tx, t projections.Tables, e eventstore.Event) error {
	if c.Refuse != nil {
		if err := c.Refuse(e); err != nil {
			return err
		}
	}
	if c.CountOnly {
		_, err := tx.Exec(ctx, `INSERT INTO `+t.Name("counts")+` (stream, type, n) VALUES (?, ?, 1)
			ON CONFLICT (stream, type) DO UPDATE SET n = `+t.Name("counts")+`.n + 1`, e.Stream, e.Type)
		return err
	}
	var last int64
	err := tx.QueryRow(ctx, `SELECT version FROM `+t.Name("streams")+` WHERE stream = ?`, e.Stream).Scan(&last)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	if e.Version != last+1 {
		return fmt.Errorf("stream %s: version %d after %d", e.Stream, e.Version, last)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO `+t.Name("streams")+` (stream, version) VALUES (?, ?)
		ON CONFLICT (stream) DO UPDATE SET version = excluded.version`, e.Stream, e.Version); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO `+t.Name("seen")+` (event_id, position) VALUES (?, ?)`, e.ID, e.Position); err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO `+t.Name("counts")+` (stream, type, n) VALUES (?, ?, 1)
		ON CONFLICT (stream, type) DO UPDATE SET n = `+t.Name("counts")+`.n + 1`, e.Stream, e.Type)
	return err
}
