package timetravel

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/eventcrm/crm/projections"
	"github.com/klauspost/compress/zstd"
)

// On SQLite, time travel keeps each snapshot and each temporary set in a database file of
// its own, in TimeTravelConfig.Dir, indexes included. A question copies the nearest
// snapshot's file (the kernel copies it, page for page) and applies the events after it:
// a copy of tables inside the read-model file would insert every row again and build every
// index again, and would hold the file's only write lock, which the live projections wait
// for, all that time. In each file the set's tables have the names of the projection's
// default set.
//
// A snapshot is kept compressed (Zstandard, "<name>.db.zst"): a read model's file shrinks to
// about a third, and a question decompresses it into its temporary file instead of copying it.
// It is built as "<file>.raw.part", compressed into "<file>.part" and renamed into place once
// complete and on disk, so a listed file is always whole; Init removes what a stopped process
// left: parts and temporary sets. Snapshots of earlier releases, plain "<name>.db" files, are
// read as they are.

// travelConns is the size of the connection pool of a temporary set's file.
const travelConns = 4

// travelFileName parses the name of a time-travel file: projection, version, kind (s: a
// snapshot at a position, t: a temporary set with a random name) and, for a snapshot, its
// position.
var travelFileName = regexp.MustCompile(`^(.+)_v(\d+)_([st])([0-9a-f]+)\.db(\.zst)?$`)

// usesFiles tells whether time travel keeps its sets in files (SQLite) rather than tables.
func (tt *TimeTravel) usesFiles() bool { return tt.cfg.Dir != "" }

// snapshotPath is the file of p's snapshot at position.
func (tt *TimeTravel) snapshotPath(p projections.Projection, position int64) string {
	return filepath.Join(tt.cfg.Dir, fmt.Sprintf("%s_v%d_s%d.db.zst", p.Name(), p.Version(), position))
}

// initFiles creates the directory of the files and removes what a stopped process left:
// unfinished snapshots, temporary sets, and the snapshots of other versions of the
// projections time travel serves. It also drops the snapshot tables an earlier release
// kept in the read-model database.
func (tt *TimeTravel) initFiles(ctx context.Context) error {
	if err := os.MkdirAll(tt.cfg.Dir, 0o700); err != nil {
		return fmt.Errorf("time travel: %w", err)
	}
	entries, err := os.ReadDir(tt.cfg.Dir)
	if err != nil {
		return fmt.Errorf("time travel: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		stale := strings.HasSuffix(name, ".part") || strings.HasSuffix(name, "-journal")
		if m := travelFileName.FindStringSubmatch(name); m != nil {
			p := tt.byName[m[1]]
			stale = m[3] == "t" || (p != nil && m[2] != strconv.Itoa(p.Version()))
		}
		if !stale {
			continue
		}
		if err := os.Remove(filepath.Join(tt.cfg.Dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("time travel: %w", err)
		}
	}
	return tt.dropTableSets(ctx)
}

// dropTableSets drops the snapshots and temporary sets kept as tables of the read-model
// database, of any version, and their list.
func (tt *TimeTravel) dropTableSets(ctx context.Context) error {
	db := tt.cfg.DB
	rows, err := db.SQL.QueryContext(ctx, `SELECT table_set, projection, version FROM `+snapshotsTable)
	if err != nil {
		if projections.IsNoSuchTable(err) {
			return nil
		}
		return fmt.Errorf("time travel: list snapshot tables: %w", err)
	}
	type set struct {
		p           projections.Projection
		t           projections.Tables
		sameVersion bool
	}
	var (
		sets    []set
		unknown int
	)
	for rows.Next() {
		var (
			prefix, name string
			version      int
		)
		if err := rows.Scan(&prefix, &name, &version); err != nil {
			rows.Close()
			return fmt.Errorf("time travel: list snapshot tables: %w", err)
		}
		if p := tt.byName[name]; p != nil {
			sets = append(sets, set{p: p, t: projections.TablesWithPrefix(prefix), sameVersion: version == p.Version()})
		} else {
			unknown++ // a projection this build does not know: its tables stay listed
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("time travel: list snapshot tables: %w", err)
	}
	for _, s := range sets {
		if err := db.DropSet(ctx, s.p, s.t, s.sameVersion); err != nil {
			return err
		}
		if _, err := db.SQL.ExecContext(ctx, db.Dialect.Rebind(`DELETE FROM `+snapshotsTable+` WHERE table_set = ?`), s.t.Prefix()); err != nil {
			return fmt.Errorf("time travel: unlist %s: %w", s.t.Prefix(), err)
		}
	}
	if unknown == 0 {
		if _, err := db.SQL.ExecContext(ctx, `DROP TABLE `+snapshotsTable); err != nil {
			return fmt.Errorf("time travel: drop the snapshot list: %w", err)
		}
	}
	return nil
}

// nearestFile returns the snapshot file of p with the highest position at or below position.
func (tt *TimeTravel) nearestFile(p projections.Projection, position int64) (listedSet, bool, error) {
	sets, err := tt.snapshotFiles(p)
	if err != nil {
		return listedSet{}, false, fmt.Errorf("snapshot of %s at %d: %w", p.Name(), position, err)
	}
	best := listedSet{position: -1}
	for _, s := range sets {
		if s.position <= position {
			best = s
		}
	}
	return best, best.position >= 0, nil
}

// snapshotFile builds p's snapshot file at position until from base (when hasBase).
func (tt *TimeTravel) snapshotFile(ctx context.Context, p projections.Projection, base listedSet, hasBase bool, until int64) error {
	path := tt.snapshotPath(p, until)
	raw, part := path+".raw.part", path+".part"
	for _, name := range []string{raw, part} {
		if err := os.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) { // a stopped build's
			return fmt.Errorf("time travel: %w", err)
		}
	}
	db, err := tt.buildFile(ctx, p, raw, base, hasBase, until)
	if err != nil {
		return err
	}
	// Closed, the file holds everything (no journal is left beside it).
	if err := db.SQL.Close(); err != nil {
		_ = os.Remove(raw)
		return fmt.Errorf("close %s: %w", raw, err)
	}
	_ = os.Remove(raw + "-journal") // emptied by the commit
	err = compressFile(raw, part)
	_ = os.Remove(raw)
	if err != nil {
		return fmt.Errorf("compress snapshot %s: %w", path, err)
	}
	// Synced, it survives a power cut before it is listed by its name.
	if err := syncFile(part); err != nil {
		_ = os.Remove(part)
		return err
	}
	if err := os.Rename(part, path); err != nil {
		_ = os.Remove(part)
		return fmt.Errorf("snapshot %s: %w", path, err)
	}
	return syncFile(tt.cfg.Dir)
}

// tempFile builds a temporary set of p at position until from base (when hasBase) and
// returns its database, open for queries.
func (tt *TimeTravel) tempFile(ctx context.Context, p projections.Projection, base listedSet, hasBase bool, until int64) (*projections.DB, error) {
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	path := filepath.Join(tt.cfg.Dir, fmt.Sprintf("%s_v%d_t%s.db", p.Name(), p.Version(), hex.EncodeToString(suffix)))
	db, err := tt.buildFile(ctx, p, path, base, hasBase, until)
	if err != nil {
		return nil, err
	}
	return db.AsFrozen(), nil // from here on, only read
}

// buildFile makes the file at path hold p as it stood at position until: a copy of base's
// file (when hasBase), then the events after it up to until, applied as a rebuild applies
// them, in one transaction. Nothing needs to survive a crash (a stopped process's files are
// removed at the next start), so the file never waits for the disk. Its rollback journal is
// a file (SQLite's in-memory journal allocates and frees each page: a fifth slower here).
func (tt *TimeTravel) buildFile(ctx context.Context, p projections.Projection, path string, base listedSet, hasBase bool, until int64) (_ *projections.DB, err error) {
	if hasBase {
		copyBase := copyFile
		if strings.HasSuffix(base.path, ".zst") {
			copyBase = decompressFile
		}
		if err := copyBase(base.path, path); err != nil {
			return nil, fmt.Errorf("copy snapshot %s: %w", base.path, err)
		}
	} else if err := createFile(path); err != nil {
		return nil, fmt.Errorf("time travel: %w", err)
	}
	db, err := projections.OpenSQLiteScratch(ctx, path, travelConns)
	if err != nil {
		_ = os.Remove(path)
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = dropFile(db)
		}
	}()
	tg := projections.NewTarget(p, projections.TablesFor(p, ""))
	b := &projections.Builder{DB: db, Store: tt.cfg.Store, Batch: tt.cfg.Batch, Now: time.Now, Targets: []*projections.Target{tg}, Lax: true,
		CommitEvery: time.Hour}
	if err := b.Open(ctx); err != nil {
		return nil, err
	}
	defer b.Close()
	idx, err := b.CreateSet(ctx, tg, false)
	if err != nil {
		return nil, err
	}
	// A copied snapshot has its indexes; a new file gets them while its tables are empty.
	if err := b.Finish(ctx, tg, idx, false); err != nil {
		return nil, err
	}
	if err := b.Load(ctx, tg); err != nil {
		return nil, err
	}
	if until > tg.Checkpoint {
		if err := b.Run(ctx, until); err != nil {
			return nil, fmt.Errorf("apply the log up to %d: %w", until, err)
		}
	}
	return db, nil
}

// dropFile closes a temporary set's database and removes its file.
func dropFile(db *projections.DB) error {
	var errs []error
	if err := db.SQL.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close %s: %w", db.Path, err))
	}
	for _, name := range []string{db.Path, db.Path + "-journal"} {
		if err := os.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("time travel: %w", err))
		}
	}
	return errors.Join(errs...)
}

// createFile creates an empty file at path, which must not exist: a file of another set is
// never overwritten.
func createFile(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	return f.Close()
}

// copyFile copies the file src to dst, which must not exist; on Linux the kernel copies it
// (copy_file_range), without going through this process.
func copyFile(src, dst string) error {
	return transform(src, dst, func(out *os.File, in io.Reader) error {
		_, err := io.Copy(out, in)
		return err
	})
}

// compressFile writes src compressed (Zstandard) into dst, which must not exist.
func compressFile(src, dst string) error {
	return transform(src, dst, func(out *os.File, in io.Reader) error {
		// The fastest level: a snapshot of a large read model compresses at several hundred
		// MB/s, to about a third (SQLite pages of text and integers, indexes included).
		zw, err := zstd.NewWriter(out, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
		if err != nil {
			return err
		}
		if _, err := io.Copy(zw, in); err != nil {
			_ = zw.Close()
			return err
		}
		return zw.Close()
	})
}

// decompressFile writes the Zstandard file src decompressed into dst, which must not exist.
func decompressFile(src, dst string) error {
	return transform(src, dst, func(out *os.File, in io.Reader) error {
		zr, err := zstd.NewReader(in, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return err
		}
		defer zr.Close()
		_, err = io.Copy(out, zr)
		return err
	})
}

// transform writes into the new file dst what write makes of the file src; dst is removed
// when anything fails.
func transform(src, dst string, write func(out *os.File, in io.Reader) error) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			_ = os.Remove(dst)
		}
	}()
	return write(out, in)
}

// syncFile flushes a file or a directory to the disk.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}
