package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eventcrm/crm/projections"
)

func TestParseReadModels(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     Config
		want    ReadModelTarget
		wantErr string
	}{
		{"embedded default: a file apart from the log", Config{DataDir: "/data"},
			ReadModelTarget{Dialect: projections.SQLite, Path: filepath.Join("/data", "readmodels.db")}, ""},
		{"sqlite store elsewhere: still the data directory", Config{DataDir: "/data", Store: "sqlite:///var/crm.db"},
			ReadModelTarget{Dialect: projections.SQLite, Path: filepath.Join("/data", "readmodels.db")}, ""},
		{"postgres store: the same database", Config{DataDir: "/data", Store: "postgres://db/crm"},
			ReadModelTarget{Dialect: projections.Postgres, URL: "postgres://db/crm", Schema: "readmodels"}, ""},
		{"esdb store: CRM_READMODEL_URL is required", Config{DataDir: "/data", Store: "esdb://localhost:2113"},
			ReadModelTarget{}, "CRM_READMODEL_URL must name a PostgreSQL database"},
		{"postgres store with a schema: read models beside it", Config{DataDir: "/data", Store: "postgres://db/crm?schema=sales"},
			ReadModelTarget{Dialect: projections.Postgres, URL: "postgres://db/crm", Schema: "sales_readmodels"}, ""},
		{"explicit postgres", Config{DataDir: "/data", Store: "esdb://x", ReadModelURL: "postgresql://rm/crm"},
			ReadModelTarget{Dialect: projections.Postgres, URL: "postgresql://rm/crm", Schema: "readmodels"}, ""},
		{"explicit sqlite", Config{DataDir: "/data", ReadModelURL: "sqlite:///fast/rm.db"},
			ReadModelTarget{Dialect: projections.SQLite, Path: "/fast/rm.db"}, ""},
		{"sqlite without a path", Config{ReadModelURL: "sqlite://"}, ReadModelTarget{}, "needs a file path"},
		{"unknown scheme", Config{ReadModelURL: "mysql://x"}, ReadModelTarget{}, "want sqlite://PATH or postgres://"},
		{"bad store", Config{Store: "nope"}, ReadModelTarget{}, "CRM_STORE"},
		{"store pool too small for the read models", Config{Store: "postgres://db/crm?pool_max_conns=1"},
			ReadModelTarget{}, "CRM_STORE: pool_max_conns \"1\": the read models want at least 2 connections"},
		{"read-model pool too small", Config{Store: "esdb://x", ReadModelURL: "postgres://rm/crm?pool_max_conns=1"},
			ReadModelTarget{}, "CRM_READMODEL_URL: pool_max_conns \"1\""},
		{"read-model pool not a count", Config{ReadModelURL: "postgres://rm/crm?pool_max_conns=all"},
			ReadModelTarget{}, "CRM_READMODEL_URL: pool_max_conns \"all\""},
		{"smallest pool that serves", Config{DataDir: "/data", Store: "postgres://db/crm?pool_max_conns=2"},
			ReadModelTarget{Dialect: projections.Postgres, URL: "postgres://db/crm?pool_max_conns=2", Schema: "readmodels"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseReadModels(tc.cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestReadWait(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]time.Duration{"": 2 * time.Second, "500ms": 500 * time.Millisecond} {
		if got, err := (Config{ReadModelWait: raw}).ReadWait(); err != nil || got != want {
			t.Errorf("%q: %v, %v; want %v", raw, got, err, want)
		}
	}
	for _, raw := range []string{"soon", "-1s", "0s", "2h"} {
		if _, err := (Config{ReadModelWait: raw}).ReadWait(); err == nil || !strings.Contains(err.Error(), "CRM_READMODEL_WAIT") {
			t.Errorf("%q: %v", raw, err)
		}
	}
}

func TestSnapshotInterval(t *testing.T) {
	for raw, want := range map[string]int64{"": 50_000, "1000": 1000, "25000": 25_000} {
		if got, err := (Config{SnapshotEvery: raw}).SnapshotInterval(); err != nil || got != want {
			t.Errorf("CRM_SNAPSHOT_EVERY %q: %d, %v; want %d", raw, got, err, want)
		}
	}
	for _, raw := range []string{"0", "-5", "999", "often", "1e6", "100000001"} {
		if _, err := (Config{SnapshotEvery: raw}).SnapshotInterval(); err == nil || !strings.Contains(err.Error(), "CRM_SNAPSHOT_EVERY") {
			t.Errorf("CRM_SNAPSHOT_EVERY %q: %v, want an error naming it", raw, err)
		}
	}
}

func TestAnswerCacheSize(t *testing.T) {
	for raw, want := range map[string]int{"": 512, "1": 1, "2048": 2048, "0": -1} {
		if got, err := (Config{AnswerCache: raw}).AnswerCacheSize(); err != nil || got != want {
			t.Errorf("CRM_ANSWER_CACHE %q: %d, %v; want %d", raw, got, err, want)
		}
	}
	for _, raw := range []string{"-1", "many", "1.5", "1000001"} {
		if _, err := (Config{AnswerCache: raw}).AnswerCacheSize(); err == nil || !strings.Contains(err.Error(), "CRM_ANSWER_CACHE") {
			t.Errorf("CRM_ANSWER_CACHE %q: %v, want an error naming it", raw, err)
		}
	}
}

func TestAnswerMaxStale(t *testing.T) {
	for raw, want := range map[string]time.Duration{"": time.Second, "250ms": 250 * time.Millisecond, "1m": time.Minute, "0": -1, "0s": -1} {
		if got, err := (Config{AnswerStale: raw}).AnswerMaxStale(); err != nil || got != want {
			t.Errorf("CRM_ANSWER_MAX_STALE %q: %v, %v; want %v", raw, got, err, want)
		}
	}
	for _, raw := range []string{"-1s", "soon", "1", "61s"} {
		if _, err := (Config{AnswerStale: raw}).AnswerMaxStale(); err == nil || !strings.Contains(err.Error(), "CRM_ANSWER_MAX_STALE") {
			t.Errorf("CRM_ANSWER_MAX_STALE %q: %v, want an error naming it", raw, err)
		}
	}
}

func TestStallAfter(t *testing.T) {
	tests := []struct {
		raw     string
		want    time.Duration
		problem bool
	}{
		{"", 5 * time.Second, false},
		{"500ms", 500 * time.Millisecond, false},
		{"10m", 10 * time.Minute, false},
		{"50ms", 0, true},
		{"11m", 0, true},
		{"soon", 0, true},
	}
	for _, tc := range tests {
		got, err := (Config{FeedStallAfter: tc.raw}).StallAfter()
		switch {
		case tc.problem && (err == nil || !strings.Contains(err.Error(), "CRM_FEED_STALL_AFTER")):
			t.Errorf("StallAfter(%q) = %v, %v; want a problem naming CRM_FEED_STALL_AFTER", tc.raw, got, err)
		case !tc.problem && (err != nil || got != tc.want):
			t.Errorf("StallAfter(%q) = %v, %v; want %v", tc.raw, got, err, tc.want)
		}
	}
}

func TestSnapshotSpaceFactor(t *testing.T) {
	for raw, want := range map[string]float64{"": 1, "0": 0, "0.5": 0.5, "2": 2, "1000": 1000} {
		if got, err := (Config{SnapshotSpace: raw}).SnapshotSpaceFactor(); err != nil || got != want {
			t.Errorf("CRM_SNAPSHOT_SPACE %q: %v, %v; want %v", raw, got, err, want)
		}
	}
	for _, raw := range []string{"-1", "0.05", "1001", "NaN", "half", "1x"} {
		if _, err := (Config{SnapshotSpace: raw}).SnapshotSpaceFactor(); err == nil || !strings.Contains(err.Error(), "CRM_SNAPSHOT_SPACE") {
			t.Errorf("CRM_SNAPSHOT_SPACE %q: %v, want an error naming it", raw, err)
		}
	}
}
