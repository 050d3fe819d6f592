package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
