package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// --keep leaves the run's copy of the store and its read models where the report's reader
// can look into them, and says where; without it they are dropped.
func TestKeepLeavesTheCopy(t *testing.T) {
	tests := []struct {
		name    string
		keep    bool
		target  target
		dropped bool
		notice  string
	}{
		{"postgres dropped", false, target{backend: "postgres", schema: "crmload_x"}, true, ""},
		{"postgres kept", true, target{backend: "postgres", schema: "crmload_x"}, false,
			"kept the store in schema crmload_x, its read models in crmload_x_readmodels and its keys in crmload_x_keys"},
		{"sqlite kept", true, target{backend: "sqlite", dataDir: "/tmp/run/seeded"}, false,
			"kept the store and its read models in /tmp/run/seeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dropped := false
			tt.target.drop = func(context.Context) error { dropped = true; return nil }
			var log bytes.Buffer
			if err := tt.target.release(context.Background(), options{keep: tt.keep}, &log); err != nil {
				t.Fatal(err)
			}
			if dropped != tt.dropped {
				t.Errorf("dropped = %v, want %v", dropped, tt.dropped)
			}
			if !strings.Contains(log.String(), tt.notice) || (tt.notice == "" && log.Len() > 0) {
				t.Errorf("notice %q, want %q", log.String(), tt.notice)
			}
		})
	}
}
