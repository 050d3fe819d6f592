package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
)

// dialect is where the tree, the checkpoints and the access log are kept: a SQLite file of
// their own, or tables of the PostgreSQL store's schema that every server of a deployment
// shares. The statements are written once, for SQLite; pg rewrites them.
type dialect struct {
	pg      bool
	rebound sync.Map // SQLite statement -> PostgreSQL statement
}

// pgTables renames the audit's tables in the store's schema, where the names must not
// collide with the store's own.
var pgTables = regexp.MustCompile(`\b(tree_state|tiles|nodes|pending|checkpoints|access_log)\b`)

// q returns the statement in this dialect: on PostgreSQL, the tables prefixed with audit_
// and the ? placeholders numbered.
func (d *dialect) q(query string) string {
	if d == nil || !d.pg {
		return query
	}
	if s, ok := d.rebound.Load(query); ok {
		return s.(string)
	}
	s := pgTables.ReplaceAllString(query, "audit_$1")
	var b strings.Builder
	n := 0
	for _, r := range s {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	d.rebound.Store(query, b.String())
	return b.String()
}

// pgSchemaLockKey is the first key of the advisory lock that serializes the creation of the
// audit's tables in one schema (the second is the hash of the schema's name).
const pgSchemaLockKey = 1702260342

// openPostgres returns a database/sql handle on the store's pool (closing it leaves the pool
// open) after creating the audit's tables in the pool's schema when they are missing, under
// a lock, so that servers starting together do not race on the DDL.
func openPostgres(ctx context.Context, pool *pgxpool.Pool, schema string) (*sql.DB, error) {
	db := stdlib.OpenDBFromPool(pool)
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		db.Close()
		return nil, err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))", pgSchemaLockKey); err != nil {
		db.Close()
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, schema); err != nil {
		db.Close()
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

const pgTreeSchema = `
	CREATE TABLE IF NOT EXISTS audit_tree_state (
		id            INTEGER PRIMARY KEY CHECK (id = 1),
		tile_height   INTEGER NOT NULL,
		size          BIGINT  NOT NULL,
		last_position BIGINT  NOT NULL
	);
	CREATE TABLE IF NOT EXISTS audit_tiles (
		idx            BIGINT PRIMARY KEY,
		after_position BIGINT NOT NULL,
		last_position  BIGINT NOT NULL UNIQUE
	);
	CREATE TABLE IF NOT EXISTS audit_nodes (
		level INTEGER NOT NULL,
		idx   BIGINT  NOT NULL,
		hash  BYTEA   NOT NULL,
		PRIMARY KEY (level, idx)
	);
	CREATE TABLE IF NOT EXISTS audit_pending (
		idx      BIGINT PRIMARY KEY,
		position BIGINT NOT NULL,
		hash     BYTEA  NOT NULL
	);` + pgCheckpointSchema

const pgCheckpointSchema = `
	CREATE TABLE IF NOT EXISTS audit_checkpoints (
		size          BIGINT NOT NULL,
		key_id        TEXT   NOT NULL,
		last_position BIGINT NOT NULL,
		root_hash     BYTEA  NOT NULL,
		timestamp     TEXT   NOT NULL,
		signature     BYTEA  NOT NULL,
		PRIMARY KEY (size, key_id)
	);
	-- The one key that signs this store's checkpoints.
	CREATE TABLE IF NOT EXISTS audit_identity (
		id         INTEGER PRIMARY KEY CHECK (id = 1),
		key_id     TEXT    NOT NULL,
		public_key BYTEA   NOT NULL
	);`

const pgAccessSchema = `
	CREATE TABLE IF NOT EXISTS audit_access_log (
		seq        BIGINT  PRIMARY KEY,
		at         BIGINT  NOT NULL, -- unix microseconds, UTC
		actor      TEXT    NOT NULL,
		role       TEXT    NOT NULL,
		request_id TEXT    NOT NULL,
		method     TEXT    NOT NULL,
		path       TEXT    NOT NULL,
		query      TEXT    NOT NULL,
		status     INTEGER NOT NULL,
		what       TEXT    NOT NULL,
		prev_hash  BYTEA   NOT NULL,
		hash       BYTEA   NOT NULL
	);
	CREATE OR REPLACE FUNCTION audit_access_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN RAISE EXCEPTION 'the access log is append-only'; END $$;
	CREATE OR REPLACE TRIGGER audit_access_log_no_change BEFORE UPDATE OR DELETE ON audit_access_log
		FOR EACH ROW EXECUTE FUNCTION audit_access_log_append_only();
	CREATE OR REPLACE TRIGGER audit_access_log_no_truncate BEFORE TRUNCATE ON audit_access_log
		FOR EACH STATEMENT EXECUTE FUNCTION audit_access_log_append_only();`

// OpenPostgresTree opens (creating its tables if needed) the tree kept in the schema of the
// PostgreSQL store whose pool is given: one tree for every server of the store. Close leaves
// the pool open.
func OpenPostgresTree(ctx context.Context, pool *pgxpool.Pool, opts ...TreeOption) (*Tree, error) {
	t, err := newTree(opts)
	if err != nil {
		return nil, err
	}
	db, err := openPostgres(ctx, pool, pgTreeSchema)
	if err != nil {
		return nil, fmt.Errorf("open audit tree in postgres: %w", err)
	}
	t.db, t.d = db, &dialect{pg: true}
	if err := t.init(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open audit tree in postgres: %w", err)
	}
	return t, nil
}

// OpenPostgresAccessLog opens (creating its table if needed) the access log kept in the
// schema of the PostgreSQL store whose pool is given: one log for every server of the store.
// Rows cannot be updated, deleted or truncated (triggers refuse). Close leaves the pool open.
func OpenPostgresAccessLog(ctx context.Context, pool *pgxpool.Pool) (*AccessLog, error) {
	db, err := openPostgres(ctx, pool, pgAccessSchema)
	if err != nil {
		return nil, fmt.Errorf("open access log in postgres: %w", err)
	}
	return &AccessLog{db: db, d: &dialect{pg: true}}, nil
}

// ErrOtherKey: the store's checkpoints are signed by another key than this server's.
var ErrOtherKey = errors.New("the audit trail is signed by another key")

// ClaimKey records key as the one key of the store's audit trail when there is none yet,
// and returns ErrOtherKey when another key was recorded: every server of a store must sign
// with the same key, so that each answers the same checkpoint. A SQLite tree belongs to one
// data directory, beside its key: there, ClaimKey records nothing.
func (t *Tree) ClaimKey(ctx context.Context, key PublicKey) error {
	if t.d == nil || !t.d.pg {
		return nil
	}
	if _, err := t.db.ExecContext(ctx, "INSERT INTO audit_identity (id, key_id, public_key) VALUES (1, $1, $2) ON CONFLICT DO NOTHING",
		key.ID(), key.Raw()); err != nil {
		return fmt.Errorf("claim audit key: %w", err)
	}
	var id string
	if err := t.db.QueryRowContext(ctx, "SELECT key_id FROM audit_identity").Scan(&id); err != nil {
		return fmt.Errorf("claim audit key: %w", err)
	}
	if id != key.ID() {
		return fmt.Errorf("this store's checkpoints are signed by key %s, this server's key is %s: %w", id, key.ID(), ErrOtherKey)
	}
	return nil
}

// checkpoint returns the checkpoint of the tree head h signed by s: the one stored for that
// size and key, else a new one, stored first. Ed25519 signatures are deterministic, so the
// timestamp alone would tell two signings of one head apart; storing the first makes every
// server, and every later request, answer the same checkpoint for the same tree.
func (t *Tree) checkpoint(ctx context.Context, h Head, s *Signer) (Checkpoint, error) {
	keyID := s.Public().ID()
	read := func() (Checkpoint, error) {
		c := Checkpoint{Size: h.Size, KeyID: keyID}
		var root []byte
		err := t.db.QueryRowContext(ctx, t.d.q("SELECT last_position, root_hash, timestamp, signature FROM checkpoints WHERE size = ? AND key_id = ?"),
			h.Size, keyID).Scan(&c.LastPosition, &root, &c.Timestamp, &c.Signature)
		if err != nil {
			return Checkpoint{}, err
		}
		if c.RootHash, err = hashOf(root); err != nil {
			return Checkpoint{}, err
		}
		return c, nil
	}
	c, err := read()
	if errors.Is(err, sql.ErrNoRows) {
		n := s.Sign(h)
		if _, err := t.db.ExecContext(ctx, t.d.q("INSERT INTO checkpoints (size, key_id, last_position, root_hash, timestamp, signature) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"),
			n.Size, n.KeyID, n.LastPosition, n.RootHash[:], n.Timestamp, n.Signature); err != nil {
			return Checkpoint{}, fmt.Errorf("store checkpoint: %w", err)
		}
		c, err = read()
	}
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint of %d events: %w", h.Size, err)
	}
	if c.LastPosition != h.LastPosition || c.RootHash != h.Root {
		return Checkpoint{}, fmt.Errorf("the stored checkpoint of %d events has root %s, the tree %s: %w", h.Size, c.RootHash, h.Root, ErrLogAltered)
	}
	return c, nil
}
