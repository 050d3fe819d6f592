package main

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/eventcrm/crm/eventstore/postgres/postgrestest"
)

// The generated admin token is printed when it is created, never again: later starts name
// the file that keeps it, so collected output does not hold the secret on every restart.
func TestServePrintsTheAdminTokenOnlyWhenCreated(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := map[string]string{"CRM_DATA_DIR": dir, "CRM_LOG_LEVEL": "warn"}
	path := filepath.Join(dir, "admin.token")
	starts := []struct {
		name      string
		wantToken bool
	}{
		{"first start creates and shows it", true},
		{"second start names the file only", false},
		{"third start names the file only", false},
	}
	for _, st := range starts {
		t.Run(st.name, func(t *testing.T) {
			s := serve(t, env)
			s.stop()
			out := s.out.String()
			if got := strings.Contains(out, s.token); got != st.wantToken {
				t.Fatalf("token in the output = %v, want %v:\n%s", got, st.wantToken, out)
			}
			if !strings.Contains(out, path) {
				t.Fatalf("the output does not say where the token is kept (%s):\n%s", path, out)
			}
		})
	}
}

// A token file that others may read is refused, as the audit key is, naming the file and the
// fix.
func TestServeRefusesALooseAdminToken(t *testing.T) {
	t.Parallel()
	modes := []os.FileMode{0o644, 0o640, 0o604}
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "admin.token")
			if err := os.WriteFile(path, []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, mode); err != nil {
				t.Fatal(err)
			}
			// Already cancelled: a serve that accepted the file returns instead of serving on.
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			var stdout bytes.Buffer
			err := run(ctx, []string{"serve", "--addr", "127.0.0.1:0"}, func(k string) string {
				return map[string]string{"CRM_DATA_DIR": dir}[k]
			}, &stdout, io.Discard)
			if err == nil {
				t.Fatal("serve started with a token file others may read")
			}
			for _, want := range []string{path, "chmod 600 " + path} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			if strings.Contains(stdout.String(), "0123456789abcdef") {
				t.Errorf("the refused token was printed: %q", stdout.String())
			}
		})
	}
}

// Every subcommand gives up on a PostgreSQL server that never answers, on its own, with an
// error that says so; the deadline given to run is only the test's guard against a hang.
func TestSubcommandsGiveUpOnAPostgresThatNeverAnswers(t *testing.T) {
	t.Parallel()
	silent := "postgres://postgres@" + postgrestest.SilentServer(t) + "/postgres?sslmode=disable"
	tests := []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"verify", map[string]string{"CRM_STORE": silent}, []string{"verify", "--quiet"}},
		{"history", map[string]string{"CRM_STORE": silent}, []string{"history", "contact-1"}},
		{"seed", map[string]string{"CRM_STORE": silent}, []string{"seed", "--contacts", "1", "--quiet"}},
		{"audit checkpoint", map[string]string{"CRM_STORE": silent}, []string{"audit", "checkpoint"}},
		{"serve, store", map[string]string{"CRM_STORE": silent, "CRM_TOKENS": "a:admin:0123456789abcdef"}, []string{"serve", "--addr", "127.0.0.1:0"}},
		{"serve, read models", map[string]string{"CRM_READMODEL_URL": silent, "CRM_TOKENS": "a:admin:0123456789abcdef"}, []string{"serve", "--addr", "127.0.0.1:0"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"CRM_DATA_DIR": t.TempDir(), "CRM_LOG_LEVEL": "error"}
			for k, v := range tc.env {
				env[k] = v
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			err := run(ctx, tc.args, func(k string) string { return env[k] }, io.Discard, io.Discard)
			if err == nil {
				t.Fatal("no error")
			}
			if ctx.Err() != nil {
				t.Fatalf("waited for the caller's deadline: %v", err)
			}
			if !strings.Contains(err.Error(), "timeout") {
				t.Fatalf("error %q does not say it timed out", err)
			}
		})
	}
}

// Every file serve writes in the data directory (the log, the read models, time-travel sets,
// the audit files, the token, and SQLite's -wal and -shm files) is 0600, also in a
// directory others may enter; and serve warns about such a directory.
//
// Not parallel: it sets the usual umask 022 for the run, under which SQLite's own default
// would create 0644 files, so the test does not depend on the umask of the machine.
func TestServeKeepsDataFilesPrivate(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s := serve(t, map[string]string{"CRM_DATA_DIR": dir, "CRM_LOG_LEVEL": "warn"})
	s.call("POST", "/v1/contacts", `{"name":"Aoi Mori","channel":"web_form"}`)
	s.call("GET", "/v1/audit/checkpoint", "")
	s.call("GET", "/v1/pipeline/board?at_position=1", "")
	// files checks the modes and returns the names it saw.
	files := func(when string) []string {
		t.Helper()
		var seen []string
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, path)
			seen = append(seen, rel)
			if perm := info.Mode().Perm(); perm&0o077 != 0 {
				t.Errorf("%s: %s has mode %v, want 0600", when, rel, perm)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return seen
	}
	seen := files("while serving")
	for _, want := range []string{"crm.db", "crm.db-wal", "readmodels.db", "audit-tree.db", "audit-access.db", "audit.key", "admin.token"} {
		if !slices.Contains(seen, want) {
			t.Errorf("no %s among %v", want, seen)
		}
	}
	travel := "readmodels.db.travel" + string(filepath.Separator)
	if !slices.ContainsFunc(seen, func(name string) bool { return strings.HasPrefix(name, travel) }) {
		t.Errorf("no time-travel file among %v", seen)
	}
	s.stop()
	files("after shutdown")
	if !strings.Contains(s.logs.String(), "data directory is open to other users") {
		t.Errorf("no warning about the data directory in the log:\n%s", s.logs.String())
	}
}

func TestWarnIfExposed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		dirMode os.FileMode
		files   map[string]os.FileMode
		want    []string // the warnings' messages, in order
	}{
		{"private", 0o700, map[string]os.FileMode{"crm.db": 0o600}, nil},
		{"group may enter", 0o750, map[string]os.FileMode{"crm.db": 0o600}, nil},
		{"others may enter", 0o755, map[string]os.FileMode{"crm.db": 0o600},
			[]string{"the data directory is open to other users; run chmod 700 on it"}},
		{"a file of an earlier version", 0o700, map[string]os.FileMode{"crm.db": 0o644, "readmodels.db": 0o600},
			[]string{"files in the data directory are readable by other users; run chmod 600 on them"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			for name, mode := range tc.files {
				path := filepath.Join(dir, name)
				if err := os.WriteFile(path, nil, 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path, mode); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Chmod(dir, tc.dirMode); err != nil {
				t.Fatal(err)
			}
			core, logs := observer.New(zap.WarnLevel)
			warnIfExposed(zap.New(core), dir)
			var got []string
			for _, e := range logs.All() {
				got = append(got, e.Message)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("warnings %q, want %q", got, tc.want)
			}
		})
	}
}
