package timetravel

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
)

// Snapshots are thinned to a space budget: Space times the log's size on disk (Config.Space).
// A snapshot holds a whole read model at its position, so snapshots every Every positions
// would take, over a long log, many times the log itself (about half the latest read model's
// size times their number). Past the budget, the snapshot whose removal leaves the smallest
// gap between its neighbours goes first, so those left stay spread evenly over the log and a
// question replays at most the widest gap; the newest snapshot of each read model always
// stays, since the next ones are built from it.

// sizedSet is a snapshot with the bytes it takes.
type sizedSet struct {
	listedSet
	bytes int64
}

// thinned returns the snapshots to drop so that the others take at most budget bytes: one
// at a time, the snapshot (other than the newest of its read model) whose neighbours are
// closest together, the older one of a tie. It may keep more than budget when only the
// newest snapshots are left.
func thinned(sets []sizedSet, budget int64) []sizedSet {
	byProjection := map[string][]sizedSet{}
	var total int64
	for _, s := range sets {
		byProjection[s.p.Name()] = append(byProjection[s.p.Name()], s)
		total += s.bytes
	}
	for _, list := range byProjection {
		slices.SortFunc(list, func(a, b sizedSet) int { return cmp.Compare(a.position, b.position) })
	}
	var dropped []sizedSet
	for total > budget {
		best, bestAt, bestGap := "", -1, int64(0)
		for _, name := range slices.Sorted(maps.Keys(byProjection)) {
			list := byProjection[name]
			for i := 0; i < len(list)-1; i++ { // never the newest
				prev := int64(0)
				if i > 0 {
					prev = list[i-1].position
				}
				gap := list[i+1].position - prev
				if bestAt < 0 || gap < bestGap || (gap == bestGap && list[i].position < byProjection[best][bestAt].position) {
					best, bestAt, bestGap = name, i, gap
				}
			}
		}
		if bestAt < 0 {
			break
		}
		list := byProjection[best]
		dropped = append(dropped, list[bestAt])
		total -= list[bestAt].bytes
		byProjection[best] = slices.Delete(list, bestAt, bestAt+1)
	}
	return dropped
}

// thin drops snapshots until they take at most Space times the log's size. It holds buildMu
// while it drops: a question of this process never starts from a snapshot being dropped
// (one of another server retries from the next one; see At).
func (tt *TimeTravel) thin(ctx context.Context) error {
	if tt.cfg.Space <= 0 {
		return nil
	}
	sizer, ok := eventstore.DiskSizerOf(tt.cfg.Store)
	if !ok {
		return nil
	}
	logSize, err := sizer.DiskSize(ctx)
	if err != nil {
		return fmt.Errorf("thin snapshots: %w", err)
	}
	sets, err := tt.sizedSnapshots(ctx)
	if err != nil {
		return fmt.Errorf("thin snapshots: %w", err)
	}
	drop := thinned(sets, int64(tt.cfg.Space*float64(logSize)))
	if len(drop) == 0 {
		return nil
	}
	tt.buildMu.Lock()
	defer tt.buildMu.Unlock()
	for _, s := range drop {
		if err := tt.dropSnapshot(ctx, s.listedSet); err != nil {
			return fmt.Errorf("thin snapshots: %w", err)
		}
	}
	return nil
}

// sizedSnapshots lists the complete snapshots with their sizes.
func (tt *TimeTravel) sizedSnapshots(ctx context.Context) ([]sizedSet, error) {
	if tt.usesFiles() {
		var sets []sizedSet
		for _, name := range slices.Sorted(maps.Keys(tt.byName)) {
			p := tt.byName[name]
			files, err := tt.snapshotFiles(p)
			if err != nil {
				return nil, err
			}
			for _, f := range files {
				fi, err := os.Stat(f.path)
				if err != nil {
					return nil, err
				}
				sets = append(sets, sizedSet{listedSet: f, bytes: fi.Size()})
			}
		}
		return sets, nil
	}
	listed, err := tt.listed(ctx, kindSnapshot)
	if err != nil {
		return nil, err
	}
	db := tt.cfg.DB
	var sets []sizedSet
	for _, s := range listed {
		if s.position < 0 { // being built, or unlisted by a drop that failed: dropped if ours
			mine, err := tt.ownedHere(ctx, s.t)
			if err != nil {
				return nil, err
			}
			if mine {
				if err := tt.drop(ctx, s.p, s.t); err != nil {
					return nil, err
				}
			}
			continue
		}
		var size int64
		if err := db.SQL.QueryRowContext(ctx, `SELECT coalesce(sum(pg_total_relation_size(to_regclass(t))), 0)::bigint
			FROM unnest($1::text[]) AS t`, projections.SetTables(db.Dialect, s.p, s.t)).Scan(&size); err != nil {
			return nil, fmt.Errorf("size of %s: %w", s.t.Prefix(), err)
		}
		sets = append(sets, sizedSet{listedSet: s, bytes: size})
	}
	return sets, nil
}

// snapshotFiles lists the complete snapshot files of p, by position.
func (tt *TimeTravel) snapshotFiles(p projections.Projection) ([]listedSet, error) {
	entries, err := os.ReadDir(tt.cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("snapshots of %s: %w", p.Name(), err)
	}
	var sets []listedSet
	for _, e := range entries {
		m := travelFileName.FindStringSubmatch(e.Name())
		if m == nil || m[1] != p.Name() || m[2] != strconv.Itoa(p.Version()) || m[3] != "s" {
			continue
		}
		at, err := strconv.ParseInt(m[4], 10, 64)
		if err != nil {
			continue
		}
		sets = append(sets, listedSet{p: p, t: projections.TablesFor(p, ""), position: at, path: filepath.Join(tt.cfg.Dir, e.Name())})
	}
	slices.SortFunc(sets, func(a, b listedSet) int { return cmp.Compare(a.position, b.position) })
	return sets, nil
}

// dropSnapshot removes a snapshot: its file, or its listing first (so no question starts
// from it any more) and then its tables.
func (tt *TimeTravel) dropSnapshot(ctx context.Context, s listedSet) error {
	if tt.usesFiles() {
		if err := os.Remove(s.path); err != nil && !os.IsNotExist(err) {
			return err
		}
		return nil
	}
	db := tt.cfg.DB
	if _, err := db.SQL.ExecContext(ctx, db.Dialect.Rebind(`UPDATE `+snapshotsTable+` SET position = -1 WHERE table_set = ?`), s.t.Prefix()); err != nil {
		return fmt.Errorf("unlist %s: %w", s.t.Prefix(), err)
	}
	return tt.drop(ctx, s.p, s.t)
}

// SpaceUsed is the disk the snapshots take beside the log's.
type SpaceUsed struct {
	Snapshots     int   // how many are kept
	SnapshotBytes int64 // what they take together
	LogBytes      int64 // what the log takes (0 when the store cannot tell)
}

// Space returns the disk the snapshots take, and the log's.
func (tt *TimeTravel) Space(ctx context.Context) (SpaceUsed, error) {
	sets, err := tt.sizedSnapshots(ctx)
	if err != nil {
		return SpaceUsed{}, fmt.Errorf("space of the snapshots: %w", err)
	}
	used := SpaceUsed{Snapshots: len(sets)}
	for _, s := range sets {
		used.SnapshotBytes += s.bytes
	}
	if sizer, ok := eventstore.DiskSizerOf(tt.cfg.Store); ok {
		if used.LogBytes, err = sizer.DiskSize(ctx); err != nil {
			return SpaceUsed{}, fmt.Errorf("space of the snapshots: %w", err)
		}
	}
	return used, nil
}
