package main

import (
	"errors"
	"flag"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A bad configuration is refused before anything is made: every problem at once, for every
// command, and the data directory is not even created.
func TestBadConfigurationTouchesNothing(t *testing.T) {
	t.Parallel()
	bad := map[string]string{
		"CRM_LOG_LEVEL":      "loud",
		"CRM_READMODEL_WAIT": "forever",
		"CRM_SNAPSHOT_EVERY": "7",
		"CRM_ANSWER_CACHE":   "lots",
		"CRM_BUSINESS_TZ":    "Mars/Olympus",
		"CRM_STORE":          "mysql://x",
	}
	for _, args := range [][]string{
		{"serve", "--addr", "127.0.0.1:0"},
		{"seed", "--contacts", "1"},
		{"verify"},
		{"history", "contact-1"},
		{"audit", "key"},
		{"audit", "checkpoint"},
		{"rebuild", "--all"},
		{"projections", "diff", "pipeline_board"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "data")
			env := map[string]string{"CRM_DATA_DIR": dir}
			for k, v := range bad {
				env[k] = v
			}
			stdout, _, err := crm(t, env, args...)
			if err == nil {
				t.Fatal("a bad configuration was accepted")
			}
			for name := range bad {
				if !strings.Contains(err.Error(), name) {
					t.Errorf("the error does not name %s: %v", name, err)
				}
			}
			if _, statErr := os.Stat(dir); !errors.Is(statErr, os.ErrNotExist) {
				t.Errorf("the data directory was made (%v)", statErr)
			}
			if stdout != "" {
				t.Errorf("printed before failing: %q", stdout)
			}
		})
	}
}

// A port in use is reported before anything is made or started.
func TestServeReportsAPortInUseFirst(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := filepath.Join(t.TempDir(), "data")
	stdout, stderr, err := crm(t, map[string]string{"CRM_DATA_DIR": dir}, "serve", "--addr", ln.Addr().String())
	if err == nil || !strings.Contains(err.Error(), "listen on "+ln.Addr().String()) {
		t.Fatalf("serve on a port in use: %v", err)
	}
	if _, statErr := os.Stat(dir); !errors.Is(statErr, os.ErrNotExist) {
		t.Errorf("the data directory was made (%v)", statErr)
	}
	if stdout != "" || stderr != "" {
		t.Errorf("printed before failing: stdout %q, stderr %q", stdout, stderr)
	}
}

// -h prints the command's flags on stdout and ends well; a mistake in the command line is one
// line with a hint.
func TestHelpAndUsageErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		flag string // a flag the help lists
	}{
		{[]string{"serve", "-h"}, "-addr"},
		{[]string{"seed", "-h"}, "-contacts"},
		{[]string{"verify", "--help"}, "-quiet"},
		{[]string{"history", "-h"}, "-json"},
		{[]string{"audit", "verify", "-h"}, "-checkpoint"},
		{[]string{"rebuild", "-h"}, "-projection"},
		{[]string{"projections", "diff", "-h"}, "-sample"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			stdout, stderr, err := crm(t, map[string]string{"CRM_DATA_DIR": t.TempDir()}, tc.args...)
			if !errors.Is(err, flag.ErrHelp) {
				t.Fatalf("help: %v", err)
			}
			if !strings.HasPrefix(stdout, "usage: crm ") || !strings.Contains(stdout, tc.flag) {
				t.Fatalf("help on stdout: %q", stdout)
			}
			if stderr != "" {
				t.Fatalf("help wrote to stderr: %q", stderr)
			}
		})
	}
	for _, args := range [][]string{{"seed", "--contacts", "many"}, {"serve", "--bogus"}, {"dance"}, {}} {
		t.Run("usage error "+strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			_, _, err := crm(t, map[string]string{"CRM_DATA_DIR": t.TempDir()}, args...)
			var ue usageError
			if !errors.As(err, &ue) {
				t.Fatalf("not a usage error: %v", err)
			}
			if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, "-h'") {
				t.Fatalf("want one line with a hint, got %q", msg)
			}
		})
	}
}
