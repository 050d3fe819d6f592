// Package lease gives each piece of background work of a deployment (a projection's live
// handler, a process manager, the time-travel snapshot job, and any later scheduler or
// webhook dispatcher) one owner among the servers sharing a PostgreSQL database.
//
// A lease is a row of the leases table: a name, the node holding it, an epoch and an expiry
// in the database's own clock. A node takes a lease that is free or expired, which raises
// its epoch; it renews the expiry by heartbeat while its work runs; a standby node takes it
// over once the expiry has passed (a killed owner stops renewing). Work runs under a context
// that ends when the lease is lost (a renewal found another epoch, or none succeeded for a
// whole TTL), so a node that lost a lease stops its in-flight work within a TTL.
//
// Fencing: a transaction that writes on behalf of a lease calls Lease.Check inside the
// transaction. Check locks the lease row (FOR KEY SHARE) and fails with ErrLost unless it
// still holds the epoch the work started with. A takeover locks that row FOR UPDATE first, so
// it waits for such a transaction to end, and once it has committed every later Check of the
// old owner fails: a node that lost its lease cannot write after the new owner starts. A
// renewal only updates the expiry, which FOR KEY SHARE lets through: a long apply
// transaction never holds up its own heartbeat.
//
// On SQLite one process owns the database, so it owns every lease: Hold runs the work at
// once, and Check has nothing to check.
package lease

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/eventcrm/crm/projections"
)

// Table holds the leases of a deployment, one row per name.
const Table = "leases"

// Defaults of Config.
const (
	DefaultTTL   = 3 * time.Second
	DefaultRenew = time.Second
	DefaultPoll  = 500 * time.Millisecond
)

// ErrLost: the lease was taken over by another node (or could not be renewed for a TTL); the
// work done under it stops, and nothing is written on its behalf any more.
var ErrLost = errors.New("lease lost")

// Config configures a Manager. Zero values take the defaults.
type Config struct {
	// DB holds the leases table (the read-model database).
	DB *projections.DB
	// Node names this process among the servers (default NewNodeID()).
	Node string
	// TTL is how long a lease holds without a renewal: the longest a standby waits after
	// its owner was killed, and the longest a node that can no longer renew keeps working.
	TTL time.Duration
	// Renew is the heartbeat of a held lease (at most TTL/2).
	Renew time.Duration
	// Poll is how often a standby looks whether a lease became free.
	Poll time.Duration
	// Logger receives lease moves (default: none).
	Logger watermill.LoggerAdapter
}

func (c *Config) setDefaults() {
	if c.Node == "" {
		c.Node = NewNodeID()
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.Renew == 0 {
		c.Renew = min(DefaultRenew, c.TTL/3)
	}
	if c.Poll == 0 {
		c.Poll = min(DefaultPoll, c.TTL/2)
	}
	if c.Logger == nil {
		c.Logger = watermill.NopLogger{}
	}
}

// Validate reports every problem of the configuration at once.
func (c Config) Validate() error {
	var errs []error
	if c.DB == nil || c.DB.SQL == nil || c.DB.Dialect == nil {
		errs = append(errs, errors.New("no database"))
	}
	if c.TTL < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("lease ttl %s: want at least 100ms", c.TTL))
	}
	if c.Renew <= 0 || 2*c.Renew > c.TTL {
		errs = append(errs, fmt.Errorf("lease renewal every %s: want more than 0 and at most half the ttl %s", c.Renew, c.TTL))
	}
	if c.Poll <= 0 {
		errs = append(errs, fmt.Errorf("lease poll %s: want more than 0", c.Poll))
	}
	return errors.Join(errs...)
}

// NewNodeID returns a name for this process: its host name, process id and a random part,
// so that a restarted process never holds the leases of its earlier life.
func NewNodeID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "node"
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
}

// Manager takes, renews and releases the leases of one node.
type Manager struct {
	cfg   Config
	db    *projections.DB
	local bool // one process owns the database (SQLite): every lease is ours

	initOnce sync.Once
	initErr  error

	standby standby // the reads of the leases this node waits for
}

// New returns the lease manager of one node.
func New(cfg Config) (*Manager, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("leases: %w", err)
	}
	return &Manager{cfg: cfg, db: cfg.DB, local: cfg.DB.Dialect.Features().SerialWriters}, nil
}

// Node is the name of this node.
func (m *Manager) Node() string { return m.cfg.Node }

// TTL is how long a lease holds without renewal.
func (m *Manager) TTL() time.Duration { return m.cfg.TTL }

// Init creates the leases table; Hold calls it.
func (m *Manager) Init(ctx context.Context) error {
	if m.local {
		return nil
	}
	m.initOnce.Do(func() {
		_, err := m.db.SQL.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+Table+` (
			name        TEXT        PRIMARY KEY,
			node        TEXT        NOT NULL,
			epoch       BIGINT      NOT NULL,
			expires_at  TIMESTAMPTZ NOT NULL,
			acquired_at TIMESTAMPTZ NOT NULL)`)
		if err != nil && !isDuplicateCreate(err) {
			m.initErr = fmt.Errorf("create %s: %w", Table, err)
		}
	})
	return m.initErr
}

// Lease is a lease held by this node: the epoch it was taken with fences its writes.
type Lease struct {
	Name  string
	Node  string
	Epoch int64
	local bool
}

// Check fails with ErrLost unless the lease is still held with its epoch. Call it inside a
// transaction that writes on the lease's behalf: it locks the lease row until tx ends, so a
// takeover waits for tx, and tx cannot commit after a takeover. A nil lease (work that runs
// without one) and a lease of a local database check nothing.
func (l *Lease) Check(ctx context.Context, tx *projections.Tx) error {
	if l == nil || l.local {
		return nil
	}
	var one int
	err := tx.QueryRow(ctx, `SELECT 1 FROM `+Table+` WHERE name = ? AND node = ? AND epoch = ? FOR KEY SHARE`,
		l.Name, l.Node, l.Epoch).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s (epoch %d): %w", l.Name, l.Epoch, ErrLost)
	}
	if err != nil {
		return fmt.Errorf("check lease %s: %w", l.Name, err)
	}
	return nil
}

type leaseKey struct{}

// FromContext returns the lease the work of ctx runs under (nil when none).
func FromContext(ctx context.Context) *Lease {
	l, _ := ctx.Value(leaseKey{}).(*Lease)
	return l
}

// Hold waits until this node holds the lease name (standing by while another node does),
// then runs work under a context that ends when the lease is lost or ctx ends, and carries
// the lease (FromContext). It releases the lease when work returns, so a standby takes over
// at once, and returns work's error, or ErrLost when the lease was lost. It returns
// ctx.Err() when ctx ends while it stands by.
func (m *Manager) Hold(ctx context.Context, name string, work func(ctx context.Context) error) error {
	if err := m.Init(ctx); err != nil {
		return err
	}
	l, err := m.wait(ctx, name)
	if err != nil {
		return err
	}
	m.cfg.Logger.Info("Lease taken", watermill.LogFields{"lease": name, "node": l.Node, "epoch": l.Epoch})
	wctx, cancel := context.WithCancelCause(context.WithValue(ctx, leaseKey{}, l))
	defer cancel(nil)
	beat := make(chan struct{})
	go func() {
		defer close(beat)
		m.heartbeat(wctx, l, cancel)
	}()
	err = work(wctx)
	lost := context.Cause(wctx)
	cancel(nil)
	<-beat
	if errors.Is(lost, ErrLost) {
		m.cfg.Logger.Error("Lease lost, work stopped", lost, watermill.LogFields{"lease": name, "epoch": l.Epoch})
		return lost
	}
	// Released with a context of its own: ctx may have ended, and a standby should not
	// wait a whole TTL for a lease nobody uses.
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), m.cfg.TTL)
	defer rcancel()
	if rerr := m.release(rctx, l); rerr != nil {
		m.cfg.Logger.Error("Lease not released, it expires by itself", rerr, watermill.LogFields{"lease": name})
	}
	return err
}

// wait takes the lease name as soon as it is free: it tries at once, then after each read
// of the table (every Poll, shared by every lease this node waits for) that finds it free.
func (m *Manager) wait(ctx context.Context, name string) (*Lease, error) {
	if m.local {
		return &Lease{Name: name, Node: m.cfg.Node, Epoch: 1, local: true}, nil
	}
	for {
		l, err := m.tryAcquire(ctx, name)
		if err != nil && ctx.Err() == nil {
			m.cfg.Logger.Error("Lease not taken, trying again", err, watermill.LogFields{"lease": name})
		}
		if l != nil {
			return l, nil
		}
		if err := m.awaitFree(ctx, name); err != nil {
			return nil, err
		}
	}
}

// tryAcquire takes the lease name when it is free or expired (nil when another node holds
// it). A cheap read comes first, so standby nodes do not lock the row of a held lease.
func (m *Manager) tryAcquire(ctx context.Context, name string) (*Lease, error) {
	var free bool
	err := m.db.SQL.QueryRowContext(ctx, `SELECT expires_at < clock_timestamp() FROM `+Table+` WHERE name = $1`, name).Scan(&free)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return nil, fmt.Errorf("read lease %s: %w", name, err)
	case !free:
		return nil, nil
	}
	tx, err := m.db.SQL.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("take lease %s: %w", name, err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	// Waits for the old owner's transactions that checked the lease (see Check).
	if err := tx.QueryRowContext(ctx, `SELECT expires_at < clock_timestamp() FROM `+Table+` WHERE name = $1 FOR UPDATE`, name).Scan(&free); err == nil && !free {
		return nil, nil // renewed meanwhile
	} else if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("take lease %s: %w", name, err)
	}
	var epoch int64
	err = tx.QueryRowContext(ctx, `INSERT INTO `+Table+` (name, node, epoch, expires_at, acquired_at)
		VALUES ($1, $2, 1, clock_timestamp() + $3 * interval '1 millisecond', clock_timestamp())
		ON CONFLICT (name) DO UPDATE SET node = excluded.node, epoch = `+Table+`.epoch + 1,
			expires_at = excluded.expires_at, acquired_at = excluded.acquired_at
		WHERE `+Table+`.expires_at < clock_timestamp()
		RETURNING epoch`, name, m.cfg.Node, m.cfg.TTL.Milliseconds()).Scan(&epoch)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil // taken by another node meanwhile
	}
	if err != nil {
		return nil, fmt.Errorf("take lease %s: %w", name, err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("take lease %s: %w", name, err)
	}
	return &Lease{Name: name, Node: m.cfg.Node, Epoch: epoch}, nil
}

// heartbeat renews l until ctx ends; it ends the work (lost) when another node took the
// lease, or when no renewal succeeded for a TTL: by then another node may have taken it.
func (m *Manager) heartbeat(ctx context.Context, l *Lease, lost context.CancelCauseFunc) {
	if l.local {
		return
	}
	// The expiry the database set is at least TTL after this moment.
	deadline := time.Now().Add(m.cfg.TTL)
	projections.Every(ctx, m.cfg.Renew, func() bool {
		start := time.Now()
		held, err := m.renew(ctx, l)
		switch {
		case ctx.Err() != nil:
			return false
		case err == nil && !held:
			lost(fmt.Errorf("%s (epoch %d) taken by another node: %w", l.Name, l.Epoch, ErrLost))
			return false
		case err == nil:
			deadline = start.Add(m.cfg.TTL)
		case time.Now().After(deadline.Add(-m.cfg.Renew)):
			lost(fmt.Errorf("%s (epoch %d) not renewed for %s (%v): %w", l.Name, l.Epoch, m.cfg.TTL, err, ErrLost))
			return false
		default:
			m.cfg.Logger.Error("Lease not renewed, trying again", err, watermill.LogFields{"lease": l.Name})
		}
		return true
	})
}

// renew moves the expiry of l a TTL ahead; held is false when another node took it.
func (m *Manager) renew(ctx context.Context, l *Lease) (held bool, err error) {
	rctx, cancel := context.WithTimeout(ctx, m.cfg.Renew)
	defer cancel()
	res, err := m.db.SQL.ExecContext(rctx, `UPDATE `+Table+` SET expires_at = now() + $4 * interval '1 millisecond'
		WHERE name = $1 AND node = $2 AND epoch = $3`, l.Name, l.Node, l.Epoch, m.cfg.TTL.Milliseconds())
	if err != nil {
		return false, fmt.Errorf("renew lease %s: %w", l.Name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("renew lease %s: %w", l.Name, err)
	}
	return n == 1, nil
}

// release lets a standby take l at once.
func (m *Manager) release(ctx context.Context, l *Lease) error {
	if l.local {
		return nil
	}
	_, err := m.db.SQL.ExecContext(ctx, `UPDATE `+Table+` SET expires_at = now() - interval '1 millisecond'
		WHERE name = $1 AND node = $2 AND epoch = $3`, l.Name, l.Node, l.Epoch)
	if err != nil {
		return fmt.Errorf("release lease %s: %w", l.Name, err)
	}
	return nil
}

// Holder is a lease as the leases table shows it.
type Holder struct {
	Name      string    `json:"name"`
	Node      string    `json:"node"`
	Epoch     int64     `json:"epoch"`
	ExpiresAt time.Time `json:"expires_at"`
	Expired   bool      `json:"expired"`
}

// Holders lists every lease of the deployment by name (none on a local database).
func (m *Manager) Holders(ctx context.Context) ([]Holder, error) {
	if m.local {
		return []Holder{}, nil
	}
	if err := m.Init(ctx); err != nil {
		return nil, err
	}
	rows, err := m.db.SQL.QueryContext(ctx, `SELECT name, node, epoch, expires_at, expires_at < now() FROM `+Table+` ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list leases: %w", err)
	}
	defer rows.Close()
	list := []Holder{}
	for rows.Next() {
		var h Holder
		if err := rows.Scan(&h.Name, &h.Node, &h.Epoch, &h.ExpiresAt, &h.Expired); err != nil {
			return nil, fmt.Errorf("list leases: %w", err)
		}
		list = append(list, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list leases: %w", err)
	}
	return list, nil
}

// isDuplicateCreate tells the error of two nodes creating the table at the same moment
// (CREATE TABLE IF NOT EXISTS races on PostgreSQL's catalog): the table exists.
func isDuplicateCreate(err error) bool {
	s := err.Error()
	return strings.Contains(s, "duplicate key value violates unique constraint") || strings.Contains(s, "already exists")
}
