package timetravel

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Purge drops every snapshot and every temporary set, so that nothing built before an
// erasure answers a question again; the snapshots are taken again from the log by the next
// Snapshot. A temporary set being read is waited for (at most a minute), then dropped.
func (tt *TimeTravel) Purge(ctx context.Context) error {
	tt.snapMu.Lock() // no snapshot is being taken meanwhile
	defer tt.snapMu.Unlock()
	tt.buildMu.Lock() // nor a temporary set built
	defer tt.buildMu.Unlock()
	deadline := time.Now().Add(time.Minute)
	var sets []*travelSet
	for {
		tt.mu.Lock()
		busy := false
		for k, s := range tt.cache {
			if s.refs > 0 {
				busy = true
				continue
			}
			delete(tt.cache, k)
			sets = append(sets, s)
		}
		tt.mu.Unlock()
		if !busy || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	tt.drops.Wait()
	errs := []error{tt.dropAll(ctx, sets)}
	if tt.usesFiles() {
		errs = append(errs, tt.removeFiles())
	} else {
		snaps, err := tt.listed(ctx, kindSnapshot)
		errs = append(errs, err)
		for _, s := range snaps {
			errs = append(errs, tt.drop(ctx, s.p, s.t))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("time travel: purge: %w", err)
	}
	return nil
}

// removeFiles removes every snapshot and temporary file of the directory.
func (tt *TimeTravel) removeFiles() error {
	entries, err := os.ReadDir(tt.cfg.Dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		base := e.Name()
		for _, suffix := range []string{"-wal", "-shm", "-journal", ".part"} {
			base = strings.TrimSuffix(base, suffix)
		}
		if travelFileName.MatchString(base) || base != e.Name() {
			if err := os.Remove(filepath.Join(tt.cfg.Dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
