package projections

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The table-set registry says which set of each projection version is served. A projection
// version without a row serves its default set, TablesFor(p, ""): read-model databases
// from before rebuilds existed keep working unchanged. A rebuild builds a generation set
// ("g1", "g2", ...) beside the served one and replaces the row in the same transaction that
// makes the new set current (see the hand-over in package rebuild's documentation); every
// reader (queries through the runner, the runner's apply transactions, diffs) resolves the
// served set through this table.
const SetsTable = "projection_sets"

// RebuildsTable holds, per projection, the rebuild running or last run: its lock (an owner
// with a lease, so a crashed process does not hold it forever), the set it builds, its phase
// and its progress. Another process reads progress there.
const RebuildsTable = "projection_rebuilds"

// switchedAtLayout is fixed-width so the column sorts as text in both dialects.
const switchedAtLayout = "2006-01-02T15:04:05.000000Z"

func registrySchema() []string {
	return []string{
		`CREATE TABLE IF NOT EXISTS ` + CheckpointsTable + ` (set_name TEXT PRIMARY KEY, position BIGINT NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS ` + ChangesTable + ` (set_name TEXT PRIMARY KEY, changes BIGINT NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS ` + SetsTable + ` (
			projection  TEXT    NOT NULL,
			version     INTEGER NOT NULL,
			generation  TEXT    NOT NULL,
			table_set   TEXT    NOT NULL,
			switched_at TEXT    NOT NULL,
			PRIMARY KEY (projection, version))`,
		`CREATE TABLE IF NOT EXISTS ` + RebuildsTable + ` (
			projection  TEXT    PRIMARY KEY,
			version     INTEGER NOT NULL,
			generation  TEXT    NOT NULL,
			table_set   TEXT    NOT NULL,
			phase       TEXT    NOT NULL,
			old_set     TEXT    NOT NULL,
			owner       TEXT    NOT NULL,
			lease_until BIGINT  NOT NULL,
			started_at  BIGINT  NOT NULL,
			updated_at  BIGINT  NOT NULL,
			position    BIGINT  NOT NULL,
			head        BIGINT  NOT NULL,
			events      BIGINT  NOT NULL,
			resumed_from BIGINT NOT NULL,
			server_start TEXT   NOT NULL)`,
	}
}

// EnsureRegistry creates the registry, the rebuild locks, the checkpoint table and the
// poison queue once per DB value.
func (db *DB) EnsureRegistry(ctx context.Context) error {
	if db.registryReady.Load() {
		return nil
	}
	for _, s := range append(registrySchema(), parkedSchema(db.Dialect)...) {
		if _, err := db.SQL.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("create table-set registry: %w", err)
		}
	}
	db.registryReady.Store(true)
	return nil
}

// querier is what reading the registry needs: a database or a transaction.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// ActiveTables returns the table set served for p's name and version: the set a rebuild last
// switched to, or the default set when none did.
func (db *DB) ActiveTables(ctx context.Context, p Projection) (Tables, error) {
	if err := db.EnsureRegistry(ctx); err != nil {
		return Tables{}, err
	}
	return db.activeIn(ctx, db.SQL, p)
}

// ActiveTablesIn is ActiveTables read inside tx: after the set's lock, a switch has either
// committed or waits for tx to end.
func (db *DB) ActiveTablesIn(ctx context.Context, tx *Tx, p Projection) (Tables, error) {
	return db.activeIn(ctx, tx.tx, p)
}

func (db *DB) activeIn(ctx context.Context, q querier, p Projection) (Tables, error) {
	var generation string
	err := q.QueryRowContext(ctx, db.Dialect.Rebind(`SELECT generation FROM `+SetsTable+` WHERE projection = ? AND version = ?`),
		p.Name(), p.Version()).Scan(&generation)
	if errors.Is(err, sql.ErrNoRows) {
		return TablesFor(p, ""), nil
	}
	if err != nil {
		return Tables{}, fmt.Errorf("active set of %s: %w", p.Name(), err)
	}
	return TablesFor(p, generation), nil
}

// ServedSet is a row of the registry, or a default set in use.
type ServedSet struct {
	Projection string    `json:"projection"`
	Version    int       `json:"version"`
	Generation string    `json:"generation"`
	Tables     Tables    `json:"-"`
	TableSet   string    `json:"table_set"`
	SwitchedAt time.Time `json:"switched_at,omitzero"`
}

// ServedTables finds the set in service for a projection name whatever its version: the set
// most recently switched to, else the default set with the highest version that has a
// checkpoint. A binary whose projection has a new version can so compare itself with the
// tables the running server still serves. found is false when no set of name has ever
// applied an event.
func (db *DB) ServedTables(ctx context.Context, name string) (s ServedSet, found bool, err error) {
	if err := db.EnsureRegistry(ctx); err != nil {
		return ServedSet{}, false, err
	}
	var at string
	err = db.SQL.QueryRowContext(ctx, db.Dialect.Rebind(`SELECT version, generation, table_set, switched_at FROM `+SetsTable+`
		WHERE projection = ? ORDER BY switched_at DESC, version DESC LIMIT 1`), name).Scan(&s.Version, &s.Generation, &s.TableSet, &at)
	switch {
	case err == nil:
		s.Projection = name
		s.Tables = Tables{prefix: s.TableSet}
		s.SwitchedAt, _ = time.Parse(switchedAtLayout, at)
		return s, true, nil
	case !errors.Is(err, sql.ErrNoRows):
		return ServedSet{}, false, fmt.Errorf("served set of %s: %w", name, err)
	}
	rows, err := db.SQL.QueryContext(ctx, `SELECT set_name FROM `+CheckpointsTable)
	if err != nil {
		return ServedSet{}, false, fmt.Errorf("served set of %s: %w", name, err)
	}
	defer rows.Close()
	defaultSet := regexp.MustCompile(`^` + regexp.QuoteMeta(name) + `_v([0-9]+)_$`)
	for rows.Next() {
		var set string
		if err := rows.Scan(&set); err != nil {
			return ServedSet{}, false, fmt.Errorf("served set of %s: %w", name, err)
		}
		m := defaultSet.FindStringSubmatch(set)
		if m == nil {
			continue
		}
		if v, err := strconv.Atoi(m[1]); err == nil && v > s.Version {
			s = ServedSet{Projection: name, Version: v, Tables: Tables{prefix: set}, TableSet: set}
			found = true
		}
	}
	if err := rows.Err(); err != nil {
		return ServedSet{}, false, fmt.Errorf("served set of %s: %w", name, err)
	}
	return s, found, nil
}

// SetActive records t as the served set of p, inside the switching transaction.
func SetActive(ctx context.Context, tx *Tx, p Projection, generation string, t Tables, now time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO `+SetsTable+` (projection, version, generation, table_set, switched_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (projection, version) DO UPDATE SET generation = excluded.generation, table_set = excluded.table_set,
			switched_at = excluded.switched_at`,
		p.Name(), p.Version(), generation, t.Prefix(), now.UTC().Format(switchedAtLayout))
	if err != nil {
		return fmt.Errorf("switch %s to %s: %w", p.Name(), t.Prefix(), err)
	}
	return nil
}

// GenerationNumber is N of a generation "gN", 0 for anything else (the default set).
func GenerationNumber(generation string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(generation, "g"))
	if err != nil || !strings.HasPrefix(generation, "g") {
		return 0
	}
	return n
}

// SetTables returns the names of the tables of set t as p's schema creates them: the
// tables a drop removes. Indexes go with their tables.
func SetTables(d Dialect, p Projection, t Tables) []string {
	var names []string
	for _, s := range p.Schema(d, t) {
		if m := createTable.FindStringSubmatch(s); m != nil {
			names = append(names, m[1])
		}
	}
	return names
}

var (
	createTable = regexp.MustCompile(`(?is)^\s*CREATE\s+(?:UNLOGGED\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?([A-Za-z0-9_]+)`)
	createIndex = regexp.MustCompile(`(?is)^\s*CREATE\s+(?:UNIQUE\s+)?INDEX\b`)
)

// DropSet removes the tables of set t (named by p's schema, or, for a set of another
// version whose schema this code does not know, every table with the set's prefix), its
// checkpoint and its parked events.
func (db *DB) DropSet(ctx context.Context, p Projection, t Tables, sameVersion bool) error {
	names := SetTables(db.Dialect, p, t)
	if !sameVersion {
		if t.Prefix() == TablesFor(p, "").Prefix() {
			// A default set's prefix is a prefix of its generation sets' too: only a schema
			// names its tables. (Never reached: only generation sets of other versions are
			// dropped.)
			return fmt.Errorf("drop %s: the default set of another version", t.Prefix())
		}
		var err error
		if names, err = db.TableNamesWithPrefix(ctx, t.Prefix()); err != nil {
			return err
		}
	}
	for _, name := range names {
		// A searched table's companion (see Dialect.TextSearch) goes with it.
		for _, n := range []string{name, name + SearchTableSuffix} {
			if err := db.dropTable(ctx, n); err != nil {
				return err
			}
		}
	}
	for _, q := range []string{
		`DELETE FROM ` + CheckpointsTable + ` WHERE set_name = ?`,
		`DELETE FROM ` + ParkedTable + ` WHERE table_set = ?`,
	} {
		if _, err := db.SQL.ExecContext(ctx, db.Dialect.Rebind(q), t.Prefix()); err != nil && !IsNoSuchTable(err) {
			return fmt.Errorf("drop %s: %w", t.Prefix(), err)
		}
	}
	return nil
}

// TableNamesWithPrefix lists the tables of the read-model database whose names start with
// prefix (compared exactly: '_' is no wildcard here).
func (db *DB) TableNamesWithPrefix(ctx context.Context, prefix string) ([]string, error) {
	rows, err := db.SQL.QueryContext(ctx, db.Dialect.Rebind(db.Dialect.TablesWithPrefixQuery()), len(prefix), prefix)
	if err != nil {
		return nil, fmt.Errorf("tables of %s: %w", prefix, err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("tables of %s: %w", prefix, err)
		}
		names = append(names, name)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("tables of %s: %w", prefix, err)
	}
	return names, nil
}

// IsNoSuchTable tells a missing table (the poison queue of a database no runner ever
// initialized) from other failures.
func IsNoSuchTable(err error) bool {
	s := err.Error()
	return strings.Contains(s, "no such table") || strings.Contains(s, "SQLSTATE 42P01")
}

// SetTablesInCatalog lists the tables of the set with prefix as the database has them,
// whatever code created them: the tables named with the prefix, except those of other sets
// whose prefixes extend it (a default set's prefix is a prefix of its generation sets'):
// the sets known to the checkpoints, the registry and the rebuilds, and exclude.
func (db *DB) SetTablesInCatalog(ctx context.Context, q Queryer, prefix string, exclude ...string) ([]string, error) {
	names, err := db.TableNamesWithPrefix(ctx, prefix)
	if err != nil {
		return nil, err
	}
	rows, err := q.QueryContext(ctx, `SELECT set_name FROM `+CheckpointsTable+` UNION SELECT table_set FROM `+SetsTable+
		` UNION SELECT table_set FROM `+RebuildsTable)
	if err != nil {
		return nil, fmt.Errorf("sets: %w", err)
	}
	defer rows.Close()
	others := exclude
	for rows.Next() {
		var set string
		if err := rows.Scan(&set); err != nil {
			return nil, fmt.Errorf("sets: %w", err)
		}
		others = append(others, set)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sets: %w", err)
	}
	others = slices.DeleteFunc(others, func(o string) bool { return len(o) <= len(prefix) || !strings.HasPrefix(o, prefix) })
	return slices.DeleteFunc(names, func(name string) bool {
		return slices.ContainsFunc(others, func(o string) bool { return strings.HasPrefix(name, o) })
	}), nil
}
