package lease

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
)

// standby reads the leases table once per Poll for every lease this node waits for, and
// wakes the waiters after each read: a server standing by for twenty leases (one per
// projection, the processes, reminders, webhooks, snapshots) reads the table once a poll,
// not twenty times.
type standby struct {
	mu      sync.Mutex
	waiters int
	running bool
	round   chan struct{}   // closed when the read of this round is in
	held    map[string]bool // the leases a node holds (not expired), as last read
	err     error
}

// awaitFree returns once the last read of the table finds the lease name free (no row, or
// expired), or with ctx.Err().
func (m *Manager) awaitFree(ctx context.Context, name string) error {
	sb := &m.standby
	sb.mu.Lock()
	sb.waiters++
	if sb.round == nil {
		sb.round = make(chan struct{})
	}
	if !sb.running {
		sb.running = true
		go m.pollLeases()
	}
	sb.mu.Unlock()
	defer func() {
		sb.mu.Lock()
		sb.waiters--
		sb.mu.Unlock()
	}()
	for {
		sb.mu.Lock()
		round := sb.round
		sb.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-round:
		}
		sb.mu.Lock()
		held, err := sb.held[name], sb.err
		sb.mu.Unlock()
		if err != nil {
			m.cfg.Logger.Error("Leases not read, trying again", err, watermill.LogFields{"lease": name})
			continue
		}
		if !held {
			return nil
		}
	}
}

// pollLeases reads which leases are held every Poll while this node waits for one.
func (m *Manager) pollLeases() {
	sb := &m.standby
	for {
		time.Sleep(m.cfg.Poll)
		sb.mu.Lock()
		if sb.waiters == 0 {
			sb.running = false
			sb.mu.Unlock()
			return
		}
		sb.mu.Unlock()
		held, err := m.readHeld()
		sb.mu.Lock()
		sb.held, sb.err = held, err
		close(sb.round)
		sb.round = make(chan struct{})
		sb.mu.Unlock()
	}
}

// readHeld returns the names of the leases a node holds now (in the database's clock).
func (m *Manager) readHeld() (map[string]bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.TTL)
	defer cancel()
	rows, err := m.db.SQL.QueryContext(ctx, `SELECT name FROM `+Table+` WHERE expires_at >= clock_timestamp()`)
	if err != nil {
		return nil, fmt.Errorf("read leases: %w", err)
	}
	defer rows.Close()
	held := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("read leases: %w", err)
		}
		held[name] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read leases: %w", err)
	}
	return held, nil
}
