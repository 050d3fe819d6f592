package config

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestParseStore(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, store string
		want        Target
		err         string
	}{
		{"default", "", Target{Backend: BackendSQLite, Path: "data/crm.db"}, ""},
		{"sqlite path", "sqlite:///var/lib/crm/log.db", Target{Backend: BackendSQLite, Path: "/var/lib/crm/log.db"}, ""},
		{"sqlite relative", "sqlite://crm.db", Target{Backend: BackendSQLite, Path: "crm.db"}, ""},
		{"sqlite without path", "sqlite://", Target{}, "needs a file path"},
		{"postgres", "postgres://u@db:5432/crm?sslmode=disable", Target{Backend: BackendPostgres, URL: "postgres://u@db:5432/crm?sslmode=disable"}, ""},
		{"postgresql scheme", "postgresql://db/crm", Target{Backend: BackendPostgres, URL: "postgresql://db/crm"}, ""},
		{"postgres schema", "postgres://db/crm?schema=sales&sslmode=disable", Target{Backend: BackendPostgres, URL: "postgres://db/crm?sslmode=disable", Schema: "sales"}, ""},
		{"postgres options kept as written", "postgres://db/crm?options=-c%20default_transaction_read_only%3Don&schema=audit&sslmode=disable",
			Target{Backend: BackendPostgres, URL: "postgres://db/crm?options=-c%20default_transaction_read_only%3Don&sslmode=disable", Schema: "audit"}, ""},
		{"postgres bad schema", "postgres://db/crm?schema=Drop-Table", Target{}, "schema"},
		{"postgres bad query", "postgres://db/crm?schema=a;b", Target{}, "CRM_STORE"},
		{"postgres bad URL", "postgres://db:port/crm", Target{}, "CRM_STORE"},
		{"esdb", "esdb://localhost:2113?tls=false", Target{Backend: BackendESDB, URL: "esdb://localhost:2113?tls=false"}, ""},
		{"kurrentdb", "kurrentdb+discover://a,b", Target{Backend: BackendESDB, URL: "kurrentdb+discover://a,b"}, ""},
		{"no scheme", "crm.db", Target{}, "want sqlite://PATH"},
		{"unknown scheme", "mysql://db", Target{}, `unknown scheme "mysql"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseStore(tc.store, "data")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseStore(%q) error = %v, want %q", tc.store, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseStore(%q) = %+v, %v; want %+v", tc.store, got, err, tc.want)
			}
		})
	}
}

func TestFromEnvDefaults(t *testing.T) {
	t.Parallel()
	c := FromEnv(func(string) string { return "" })
	if c.Addr != ":8080" || c.DataDir != "./data" || c.LogLevel != "info" || c.Store != "" {
		t.Fatalf("defaults = %+v", c)
	}
}

// An unreachable server is one clear error, quickly, not a hang.
func TestOpenStoreUnreachable(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := OpenStore(ctx, Config{Store: "postgres://postgres@127.0.0.1:1/crm?connect_timeout=2", DataDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "connect") {
		t.Fatalf("OpenStore of an unreachable PostgreSQL: %v", err)
	}
}

func TestBusinessZone(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		raw, want string
		ok        bool
	}{
		{"", "UTC", true}, // FromEnv's default
		{"UTC", "UTC", true},
		{"Asia/Tokyo", "Asia/Tokyo", true},
		{"Europe/Berlin", "Europe/Berlin", true},
		{"Local", "", false},
		{"Tokyo", "", false},
		{"asia/tokyo ", "", false},
		{"+09:00", "", false},
	} {
		c := FromEnv(func(k string) string {
			if k == "CRM_BUSINESS_TZ" {
				return tc.raw
			}
			return ""
		})
		loc, err := c.BusinessZone()
		if tc.ok != (err == nil) || (err == nil && loc.String() != tc.want) {
			t.Errorf("CRM_BUSINESS_TZ %q: %v, %v; want %q (ok %v)", tc.raw, loc, err, tc.want, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "CRM_BUSINESS_TZ") {
			t.Errorf("CRM_BUSINESS_TZ %q: %v, want an error naming it", tc.raw, err)
		}
		if tc.ok != (c.Validate() == nil) && tc.ok {
			t.Errorf("CRM_BUSINESS_TZ %q: Validate() = %v", tc.raw, c.Validate())
		}
	}
}

// CRM_METRICS_ADDR is off by default and must be an address when set.
func TestMetricsAddr(t *testing.T) {
	for _, tc := range []struct {
		raw string
		ok  bool
	}{{"", true}, {":9090", true}, {"127.0.0.1:9090", true}, {"9090", false}, {"localhost", false}} {
		c := FromEnv(func(k string) string {
			if k == "CRM_METRICS_ADDR" {
				return tc.raw
			}
			return ""
		})
		err := c.Validate()
		if tc.ok != (err == nil) {
			t.Errorf("CRM_METRICS_ADDR %q: Validate() = %v", tc.raw, err)
		}
		if err != nil && !strings.Contains(err.Error(), "CRM_METRICS_ADDR") {
			t.Errorf("CRM_METRICS_ADDR %q: error %q does not name the variable", tc.raw, err)
		}
	}
}
