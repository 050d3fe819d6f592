package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sort"
	"sync"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/eventcrm/crm/internal/sqlitefile"
)

// ErrLogAltered: the stored log no longer matches a checkpoint, or what the audit tree
// recorded when the events were added.
var ErrLogAltered = errors.New("log altered")

// Head is a tree's size (number of events), the position of its last event and its root.
type Head struct {
	Size         int64
	LastPosition int64
	Root         Hash
}

// DefaultTileHeight: the tree stores the hashes of subtrees of 2^8 = 256 events and above,
// and recomputes the levels below from the log when a proof needs them. That keeps the
// stored tree at about 2 hashes per 256 events (100 kB for a million events) for the price
// of reading 256 events per proof.
const DefaultTileHeight = 8

// updateBatch is how many events Update reads and commits at once: the memory it needs.
const updateBatch = 8192

// Tree is the Merkle tree of the whole log in global position order (see AppendLeaf for the
// leaves), kept incrementally in a SQLite file of its own: a new event costs one leaf hash
// and, once per 2^h events, a few node hashes; nothing already added is hashed again. The
// tree is derived from the log, but what it recorded when events were added is also what
// tells a later change of those events apart.
//
// It stores the hashes of the complete subtrees of 2^h leaves and above ("tiles" and their
// ancestors, with the positions each tile spans), and the leaf hashes of the last,
// incomplete tile. Memory stays bounded by the batch size whatever the size of the log.
//
// A Tree is safe for concurrent use; several processes may share its file.
type Tree struct {
	db     *sql.DB
	height uint
	width  int64
	d      *dialect   // nil: a SQLite file
	mu     sync.Mutex // one Update at a time in this process; the database's lock between processes
}

// TreeOption configures OpenTree.
type TreeOption func(*Tree)

// WithTileHeight sets h, the level from which subtree hashes are stored (default
// DefaultTileHeight). A tree file keeps the height it was created with.
func WithTileHeight(h uint) TreeOption { return func(t *Tree) { t.height = h } }

// OpenTree opens (creating it if needed) the tree stored in the SQLite file at path.
func OpenTree(ctx context.Context, path string, opts ...TreeOption) (*Tree, error) {
	t, err := newTree(opts)
	if err != nil {
		return nil, err
	}
	db, err := openSQLite(ctx, path, sqliteTreeSchema)
	if err != nil {
		return nil, fmt.Errorf("open audit tree %s: %w", path, err)
	}
	t.db = db
	if err := t.init(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open audit tree %s: %w", path, err)
	}
	return t, nil
}

func newTree(opts []TreeOption) (*Tree, error) {
	t := &Tree{height: DefaultTileHeight}
	for _, o := range opts {
		o(t)
	}
	if t.height < 1 || t.height > 20 {
		return nil, fmt.Errorf("open audit tree: tile height %d: want 1 to 20", t.height)
	}
	t.width = 1 << t.height
	return t, nil
}

// init creates the tree's state row and checks that the stored tree has t's tile height.
func (t *Tree) init(ctx context.Context) error {
	if _, err := t.db.ExecContext(ctx, t.d.q("INSERT INTO tree_state (id, tile_height, size, last_position) VALUES (1, ?, 0, 0) ON CONFLICT DO NOTHING"), t.height); err != nil {
		return err
	}
	var height uint
	if err := t.db.QueryRowContext(ctx, t.d.q("SELECT tile_height FROM tree_state")).Scan(&height); err != nil {
		return err
	}
	if height != t.height {
		return fmt.Errorf("it has tile height %d, not %d", height, t.height)
	}
	return nil
}

const sqliteTreeSchema = `
	CREATE TABLE IF NOT EXISTS tree_state (
		id            INTEGER PRIMARY KEY CHECK (id = 1),
		tile_height   INTEGER NOT NULL,
		size          INTEGER NOT NULL, -- events in the tree
		last_position INTEGER NOT NULL  -- position of the last of them
	);
	-- Complete tiles: the positions (after_position, last_position] hold their events.
	CREATE TABLE IF NOT EXISTS tiles (
		idx            INTEGER PRIMARY KEY,
		after_position INTEGER NOT NULL,
		last_position  INTEGER NOT NULL UNIQUE
	);
	-- Hashes of complete subtrees of 2^level leaves, level >= tile height, the idx-th
	-- of that size from the left.
	CREATE TABLE IF NOT EXISTS nodes (
		level INTEGER NOT NULL,
		idx   INTEGER NOT NULL,
		hash  BLOB    NOT NULL,
		PRIMARY KEY (level, idx)
	) WITHOUT ROWID;
	-- Leaf hashes of the last, incomplete tile.
	CREATE TABLE IF NOT EXISTS pending (
		idx      INTEGER PRIMARY KEY, -- leaf index in the tree
		position INTEGER NOT NULL,
		hash     BLOB    NOT NULL
	);
	-- The checkpoint of each size, signed once per key: every later request for that size
	-- answers the same bytes.
	CREATE TABLE IF NOT EXISTS checkpoints (
		size          INTEGER NOT NULL,
		key_id        TEXT    NOT NULL,
		last_position INTEGER NOT NULL,
		root_hash     BLOB    NOT NULL,
		timestamp     TEXT    NOT NULL,
		signature     BLOB    NOT NULL,
		PRIMARY KEY (size, key_id)
	);`

// openSQLite opens a SQLite file in WAL mode, synchronous FULL, and runs schema.
func openSQLite(ctx context.Context, path, schema string) (*sql.DB, error) {
	// SQLite would create the file 0644 (less the umask), and its -wal and -shm files with the
	// file's mode: create it 0600 first.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	db, err := sql.Open("sqlite", sqlitefile.DSN(path, q))
	if err != nil {
		return nil, err
	}
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// Close closes the tree's file.
func (t *Tree) Close() error { return t.db.Close() }

type leafRec struct {
	position int64
	hash     Hash
}

type nodeRec struct {
	idx  int64
	hash Hash
}

// Update adds the events of feed after the tree's last position and returns the new head.
// It checks every event's stored hash against its content and refuses (with a
// *eventstore.ChainError) to add one that does not match.
func (t *Tree) Update(ctx context.Context, feed Source) (Head, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	conn, err := t.db.Conn(ctx)
	if err != nil {
		return Head{}, fmt.Errorf("update audit tree: %w", err)
	}
	defer conn.Close()
	r := &readAhead{feed: feed}
	defer r.stop()
	x := newHasher()
	for {
		n, err := t.updateBatch(ctx, conn, r, x)
		if err != nil {
			return Head{}, fmt.Errorf("update audit tree: %w", err)
		}
		if n < updateBatch {
			break
		}
	}
	snap, err := t.Snapshot(ctx, nil)
	if err != nil {
		return Head{}, err
	}
	return snap.Head(ctx)
}

// updateBatch adds one batch of events in one transaction and returns how many it read.
// BEGIN IMMEDIATE takes the write lock first, so another process's Update waits and then
// sees this one's work.
func (t *Tree) updateBatch(ctx context.Context, conn *sql.Conn, feed *readAhead, x *hasher) (n int, err error) {
	begin, state := "BEGIN IMMEDIATE", "SELECT size, last_position FROM tree_state"
	if t.d != nil && t.d.pg {
		// The state row's lock plays BEGIN IMMEDIATE's part between servers.
		begin, state = "BEGIN", state+" FOR UPDATE"
	}
	if _, err := conn.ExecContext(ctx, begin); err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()
	var size, last int64
	if err := conn.QueryRowContext(ctx, t.d.q(state)).Scan(&size, &last); err != nil {
		return 0, err
	}
	rows, err := feed.read(ctx, last)
	if err != nil {
		return 0, err
	}
	if len(rows) == 0 {
		_, err := conn.ExecContext(ctx, "COMMIT")
		return 0, err
	}
	pending, err := loadPending(ctx, t.d, conn)
	if err != nil {
		return 0, err
	}
	if int64(len(pending)) != size%t.width {
		return 0, fmt.Errorf("%d pending leaves for a tree of %d: the tree file is damaged", len(pending), size)
	}
	frontier := map[uint]nodeRec{} // last node stored per level: the left sibling of the next
	tileAfter := last
	if len(pending) > 0 {
		if err := conn.QueryRowContext(ctx, t.d.q("SELECT coalesce(max(last_position), 0) FROM tiles")).Scan(&tileAfter); err != nil {
			return 0, err
		}
	}
	for i := range rows {
		r := &rows[i]
		if r.Position <= last {
			return 0, fmt.Errorf("feed returned position %d after %d", r.Position, last)
		}
		leaf, err := x.rowLeaf(r)
		if err != nil {
			return 0, err
		}
		pending = append(pending, leafRec{position: r.Position, hash: leaf})
		size++
		last = r.Position
		if int64(len(pending)) < t.width {
			continue
		}
		idx := size/t.width - 1
		if _, err := conn.ExecContext(ctx, t.d.q("INSERT INTO tiles (idx, after_position, last_position) VALUES (?, ?, ?)"), idx, tileAfter, last); err != nil {
			return 0, err
		}
		if err := t.putNode(ctx, conn, frontier, t.height, idx, RootOf(hashesOf(pending))); err != nil {
			return 0, err
		}
		pending, tileAfter = pending[:0], last
	}
	if _, err := conn.ExecContext(ctx, t.d.q("DELETE FROM pending")); err != nil {
		return 0, err
	}
	for i, p := range pending {
		if _, err := conn.ExecContext(ctx, t.d.q("INSERT INTO pending (idx, position, hash) VALUES (?, ?, ?)"),
			size-int64(len(pending))+int64(i), p.position, p.hash[:]); err != nil {
			return 0, err
		}
	}
	if _, err := conn.ExecContext(ctx, t.d.q("UPDATE tree_state SET size = ?, last_position = ?"), size, last); err != nil {
		return 0, err
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return 0, err
	}
	return len(rows), nil
}

// readAhead reads the feed a batch ahead of the batch being hashed. Another process may add
// to the tree between two batches: a read that does not follow on from the tree's last
// position starts over from there.
type readAhead struct {
	feed    Source
	after   int64 // the position the batch on its way follows
	batches <-chan batch
	cancel  context.CancelFunc
}

func (r *readAhead) read(ctx context.Context, after int64) ([]Row, error) {
	if r.batches == nil || after != r.after {
		r.stop()
		var rctx context.Context
		rctx, r.cancel = context.WithCancel(ctx)
		r.batches, r.after = prefetch(rctx, r.feed, after, updateBatch), after
	}
	b, ok := <-r.batches
	if !ok { // the reader stopped after a short batch: the log ended there
		return nil, ctx.Err()
	}
	if len(b.rows) > 0 {
		r.after = b.rows[len(b.rows)-1].Position
	}
	return b.rows, b.err
}

func (r *readAhead) stop() {
	if r.cancel != nil {
		r.cancel()
		for range r.batches { // let the reader go
		}
	}
	r.batches, r.cancel = nil, nil
}

// putNode stores a complete subtree's hash and every ancestor it completes. frontier holds
// the last node stored at each level in this transaction: the left sibling of the next one.
func (t *Tree) putNode(ctx context.Context, conn *sql.Conn, frontier map[uint]nodeRec, level uint, idx int64, h Hash) error {
	for {
		if _, err := conn.ExecContext(ctx, t.d.q("INSERT INTO nodes (level, idx, hash) VALUES (?, ?, ?)"), level, idx, h[:]); err != nil {
			return err
		}
		sib, cached := frontier[level]
		frontier[level] = nodeRec{idx: idx, hash: h}
		if idx&1 == 0 {
			return nil
		}
		if !cached || sib.idx != idx-1 {
			var err error
			if sib.hash, err = readNode(ctx, t.d, conn, level, idx-1); err != nil {
				return err
			}
		}
		h = NodeHash(sib.hash, h)
		level, idx = level+1, idx/2
	}
}

// queryer is a *sql.DB, *sql.Conn or *sql.Tx.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func readNode(ctx context.Context, d *dialect, q queryer, level uint, idx int64) (Hash, error) {
	var b []byte
	if err := q.QueryRowContext(ctx, d.q("SELECT hash FROM nodes WHERE level = ? AND idx = ?"), level, idx).Scan(&b); err != nil {
		return Hash{}, fmt.Errorf("node %d/%d: %w", level, idx, err)
	}
	return hashOf(b)
}

func hashOf(b []byte) (Hash, error) {
	var h Hash
	if len(b) != len(h) {
		return h, fmt.Errorf("stored hash of %d bytes", len(b))
	}
	copy(h[:], b)
	return h, nil
}

func loadPending(ctx context.Context, d *dialect, q queryer) ([]leafRec, error) {
	rows, err := q.QueryContext(ctx, d.q("SELECT position, hash FROM pending ORDER BY idx"))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []leafRec
	for rows.Next() {
		var (
			l leafRec
			b []byte
		)
		if err := rows.Scan(&l.position, &b); err != nil {
			return nil, err
		}
		if l.hash, err = hashOf(b); err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

func hashesOf(leaves []leafRec) []Hash {
	out := make([]Hash, len(leaves))
	for i, l := range leaves {
		out[i] = l.hash
	}
	return out
}

// Snapshot is the tree as committed at one moment, for roots and proofs of any size up to
// its own. The levels below the stored tiles are recomputed from src, and a recomputed tile
// that differs from its stored hash is reported as ErrLogAltered.
type Snapshot struct {
	t            *Tree
	src          Source
	size         int64
	lastPosition int64
	pending      []leafRec // leaves of the incomplete last tile
	tiles        map[int64][]leafRec
	x            *hasher
}

// Snapshot reads the tree's committed state. src re-reads the events of complete tiles when
// a proof or a root of an earlier size needs them; it may be nil when only the snapshot's own
// head is asked for, which needs stored hashes alone.
func (t *Tree) Snapshot(ctx context.Context, src Source) (*Snapshot, error) {
	// One read transaction: the state and its pending leaves agree (on PostgreSQL that takes
	// repeatable read; SQLite's transactions are serializable).
	var opts *sql.TxOptions
	if t.d != nil && t.d.pg {
		opts = &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}
	}
	tx, err := t.db.BeginTx(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("audit tree: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read only
	s := &Snapshot{t: t, src: src, tiles: map[int64][]leafRec{}, x: newHasher()}
	if err := tx.QueryRowContext(ctx, t.d.q("SELECT size, last_position FROM tree_state")).Scan(&s.size, &s.lastPosition); err != nil {
		return nil, fmt.Errorf("audit tree: %w", err)
	}
	if s.pending, err = loadPending(ctx, t.d, tx); err != nil {
		return nil, fmt.Errorf("audit tree: %w", err)
	}
	if int64(len(s.pending)) != s.size%t.width {
		return nil, fmt.Errorf("audit tree: %d pending leaves for a tree of %d: the tree file is damaged", len(s.pending), s.size)
	}
	return s, nil
}

// Size is the number of events in the snapshot.
func (s *Snapshot) Size() int64 { return s.size }

// Head is the snapshot's size, last position and root.
func (s *Snapshot) Head(ctx context.Context) (Head, error) {
	root, err := s.Root(ctx, s.size)
	if err != nil {
		return Head{}, err
	}
	return Head{Size: s.size, LastPosition: s.lastPosition, Root: root}, nil
}

// Root is the root of the tree of the first size events.
func (s *Snapshot) Root(ctx context.Context, size int64) (Hash, error) {
	if size < 0 || size > s.size {
		return Hash{}, fmt.Errorf("root of size %d: the tree has %d events: %w", size, s.size, ErrOutOfRange)
	}
	if size == 0 {
		return EmptyRoot(), nil
	}
	return s.hashRange(ctx, 0, size)
}

// completeTiles is the number of tiles whose hashes are stored.
func (s *Snapshot) completeTiles() int64 { return s.size / s.t.width }

func (s *Snapshot) hashRange(ctx context.Context, lo, hi int64) (Hash, error) {
	w := s.t.width
	n := hi - lo
	if n >= w && n&(n-1) == 0 && lo%n == 0 {
		level := s.t.height
		for int64(1)<<level < n {
			level++
		}
		return readNode(ctx, s.t.d, s.t.db, level, lo/n)
	}
	if lo/w == (hi-1)/w {
		leaves, err := s.tile(ctx, lo/w)
		if err != nil {
			return Hash{}, err
		}
		off := lo % w
		return RootOf(hashesOf(leaves[off : off+n])), nil
	}
	k := split(n)
	left, err := s.hashRange(ctx, lo, lo+k)
	if err != nil {
		return Hash{}, err
	}
	right, err := s.hashRange(ctx, lo+k, hi)
	if err != nil {
		return Hash{}, err
	}
	return NodeHash(left, right), nil
}

// tile returns the leaves of tile idx: the pending ones, or a complete tile's events read
// again and checked against its stored hash.
func (s *Snapshot) tile(ctx context.Context, idx int64) ([]leafRec, error) {
	if idx == s.completeTiles() {
		return s.pending, nil
	}
	if leaves, ok := s.tiles[idx]; ok {
		return leaves, nil
	}
	if s.src == nil {
		return nil, fmt.Errorf("tile %d: no source to read its events from", idx)
	}
	var after, last int64
	if err := s.t.db.QueryRowContext(ctx, s.t.d.q("SELECT after_position, last_position FROM tiles WHERE idx = ?"), idx).Scan(&after, &last); err != nil {
		return nil, fmt.Errorf("audit tree: tile %d: %w", idx, err)
	}
	want, err := readNode(ctx, s.t.d, s.t.db, s.t.height, idx)
	if err != nil {
		return nil, fmt.Errorf("audit tree: %w", err)
	}
	rows, err := s.src.ReadAfter(ctx, after, int(s.t.width))
	if err != nil {
		return nil, err
	}
	leaves := make([]leafRec, 0, len(rows))
	for i := range rows {
		leaf, err := s.x.rowLeaf(&rows[i])
		if err != nil {
			return nil, err
		}
		leaves = append(leaves, leafRec{position: rows[i].Position, hash: leaf})
	}
	first := s.t.width * idx
	altered := func(what string) error {
		return fmt.Errorf("events %d to %d (positions %d to %d): %s since they were added to the audit tree: %w",
			first, first+s.t.width-1, after+1, last, what, ErrLogAltered)
	}
	switch {
	case int64(len(leaves)) != s.t.width || leaves[len(leaves)-1].position != last:
		return nil, altered("events removed or added")
	case RootOf(hashesOf(leaves)) != want:
		return nil, altered("changed")
	}
	if len(s.tiles) > 16 { // a proof needs two tiles at most; a stream's proofs, a few more
		clear(s.tiles)
	}
	s.tiles[idx] = leaves
	return leaves, nil
}

// Locate returns the leaf index and leaf hash of the event at position, as the tree has it.
func (s *Snapshot) Locate(ctx context.Context, position int64) (int64, Hash, error) {
	if position <= 0 || position > s.lastPosition {
		return 0, Hash{}, fmt.Errorf("position %d: the audit tree ends at position %d: %w", position, s.lastPosition, ErrOutOfRange)
	}
	var (
		idx   int64
		first int64
		base  []leafRec
	)
	err := s.t.db.QueryRowContext(ctx, s.t.d.q("SELECT idx FROM tiles WHERE last_position >= ? ORDER BY last_position LIMIT 1"), position).Scan(&idx)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		base, first = s.pending, s.completeTiles()*s.t.width
	case err != nil:
		return 0, Hash{}, fmt.Errorf("audit tree: %w", err)
	case idx >= s.completeTiles():
		// A tile completed after this snapshot was taken: its leaves are this one's pending.
		base, first = s.pending, s.completeTiles()*s.t.width
	default:
		if base, err = s.tile(ctx, idx); err != nil {
			return 0, Hash{}, err
		}
		first = idx * s.t.width
	}
	j := sort.Search(len(base), func(i int) bool { return base[i].position >= position })
	if j == len(base) || base[j].position != position {
		return 0, Hash{}, fmt.Errorf("no event at position %d in the audit tree: %w", position, ErrLogAltered)
	}
	return first + int64(j), base[j].hash, nil
}

// InclusionPath is the audit path of leaf index in the tree of the first size events.
func (s *Snapshot) InclusionPath(ctx context.Context, index, size int64) ([]Hash, error) {
	if size > s.size {
		return nil, fmt.Errorf("tree size %d: the audit tree has %d events: %w", size, s.size, ErrOutOfRange)
	}
	return inclusionPath(ctx, s, index, size)
}

// ConsistencyPath proves that the tree of the first to events extends the tree of the first
// from events.
func (s *Snapshot) ConsistencyPath(ctx context.Context, from, to int64) ([]Hash, error) {
	if to > s.size {
		return nil, fmt.Errorf("tree size %d: the audit tree has %d events: %w", to, s.size, ErrOutOfRange)
	}
	return consistencyPath(ctx, s, from, to)
}
