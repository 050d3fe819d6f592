package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/jackc/pgx/v5"
)

// Linux inode flags (linux/fs.h): an immutable file or directory cannot be changed, nor an
// entry added to it, even by root, whom file modes do not stop.
const (
	fsIocGetFlags  = 0x80086601
	fsIocSetFlags  = 0x40086602
	fsImmutableFlg = 0x10
)

func setImmutable(path string, on bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var flags int32
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), fsIocGetFlags, uintptr(unsafe.Pointer(&flags))); errno != 0 {
		return errno
	}
	if on {
		flags |= fsImmutableFlg
	} else {
		flags &^= fsImmutableFlg
	}
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), fsIocSetFlags, uintptr(unsafe.Pointer(&flags))); errno != 0 {
		return errno
	}
	return nil
}

// makeReadOnly takes write access to dir and its files away: modes for a user, and the
// immutable flag for root, whom modes do not stop. It checks that a new file cannot be
// created, so the test cannot pass by accident.
func makeReadOnly(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	paths := []string{dir}
	for _, e := range entries {
		paths = append(paths, filepath.Join(dir, e.Name()))
	}
	for _, p := range paths[1:] {
		if err := os.Chmod(p, 0o400); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(dir, 0o700) })
	if os.Geteuid() == 0 {
		for _, p := range paths {
			if err := setImmutable(p, true); err != nil {
				t.Fatalf("make %s immutable (needs a file system with inode flags, such as ext4): %v", p, err)
			}
			t.Cleanup(func() {
				if err := setImmutable(p, false); err != nil {
					t.Errorf("make %s mutable again: %v", p, err)
				}
			})
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "probe"), nil, 0o600); err == nil {
		t.Fatalf("%s is still writable", dir)
	}
}

// listing is the names, sizes and modification times in dir, and the directory's own time.
func listing(t *testing.T, dir string) []string {
	t.Helper()
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := []string{st.ModTime().String()}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s %d %s", e.Name(), info.Size(), info.ModTime()))
	}
	return out
}

// copyFile copies a closed store's file byte for byte, as a backup does: it stays in WAL mode.
func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// An auditor verifies a backup it may only read: verify, history and audit verify open the
// store read-only, create no file beside it and change nothing.
func TestReadingCommandsWorkOnAReadOnlyCopy(t *testing.T) {
	t.Parallel()
	env, path := seeded(t, "20")
	var stream string
	if err := openDB(t, path).QueryRow(`SELECT stream FROM events WHERE version = 3 ORDER BY position LIMIT 1`).Scan(&stream); err != nil {
		t.Fatal(err)
	}
	cpPath := filepath.Join(t.TempDir(), "cp.json")
	saveCheckpoint(t, env, cpPath)
	key, _, err := crm(t, env, "audit", "key")
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(t.TempDir(), "key.json")
	if err := os.WriteFile(keyPath, []byte(key), 0o600); err != nil {
		t.Fatal(err)
	}
	copies := []struct {
		name string
		make func(t *testing.T, to string)
	}{
		{"file copy of a closed store", func(t *testing.T, to string) { copyFile(t, path, to) }},
		{"file copy with the audit tree", func(t *testing.T, to string) {
			copyFile(t, path, to)
			copyFile(t, filepath.Join(env["CRM_DATA_DIR"], auditTreeFile), filepath.Join(filepath.Dir(to), auditTreeFile))
		}},
		{"VACUUM INTO copy", func(t *testing.T, to string) { copyDB(t, path, to) }},
	}
	commands := []struct {
		name string
		args []string
		want string
	}{
		{"verify", []string{"verify", "--quiet"}, "OK: "},
		{"history", []string{"history", stream}, "v3 "},
		{"audit verify", []string{"audit", "verify", "--checkpoint", cpPath, "--key", keyPath, "--quiet"}, "OK: "},
	}
	for _, c := range copies {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			c.make(t, filepath.Join(dir, "crm.db"))
			makeReadOnly(t, dir)
			before := listing(t, dir)
			for _, cmd := range commands {
				t.Run(cmd.name, func(t *testing.T) {
					out, _, err := crm(t, map[string]string{"CRM_DATA_DIR": dir}, cmd.args...)
					if err != nil || !strings.Contains(out, cmd.want) {
						t.Fatalf("%v: %v\n%s", cmd.args, err, out)
					}
					if after := listing(t, dir); !slices.Equal(after, before) {
						t.Fatalf("the directory changed:\nbefore %v\nafter  %v", before, after)
					}
				})
			}
		})
	}
}

// readOnlyRole creates a login role that may only read schema, in read-only sessions as on a
// standby, and returns CRM_STORE for it. The role is dropped when the test ends.
func readOnlyRole(t *testing.T, schema string) string {
	t.Helper()
	ctx := context.Background()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	role := "crm_reader_" + hex.EncodeToString(b)
	conn, err := pgx.Connect(ctx, postgresURL())
	if err != nil {
		t.Fatalf("connect to postgres: %v", err)
	}
	defer conn.Close(ctx)
	ident, sch := pgx.Identifier{role}.Sanitize(), pgx.Identifier{schema}.Sanitize()
	for _, stmt := range []string{
		"CREATE ROLE " + ident + " LOGIN",
		"ALTER ROLE " + ident + " SET default_transaction_read_only = on",
		"GRANT USAGE ON SCHEMA " + sch + " TO " + ident,
		"GRANT SELECT ON ALL TABLES IN SCHEMA " + sch + " TO " + ident,
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), postgresURL())
		if err != nil {
			t.Errorf("drop role: %v", err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), "DROP OWNED BY "+ident+"; DROP ROLE "+ident); err != nil {
			t.Errorf("drop role %s: %v", role, err)
		}
	})
	u, err := url.Parse(postgresURL())
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	q := u.Query()
	q.Set("schema", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// An auditor verifies a PostgreSQL log with a role that may only read it (a standby, a
// restored backup): verify, history and audit verify neither migrate nor write.
func TestReadingCommandsWorkWithAReadOnlyPostgresRole(t *testing.T) {
	t.Parallel()
	store := boundedSchema(t)
	owner := map[string]string{"CRM_STORE": store, "CRM_DATA_DIR": t.TempDir()}
	if out, _, err := crm(t, owner, "seed", "--contacts", "20", "--quiet"); err != nil {
		t.Fatalf("seed: %q, %v", out, err)
	}
	cpPath := filepath.Join(t.TempDir(), "cp.json")
	saveCheckpoint(t, owner, cpPath)
	key, _, err := crm(t, owner, "audit", "key")
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(t.TempDir(), "key.json")
	if err := os.WriteFile(keyPath, []byte(key), 0o600); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(store)
	if err != nil {
		t.Fatal(err)
	}
	var stream string
	if err := openPostgresDB(t).QueryRow(context.Background(), "SELECT stream FROM "+
		pgx.Identifier{u.Query().Get("schema"), "events"}.Sanitize()+" WHERE version = 3 ORDER BY position LIMIT 1").Scan(&stream); err != nil {
		t.Fatal(err)
	}
	auditor := map[string]string{"CRM_STORE": readOnlyRole(t, u.Query().Get("schema")), "CRM_DATA_DIR": t.TempDir()}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"verify", []string{"verify", "--quiet"}, "OK: "},
		{"history", []string{"history", stream}, "v3 "},
		{"audit verify", []string{"audit", "verify", "--checkpoint", cpPath, "--key", keyPath, "--quiet"}, "OK: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := crm(t, auditor, tc.args...)
			if err != nil || !strings.Contains(out, tc.want) {
				t.Fatalf("%v: %v\n%s", tc.args, err, out)
			}
		})
	}
}

// openPostgresDB is a connection to the test PostgreSQL, closed when the test ends.
func openPostgresDB(t *testing.T) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), postgresURL())
	if err != nil {
		t.Fatalf("connect to postgres: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}
