package config

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/runtime"
	"github.com/eventcrm/crm/projections/timetravel"
)

// ReadModelFile is the SQLite file of the read models in the data directory.
const ReadModelFile = "readmodels.db"

// ReadModelTarget is where the read models live.
type ReadModelTarget struct {
	Dialect projections.Dialect
	// Path is the SQLite file; URL and Schema the PostgreSQL database and schema.
	Path   string
	URL    string
	Schema string
}

// ParseReadModels decides where the read models live. CRM_READMODEL_URL (sqlite://PATH or
// postgres://...) wins; otherwise a PostgreSQL store keeps them in its own database (schema
// "readmodels", tables prefixed by projection name), and every other store in the SQLite
// file readmodels.db of the data directory, apart from the log.
func ParseReadModels(c Config) (ReadModelTarget, error) {
	if c.ReadModelURL != "" {
		scheme, rest, _ := strings.Cut(c.ReadModelURL, "://")
		switch scheme {
		case "sqlite":
			if rest == "" {
				return ReadModelTarget{}, fmt.Errorf("CRM_READMODEL_URL %q: sqlite:// needs a file path", c.ReadModelURL)
			}
			return ReadModelTarget{Dialect: projections.SQLite, Path: rest}, nil
		case "postgres", "postgresql":
			if _, err := projections.PostgresPoolSize(c.ReadModelURL); err != nil {
				return ReadModelTarget{}, fmt.Errorf("CRM_READMODEL_URL: %w", err)
			}
			return ReadModelTarget{Dialect: projections.Postgres, URL: c.ReadModelURL, Schema: projections.DefaultPostgresSchema}, nil
		default:
			return ReadModelTarget{}, fmt.Errorf("CRM_READMODEL_URL %q: want sqlite://PATH or postgres://USER@HOST/DB", c.ReadModelURL)
		}
	}
	store, err := ParseStore(c.Store, c.DataDir)
	if err != nil {
		return ReadModelTarget{}, err
	}
	if store.Backend == BackendPostgres {
		if _, err := projections.PostgresPoolSize(store.URL); err != nil {
			return ReadModelTarget{}, fmt.Errorf("CRM_STORE: %w", err)
		}
		schema := projections.DefaultPostgresSchema
		if store.Schema != "" {
			schema = store.Schema + "_" + projections.DefaultPostgresSchema
		}
		return ReadModelTarget{Dialect: projections.Postgres, URL: store.URL, Schema: schema}, nil
	}
	if store.Backend == BackendESDB {
		return ReadModelTarget{}, fmt.Errorf("CRM_READMODEL_URL must name a PostgreSQL database when the store is EventStoreDB")
	}
	return ReadModelTarget{Dialect: projections.SQLite, Path: filepath.Join(c.DataDir, ReadModelFile)}, nil
}

// OpenReadModels opens the configured read-model database; the caller closes its SQL.
func OpenReadModels(ctx context.Context, c Config) (*projections.DB, error) {
	t, err := ParseReadModels(c)
	if err != nil {
		return nil, err
	}
	if t.URL != "" {
		return projections.OpenPostgres(ctx, t.URL, t.Schema)
	}
	if err := os.MkdirAll(filepath.Dir(t.Path), 0o700); err != nil {
		return nil, fmt.Errorf("create directory of %s: %w", t.Path, err)
	}
	return projections.OpenSQLite(ctx, t.Path)
}

// MaxReadWait is the longest CRM_READMODEL_WAIT accepted; the HTTP server's write timeout
// grows with the wait (httpapi.Timeouts.ForReadWait), so even this wait gets its answer.
const MaxReadWait = time.Minute

// ReadWait is how long a read-model answer waits for a client's min_position
// (CRM_READMODEL_WAIT, a Go duration such as 2s; default 2s).
func (c Config) ReadWait() (time.Duration, error) {
	if c.ReadModelWait == "" {
		return 2 * time.Second, nil
	}
	d, err := time.ParseDuration(c.ReadModelWait)
	if err != nil || d < time.Millisecond || d > MaxReadWait {
		return 0, fmt.Errorf("CRM_READMODEL_WAIT %q: want a duration from 1ms to 1m", c.ReadModelWait)
	}
	return d, nil
}

// SnapshotInterval is how many log positions lie between two time-travel snapshots
// (CRM_SNAPSHOT_EVERY, default timetravel.DefaultSnapshotEvery): a question about a past
// position replays at most that many events. Fewer positions answer faster and take more
// disk.
func (c Config) SnapshotInterval() (int64, error) {
	if c.SnapshotEvery == "" {
		return timetravel.DefaultSnapshotEvery, nil
	}
	n, err := strconv.ParseInt(c.SnapshotEvery, 10, 64)
	if err != nil || n < 1000 || n > 100_000_000 {
		return 0, fmt.Errorf("CRM_SNAPSHOT_EVERY %q: want a count of log positions from 1000 to 100000000", c.SnapshotEvery)
	}
	return n, nil
}

// DefaultSnapshotSpace is the default CRM_SNAPSHOT_SPACE: the snapshots take at most the
// log's own size.
const DefaultSnapshotSpace = 1.0

// SnapshotSpaceFactor bounds the disk the time-travel snapshots take, as a multiple of the
// log's size on disk (CRM_SNAPSHOT_SPACE, default DefaultSnapshotSpace; 0: no bound, a
// snapshot every CRM_SNAPSHOT_EVERY positions is kept for good). Past it, snapshots are
// thinned, evenly: questions about the past then replay more events.
func (c Config) SnapshotSpaceFactor() (float64, error) {
	if c.SnapshotSpace == "" {
		return DefaultSnapshotSpace, nil
	}
	f, err := strconv.ParseFloat(c.SnapshotSpace, 64)
	if err != nil || math.IsNaN(f) || (f != 0 && (f < 0.1 || f > 1000)) {
		return 0, fmt.Errorf("CRM_SNAPSHOT_SPACE %q: want a multiple of the log's size from 0.1 to 1000, or 0 for no bound", c.SnapshotSpace)
	}
	return f, nil
}

// AnswerCacheSize is how many read-model answers the server keeps (CRM_ANSWER_CACHE, default
// 512; 0 keeps none). It returns -1 for none, as httpapi.ReadModels.AnswerCache wants it.
func (c Config) AnswerCacheSize() (int, error) {
	if c.AnswerCache == "" {
		return 512, nil
	}
	n, err := strconv.Atoi(c.AnswerCache)
	if err != nil || n < 0 || n > 1_000_000 {
		return 0, fmt.Errorf("CRM_ANSWER_CACHE %q: want a count from 0 to 1000000", c.AnswerCache)
	}
	if n == 0 {
		return -1, nil
	}
	return n, nil
}

// AnswerMaxStale is how old the reading of an answer of an earlier state of the tables may be
// for the server to give it while the next is read (CRM_ANSWER_MAX_STALE, a Go duration up to
// 1m; default 1s; 0 gives none: every request waits for a reading of the tables' state). It
// returns -1 for none, as httpapi.ReadModels.AnswerMaxStale wants it.
func (c Config) AnswerMaxStale() (time.Duration, error) {
	if c.AnswerStale == "" {
		return time.Second, nil
	}
	d, err := time.ParseDuration(c.AnswerStale)
	if err != nil || d < 0 || d > time.Minute {
		return 0, fmt.Errorf("CRM_ANSWER_MAX_STALE %q: want a Go duration from 0 to 1m", c.AnswerStale)
	}
	if d == 0 {
		return -1, nil
	}
	return d, nil
}

// StallAfter is how long committed events may reach no projection while the projections
// stand still before the feed is reported stalled (CRM_FEED_STALL_AFTER, a Go duration
// from 100ms to 10m; default runtime.DefaultStallAfter, 5s).
func (c Config) StallAfter() (time.Duration, error) {
	if c.FeedStallAfter == "" {
		return runtime.DefaultStallAfter, nil
	}
	d, err := time.ParseDuration(c.FeedStallAfter)
	if err != nil || d < 100*time.Millisecond || d > 10*time.Minute {
		return 0, fmt.Errorf("CRM_FEED_STALL_AFTER %q: want a duration from 100ms to 10m", c.FeedStallAfter)
	}
	return d, nil
}
