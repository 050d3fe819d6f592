package diff

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
)

// Defaults of Config.
const (
	DefaultSample = 5
)

// Config configures Run.
type Config struct {
	DB    *projections.DB
	Store eventstore.Store
	// Batch is how many events one read and one transaction take (default
	// DefaultRebuildBatch).
	Batch int
	// Sample is how many rows of each kind (added, removed, changed) a table reports
	// (default DefaultSample).
	Sample int
	// Progress, when set, is called after every batch with the candidate's position and the
	// position it builds to.
	Progress func(position, target int64)
}

// Run builds candidate (the projection's code as it is now, possibly changed) from the log
// into a temporary set beside the served one, up to the served set's checkpoint, and
// compares the two, table by table and row by row (rows matched by primary key): what a
// switch to this code would change. The temporary set is dropped afterwards; the served
// set is only read, from one snapshot, so a live runner may go on meanwhile.
func Run(ctx context.Context, cfg Config, candidate projections.Projection, served projections.ServedSet) (SetDiff, error) {
	if cfg.DB == nil || cfg.Store == nil {
		return SetDiff{}, errors.New("diff: no read-model database or no event store")
	}
	if cfg.Batch <= 0 {
		cfg.Batch = projections.DefaultRebuildBatch
	}
	if cfg.Sample <= 0 {
		cfg.Sample = DefaultSample
	}
	db := cfg.DB
	if err := db.EnsureRegistry(ctx); err != nil {
		return SetDiff{}, err
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	gen := "x" + hex.EncodeToString(suffix)
	tg := projections.NewTarget(candidate, projections.TablesFor(candidate, gen))
	tg.Generation = gen
	b := &projections.Builder{DB: db, Store: cfg.Store, Batch: cfg.Batch, Now: time.Now, Targets: []*projections.Target{tg}, Lax: true}
	if err := b.Open(ctx); err != nil {
		return SetDiff{}, err
	}
	defer b.Close()
	defer func() {
		// The temporary set goes whatever happened (its checkpoint row and parked rows too).
		_ = db.DropSet(context.WithoutCancel(ctx), candidate, tg.Tables, true)
	}()
	if _, err := b.CreateSet(ctx, tg, false); err != nil {
		return SetDiff{}, err
	}
	if err := b.Load(ctx, tg); err != nil {
		return SetDiff{}, err
	}
	var goal int64
	if cfg.Progress != nil {
		b.OnBatch = func(int, int64) error {
			cfg.Progress(tg.Checkpoint, goal)
			return nil
		}
	}
	for attempt := 0; ; attempt++ {
		if attempt == 100 {
			return SetDiff{}, errors.New("diff: the served set kept moving ahead; try again")
		}
		cp, err := db.Checkpoint(ctx, served.Tables)
		if err != nil {
			return SetDiff{}, err
		}
		goal = cp
		if tg.Checkpoint < cp {
			if err := b.Run(ctx, cp); err != nil {
				return SetDiff{}, fmt.Errorf("diff: build %s: %w", tg.Tables.Prefix(), err)
			}
		}
		d, done, err := compareAt(ctx, db, candidate, tg, served, cfg.Sample)
		if err != nil || done {
			return d, err
		}
	}
}

// compareAt compares in one snapshot of the database if the served set's checkpoint there
// is the candidate's; done is false when the served set has moved on (build further).
func compareAt(ctx context.Context, db *projections.DB, candidate projections.Projection, tg *projections.Target, served projections.ServedSet, sample int) (SetDiff, bool, error) {
	// A read-only snapshot: writers go on meanwhile.
	snap, err := db.SQL.BeginTx(ctx, db.Dialect.ReadSnapshot())
	if err != nil {
		return SetDiff{}, false, fmt.Errorf("diff: snapshot: %w", err)
	}
	defer snap.Rollback() //nolint:errcheck // read only
	var cp int64
	err = snap.QueryRowContext(ctx, db.Dialect.Rebind(`SELECT position FROM `+projections.CheckpointsTable+` WHERE set_name = ?`), served.Tables.Prefix()).Scan(&cp)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return SetDiff{}, false, fmt.Errorf("diff: checkpoint of %s: %w", served.TableSet, err)
	}
	if cp > tg.Checkpoint {
		return SetDiff{}, false, nil
	}
	if cp < tg.Checkpoint {
		return SetDiff{}, false, fmt.Errorf("diff: the served set %s went back from %d to %d (switched meanwhile?)", served.TableSet, tg.Checkpoint, cp)
	}
	servedNames, err := db.SetTablesInCatalog(ctx, snap, served.Tables.Prefix(), tg.Tables.Prefix())
	if err != nil {
		return SetDiff{}, false, err
	}
	// The candidate set is written by nobody else: it is read outside the snapshot.
	d, err := compareSets(ctx, db, snap, db.SQL, servedNames, served.Tables, projections.SetTables(db.Dialect, candidate, tg.Tables), tg.Tables, sample)
	if err != nil {
		return SetDiff{}, false, err
	}
	d.Position = cp
	return d, true, nil
}

// CompareSets compares two table sets of a database as they are now (the served one first):
// the sets of a projection before and after a rebuild, or live and rebuilt.
func CompareSets(ctx context.Context, db *projections.DB, served projections.Tables, candidate projections.Projection, cand projections.Tables, sample int) (SetDiff, error) {
	if sample <= 0 {
		sample = DefaultSample
	}
	servedNames, err := db.SetTablesInCatalog(ctx, db.SQL, served.Prefix(), cand.Prefix())
	if err != nil {
		return SetDiff{}, err
	}
	return compareSets(ctx, db, db.SQL, db.SQL, servedNames, served, projections.SetTables(db.Dialect, candidate, cand), cand, sample)
}

func compareSets(ctx context.Context, db *projections.DB, qs, qc queryer, servedNames []string, served projections.Tables, candNames []string, cand projections.Tables, sample int) (SetDiff, error) {
	d := SetDiff{Served: served.Prefix(), Candidate: cand.Prefix()}
	shapes := func(q queryer, names []string, t projections.Tables) (map[string]*tableShape, error) {
		m := map[string]*tableShape{}
		for _, name := range names {
			s, ok, err := shapeOf(ctx, db, q, name)
			if err != nil {
				return nil, err
			}
			if ok {
				m[strings.TrimPrefix(name, t.Prefix())] = &s
			}
		}
		return m, nil
	}
	sa, err := shapes(qs, servedNames, served)
	if err != nil {
		return d, err
	}
	sb, err := shapes(qc, candNames, cand)
	if err != nil {
		return d, err
	}
	var bases []string
	for base := range sa {
		bases = append(bases, base)
	}
	for base := range sb {
		if sa[base] == nil {
			bases = append(bases, base)
		}
	}
	slices.Sort(bases)
	for _, base := range bases {
		td, err := compareTables(ctx, db, qs, qc, base, sa[base], sb[base], sample)
		if err != nil {
			return d, err
		}
		d.Tables = append(d.Tables, td)
	}
	return d, nil
}
