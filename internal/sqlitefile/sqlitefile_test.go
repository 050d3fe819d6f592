package sqlitefile_test

import (
	"context"
	"database/sql"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/eventcrm/crm/internal/sqlitefile"
)

func TestDSN(t *testing.T) {
	pragma := url.Values{"_pragma": {"busy_timeout(10000)"}}
	for _, tc := range []struct {
		name   string
		path   string
		params url.Values
		want   string
	}{
		{"plain absolute", "/var/lib/crm/crm.db", nil, "file:///var/lib/crm/crm.db"},
		{"plain relative", "data/crm.db", nil, "file:data/crm.db"},
		{"parameters", "/d/crm.db", pragma, "file:///d/crm.db?_pragma=busy_timeout%2810000%29"},
		{"question mark", "/d?x/crm.db", pragma, "file:///d%3Fx/crm.db?_pragma=busy_timeout%2810000%29"},
		{"hash", "/d#x/crm.db", nil, "file:///d%23x/crm.db"},
		{"percent", "/d%3F/crm.db", nil, "file:///d%253F/crm.db"},
		{"space and query syntax", "/my data&a=b/crm.db", nil, "file:///my%20data%26a%3Db/crm.db"},
		{"japanese", "/佐藤/crm.db", nil, "file:///%E4%BD%90%E8%97%A4/crm.db"},
		{"double slash", "//srv/crm.db", nil, "file:////srv/crm.db"},
		{"relative with colon", "file:x.db", nil, "file:file%3Ax.db"},
		{"unreserved kept", "/a-b_c.d~e/f.db", nil, "file:///a-b_c.d~e/f.db"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := sqlitefile.DSN(tc.path, tc.params); got != tc.want {
				t.Errorf("DSN(%q) = %q, want %q", tc.path, got, tc.want)
			}
		})
	}
}

// TestDSNOpensThatFile opens files whose paths hold URI syntax through the driver and checks
// that SQLite wrote exactly the file named, took the parameters, and left no other file.
func TestDSNOpensThatFile(t *testing.T) {
	for _, tc := range []struct {
		name     string
		relative bool
		dir      string
		file     string
	}{
		{"absolute", false, "data ?#%&=佐藤", "crm.db"},
		{"percent escapes", false, "d%3F%23%25", "a%20b.db"},
		{"relative", true, "data ?mode=ro#x", "x?y#z.db"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if err := os.Mkdir(filepath.Join(root, tc.dir), 0o700); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(root, tc.dir, tc.file)
			if tc.relative {
				t.Chdir(root)
				path = filepath.Join(tc.dir, tc.file)
			}
			ctx := context.Background()
			db, err := sql.Open("sqlite", sqlitefile.DSN(path, url.Values{"_pragma": {"journal_mode(WAL)"}}))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.ExecContext(ctx, "CREATE TABLE t (x)"); err != nil {
				t.Fatal(err)
			}
			var mode string
			if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
				t.Errorf("journal mode %q (%v), want wal: the parameters were not taken", mode, err)
			}
			var seq int
			var name, file string
			if err := db.QueryRowContext(ctx, "PRAGMA database_list").Scan(&seq, &name, &file); err != nil {
				t.Fatal(err)
			}
			abs, err := filepath.Abs(path)
			if err != nil {
				t.Fatal(err)
			}
			if file != abs {
				t.Errorf("SQLite opened %q, want %q", file, abs)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if got := entries(t, root); !slices.Equal(got, []string{tc.dir}) {
				t.Errorf("%s holds %q, want only %q", root, got, tc.dir)
			}
			if got := entries(t, filepath.Join(root, tc.dir)); !slices.Equal(got, []string{tc.file}) {
				t.Errorf("%s holds %q, want only %q", tc.dir, got, tc.file)
			}
		})
	}
}

// TestDSNReadOnly: SQLite's own parameters after the escaped path take effect.
func TestDSNReadOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a?b#c", "ro.db")
	if err := os.Mkdir(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rw, err := sql.Open("sqlite", sqlitefile.DSN(path, nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rw.ExecContext(ctx, "CREATE TABLE t (x)"); err != nil {
		t.Fatal(err)
	}
	rw.Close()
	ro, err := sql.Open("sqlite", sqlitefile.DSN(path, url.Values{"mode": {"ro"}}))
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if _, err := ro.ExecContext(ctx, "INSERT INTO t VALUES (1)"); err == nil {
		t.Error("insert through mode=ro succeeded")
	}
}

func entries(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}
