package projections

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
)

// postgres is the dialect of PostgreSQL.
type postgres struct{}

func (postgres) String() string { return "postgres" }

// Features: the read-model connections commit without waiting for the disk already (see
// sessionDSN), a set being built more so; nobody is served from it, so a crash may lose its
// last batches, which are applied again from their checkpoint (the switch commits
// synchronously).
func (postgres) Features() Features {
	return Features{
		BindsArrays:       true,
		Copy:              true,
		LaxCommit:         `SET LOCAL synchronous_commit = off`,
		Unlogged:          true,
		IndexesSideBySide: true,
		BoundedLockWait:   `SET LOCAL lock_timeout = '` + DropLockTimeout + `'`,
		CustomPlans:       `SET LOCAL plan_cache_mode = force_custom_plan`,
	}
}

// Rebind numbers the placeholders $1, $2, ...
func (postgres) Rebind(query string) string {
	if !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (postgres) PositionKey() string { return "BIGINT PRIMARY KEY" }

// ClusteredByKey: PostgreSQL stores every table as a heap, nothing to add.
func (postgres) ClusteredByKey() string { return "" }

// UpdatedInPlace leaves a third of each page free, so that an update of a row that changes no
// column of an index writes its new version on the same page without a new entry in the
// table's indexes (a heap-only tuple): a rebuild adds to the same counters batch after batch.
func (postgres) UpdatedInPlace() string { return " WITH (fillfactor = 70)" }

// TextType compares bytewise, as SQLite does, whatever the database's collation.
func (postgres) TextType() string { return `TEXT COLLATE "C"` }

func (postgres) AutoID() string { return "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY" }

func (postgres) OrderText(column string) string { return column + ` COLLATE "C"` }

func (postgres) ForUpdate() string { return " FOR UPDATE" }

func (postgres) ReadSnapshot() *sql.TxOptions {
	return &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead}
}

// InKeys passes the keys as one text array.
func (postgres) InKeys(column string, keys []string) (string, any, error) {
	return column + " = ANY(?::text[])", storableStrings(keys), nil
}

func (postgres) TablesWithPrefixQuery() string {
	return `SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND left(tablename, ?) = ?`
}

// DescribeTable reads the catalog of the current schema.
func (postgres) DescribeTable(ctx context.Context, q Queryer, name string) (TableColumns, error) {
	s := TableColumns{Text: map[string]bool{}}
	rows, err := q.QueryContext(ctx, `SELECT column_name, data_type FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position`, name)
	if err != nil {
		return s, fmt.Errorf("columns of %s: %w", name, err)
	}
	defer rows.Close()
	for rows.Next() {
		var col, typ string
		if err := rows.Scan(&col, &typ); err != nil {
			return s, fmt.Errorf("columns of %s: %w", name, err)
		}
		s.Columns = append(s.Columns, col)
		if typ == "text" || strings.HasPrefix(typ, "character") {
			s.Text[col] = true
		}
	}
	if err := rows.Err(); err != nil {
		return s, fmt.Errorf("columns of %s: %w", name, err)
	}
	keys, err := q.QueryContext(ctx, `SELECT a.attname FROM pg_index i
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
		WHERE i.indrelid = to_regclass($1) AND i.indisprimary
		ORDER BY array_position(i.indkey::int2[], a.attnum)`, name)
	if err != nil {
		return s, fmt.Errorf("key of %s: %w", name, err)
	}
	defer keys.Close()
	for keys.Next() {
		var col string
		if err := keys.Scan(&col); err != nil {
			return s, fmt.Errorf("key of %s: %w", name, err)
		}
		s.Key = append(s.Key, col)
	}
	if err := keys.Err(); err != nil {
		return s, fmt.Errorf("key of %s: %w", name, err)
	}
	return s, nil
}

// LockSet takes an advisory lock held until the transaction ends. Two appliers of one set
// (two servers on one database, a redelivery racing the first delivery) would otherwise both
// read the same checkpoint and both apply; the lock makes the second read the first one's
// checkpoint.
func (postgres) LockSet(ctx context.Context, tx *Tx, t Tables) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended(?, 0))`, CheckpointsTable+"/"+t.Prefix()); err != nil {
		return fmt.Errorf("lock %s: %w", t.Prefix(), err)
	}
	return nil
}

func (postgres) ServerStart(ctx context.Context, db *sql.DB) (string, error) {
	var s string
	if err := db.QueryRowContext(ctx, `SELECT pg_postmaster_start_time()::text`).Scan(&s); err != nil {
		return "", fmt.Errorf("server start time: %w", err)
	}
	return s, nil
}
