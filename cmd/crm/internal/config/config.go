// Package config reads the server's settings from environment variables (flags override them
// in package main) and opens the configured event store.
package config

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
	_ "time/tzdata" // CRM_BUSINESS_TZ resolves without the host's zone files

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/esdb"
	"github.com/eventcrm/crm/eventstore/postgres"
	"github.com/eventcrm/crm/eventstore/sqlite"
)

// Config holds every setting. The zero value plus Defaults is the embedded default.
type Config struct {
	// Addr is the HTTP listen address (CRM_ADDR, default ":8080").
	Addr string
	// DataDir holds the SQLite store and the generated admin token (CRM_DATA_DIR, default "./data").
	DataDir string
	// Store selects the backend (CRM_STORE): empty or sqlite://PATH, postgres://..., esdb://...
	Store string
	// ReadModelURL is where read models live (CRM_READMODEL_URL): sqlite://PATH or
	// postgres://...; see ParseReadModels for the default.
	ReadModelURL string
	// ReadModelWait bounds the wait of a read-model answer for min_position
	// (CRM_READMODEL_WAIT, a Go duration; see ReadWait).
	ReadModelWait string
	// AnswerCache is how many read-model answers are kept for reuse while their tables do not
	// change (CRM_ANSWER_CACHE, a count; see AnswerCacheSize).
	AnswerCache string
	// AnswerStale is how old an answer of an earlier state may be to be given while the next
	// is read (CRM_ANSWER_MAX_STALE, a Go duration; see AnswerMaxStale).
	AnswerStale string
	// SnapshotEvery is how many log positions lie between two time-travel snapshots
	// (CRM_SNAPSHOT_EVERY, a count; see SnapshotInterval).
	SnapshotEvery string
	// SnapshotSpace bounds the disk the time-travel snapshots take, as a multiple of the
	// log's size (CRM_SNAPSHOT_SPACE, a number; see SnapshotSpaceFactor).
	SnapshotSpace string
	// FeedStallAfter is how long committed events may reach no projection before the feed
	// is reported stalled (CRM_FEED_STALL_AFTER, a Go duration; see StallAfter).
	FeedStallAfter string
	// Tokens is the CRM_TOKENS value, "name:role:token,...".
	Tokens string
	// LogLevel is debug, info, warn or error (CRM_LOG_LEVEL, default info).
	LogLevel string
	// BusinessTZ is the IANA name of the business time zone (CRM_BUSINESS_TZ, default UTC): it
	// decides business dates and period boundaries in every read model; see BusinessZone.
	BusinessTZ string
	// MetricsAddr is where Prometheus metrics are served, on a listener of their own without
	// bearer tokens (CRM_METRICS_ADDR, HOST:PORT or :PORT; default empty: not served).
	MetricsAddr string
	// AuditKeyFile is the private key that signs audit checkpoints (CRM_AUDIT_KEY_FILE,
	// default empty: audit.key in DataDir). Servers of one PostgreSQL store share one.
	AuditKeyFile string
	// WebhookAllowPrivate allows webhook URLs of private, loopback and link-local addresses
	// (CRM_WEBHOOK_ALLOW_PRIVATE, true or false, default false); see WebhookPrivateAllowed.
	WebhookAllowPrivate string
}

// FromEnv reads the settings from the environment, applying defaults.
func FromEnv(getenv func(string) string) Config {
	c := Config{
		Addr:                getenv("CRM_ADDR"),
		DataDir:             getenv("CRM_DATA_DIR"),
		Store:               getenv("CRM_STORE"),
		ReadModelURL:        getenv("CRM_READMODEL_URL"),
		ReadModelWait:       getenv("CRM_READMODEL_WAIT"),
		AnswerCache:         getenv("CRM_ANSWER_CACHE"),
		AnswerStale:         getenv("CRM_ANSWER_MAX_STALE"),
		SnapshotEvery:       getenv("CRM_SNAPSHOT_EVERY"),
		SnapshotSpace:       getenv("CRM_SNAPSHOT_SPACE"),
		FeedStallAfter:      getenv("CRM_FEED_STALL_AFTER"),
		Tokens:              getenv("CRM_TOKENS"),
		LogLevel:            getenv("CRM_LOG_LEVEL"),
		BusinessTZ:          getenv("CRM_BUSINESS_TZ"),
		MetricsAddr:         getenv("CRM_METRICS_ADDR"),
		WebhookAllowPrivate: getenv("CRM_WEBHOOK_ALLOW_PRIVATE"),
		AuditKeyFile:        getenv("CRM_AUDIT_KEY_FILE"),
	}
	if c.Addr == "" {
		c.Addr = ":8080"
	}
	if c.DataDir == "" {
		c.DataDir = "./data"
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.BusinessTZ == "" {
		c.BusinessTZ = "UTC"
	}
	return c
}

// BusinessZone is the business time zone named by CRM_BUSINESS_TZ. The zone database is built
// into the binary, so a name resolves the same on every machine.
func (c Config) BusinessZone() (*time.Location, error) {
	if c.BusinessTZ == "" || c.BusinessTZ == "Local" {
		return nil, fmt.Errorf("CRM_BUSINESS_TZ %q: want an IANA zone name such as UTC or Asia/Tokyo", c.BusinessTZ)
	}
	loc, err := time.LoadLocation(c.BusinessTZ)
	if err != nil {
		return nil, fmt.Errorf("CRM_BUSINESS_TZ %q: want an IANA zone name such as UTC or Asia/Tokyo", c.BusinessTZ)
	}
	return loc, nil
}

// WebhookPrivateAllowed tells whether webhook URLs may name private addresses.
func (c Config) WebhookPrivateAllowed() (bool, error) {
	switch c.WebhookAllowPrivate {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	}
	return false, fmt.Errorf("CRM_WEBHOOK_ALLOW_PRIVATE %q: want true or false", c.WebhookAllowPrivate)
}

// Backend names a store kind.
type Backend string

// Backends.
const (
	BackendSQLite   Backend = "sqlite"
	BackendPostgres Backend = "postgres"
	BackendESDB     Backend = "esdb"
)

// Target is a parsed store URL.
type Target struct {
	Backend Backend
	// Path is the SQLite file; URL the server URL for the others.
	Path string
	URL  string
	// Schema is the PostgreSQL schema of the log, from the URL's "schema" parameter (which
	// is taken out of URL); empty means the backend's default.
	Schema string
}

// ParseStore interprets a CRM_STORE value. An empty value is the SQLite file crm.db in dataDir.
func ParseStore(store, dataDir string) (Target, error) {
	if store == "" {
		return Target{Backend: BackendSQLite, Path: filepath.Join(dataDir, "crm.db")}, nil
	}
	scheme, rest, ok := strings.Cut(store, "://")
	if !ok {
		return Target{}, fmt.Errorf("CRM_STORE %q: want sqlite://PATH, postgres://USER@HOST/DB or esdb://HOST:PORT", store)
	}
	switch scheme {
	case "sqlite":
		if rest == "" {
			return Target{}, fmt.Errorf("CRM_STORE %q: sqlite:// needs a file path", store)
		}
		return Target{Backend: BackendSQLite, Path: rest}, nil
	case "postgres", "postgresql":
		u, err := url.Parse(store)
		if err != nil {
			return Target{}, fmt.Errorf("CRM_STORE: %w", err)
		}
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			return Target{}, fmt.Errorf("CRM_STORE: %w", err)
		}
		schema := q.Get("schema")
		if schema != "" && !validSchema(schema) {
			return Target{}, fmt.Errorf("CRM_STORE: schema %q: want lower-case letters, digits and _", schema)
		}
		u.RawQuery = withoutParam(u.RawQuery, "schema")
		return Target{Backend: BackendPostgres, URL: u.String(), Schema: schema}, nil
	case "esdb", "esdb+discover", "kurrentdb", "kurrentdb+discover", "kdb", "kdb+discover":
		return Target{Backend: BackendESDB, URL: store}, nil
	default:
		return Target{}, fmt.Errorf("CRM_STORE %q: unknown scheme %q (sqlite, postgres, esdb)", store, scheme)
	}
}

// withoutParam is rawQuery without the parameters called name, the others left exactly as
// written: re-encoding them would turn an escaped space into "+", which PostgreSQL's options
// do not read as a space.
func withoutParam(rawQuery, name string) string {
	var kept []string
	for _, p := range strings.Split(rawQuery, "&") {
		key, _, _ := strings.Cut(p, "=")
		if k, err := url.QueryUnescape(key); p == "" || (err == nil && k == name) {
			continue
		}
		kept = append(kept, p)
	}
	return strings.Join(kept, "&")
}

// OpenStore opens the configured event store.
func OpenStore(ctx context.Context, c Config) (eventstore.Store, error) {
	t, err := ParseStore(c.Store, c.DataDir)
	if err != nil {
		return nil, err
	}
	switch t.Backend {
	case BackendSQLite:
		if err := os.MkdirAll(filepath.Dir(t.Path), 0o700); err != nil {
			return nil, fmt.Errorf("create directory of %s: %w", t.Path, err)
		}
		s, err := sqlite.Open(ctx, t.Path)
		if err != nil {
			return nil, fmt.Errorf("open sqlite store %s: %w", t.Path, err)
		}
		return s, nil
	case BackendPostgres:
		var opts []postgres.Option
		if t.Schema != "" {
			opts = append(opts, postgres.WithSchema(t.Schema))
		}
		return postgres.Open(ctx, t.URL, opts...) // its errors name the store already
	case BackendESDB:
		return esdb.Open(ctx, t.URL)
	default:
		return nil, fmt.Errorf("store backend %s is not available in this build", t.Backend)
	}
}

// OpenStoreReadOnly opens the configured event store for commands that only read, such as
// verification: a SQLite file is opened read-only (a backup copy, read-only files and
// directory will do, and a missing file is an error, not a new store), a PostgreSQL schema
// without migrating it and in read-only sessions (a standby or a role that may only read
// will do); EventStoreDB opens as OpenStore does.
func OpenStoreReadOnly(ctx context.Context, c Config) (eventstore.Store, error) {
	t, err := ParseStore(c.Store, c.DataDir)
	if err != nil {
		return nil, err
	}
	switch t.Backend {
	case BackendSQLite:
	case BackendPostgres:
		opts := []postgres.Option{postgres.WithReadOnly()}
		if t.Schema != "" {
			opts = append(opts, postgres.WithSchema(t.Schema))
		}
		return postgres.Open(ctx, t.URL, opts...)
	default:
		return OpenStore(ctx, c)
	}
	s, err := sqlite.OpenReadOnly(ctx, t.Path)
	if err != nil {
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}
	return s, nil
}

func validSchema(s string) bool {
	if len(s) > 48 {
		return false
	}
	for i, r := range s {
		if !(r == '_' || (r >= 'a' && r <= 'z') || (i > 0 && r >= '0' && r <= '9')) {
			return false
		}
	}
	return true
}
