package journey

import (
	"context"
	"database/sql"

	"github.com/eventcrm/crm/projections"
)

// exec runs a statement of Apply. On SQLite it is prepared once per transaction and reused:
// a catch-up transaction applies hundreds of events, and SQLite would parse the text again
// for each (a sixth of the catch-up's time). PostgreSQL's driver already keeps prepared
// statements per connection, so there it stays a plain Exec: one round trip.
func exec(ctx context.Context, tx *projections.Tx, query string, args ...any) error {
	if tx.Dialect() != projections.SQLite {
		_, err := tx.Exec(ctx, query, args...)
		return err
	}
	st, err := tx.Prepared(ctx, query)
	if err != nil {
		return err
	}
	_, err = st.ExecContext(ctx, args...)
	return err
}

// queryRow runs a query of Apply for one row, prepared like exec's statements.
func queryRow(ctx context.Context, tx *projections.Tx, query string, args ...any) row {
	if tx.Dialect() != projections.SQLite {
		return row{row: tx.QueryRow(ctx, query, args...)}
	}
	st, err := tx.Prepared(ctx, query)
	if err != nil {
		return row{err: err}
	}
	return row{row: st.QueryRowContext(ctx, args...)}
}

// row is a *sql.Row, or the error of preparing its query.
type row struct {
	row *sql.Row
	err error
}

// Scan is sql.Row's: sql.ErrNoRows when there was no row.
func (r row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	return r.row.Scan(dest...)
}
