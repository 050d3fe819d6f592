package keys_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eventcrm/crm/eventstore/keys"
)

func testURL() string {
	if u := os.Getenv("CRM_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// newPostgres opens a key store in a fresh schema, dropped when t ends; it fails, never
// skips, when PostgreSQL cannot be reached.
func newPostgres(t *testing.T) keys.Keys {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "keys_test_" + hex.EncodeToString(b)
	k, err := keys.OpenPostgres(ctx, testURL(), schema)
	if err != nil {
		t.Fatalf("open key store (set CRM_TEST_POSTGRES_URL): %v", err)
	}
	t.Cleanup(func() {
		_ = k.Close()
		conn, err := pgx.Connect(context.Background(), testURL())
		if err != nil {
			t.Errorf("drop schema: %v", err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	return k
}

func newSQLite(t *testing.T) (keys.Keys, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keys.db")
	k, err := keys.OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k.Close() })
	return k, path
}

func TestKeys(t *testing.T) {
	backends := []struct {
		name string
		open func(t *testing.T) keys.Keys
	}{
		{"sqlite", func(t *testing.T) keys.Keys { k, _ := newSQLite(t); return k }},
		{"postgres", newPostgres},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			k := b.open(t)
			if _, err := k.Lookup(ctx, "s1"); !errors.Is(err, keys.ErrNoKey) {
				t.Fatalf("lookup before any key: %v, want ErrNoKey", err)
			}
			first, err := k.Key(ctx, "s1")
			if err != nil || len(first) != keys.KeySize {
				t.Fatalf("key: %x, %v", first, err)
			}
			again, err := k.Key(ctx, "s1")
			if err != nil || !bytes.Equal(first, again) {
				t.Fatalf("second Key gave another key: %x, %v", again, err)
			}
			other, _ := k.Key(ctx, "s2")
			if bytes.Equal(first, other) {
				t.Fatal("two subjects share a key")
			}
			if err := k.Destroy(ctx, "s1"); err != nil {
				t.Fatal(err)
			}
			if err := k.Destroy(ctx, "s1"); err != nil {
				t.Fatalf("destroying twice: %v", err)
			}
			for name, f := range map[string]func(context.Context, string) ([]byte, error){"lookup": k.Lookup, "key": k.Key} {
				if got, err := f(ctx, "s1"); !errors.Is(err, keys.ErrDestroyed) || got != nil {
					t.Errorf("%s after destroy: %x, %v; want ErrDestroyed", name, got, err)
				}
			}
			if got, err := k.Lookup(ctx, "s2"); err != nil || !bytes.Equal(got, other) {
				t.Errorf("another subject's key changed: %x, %v", got, err)
			}
			if err := k.Destroy(ctx, "never"); err != nil {
				t.Fatal(err)
			}
			if _, err := k.Key(ctx, "never"); !errors.Is(err, keys.ErrDestroyed) {
				t.Errorf("a subject destroyed before any key got one: %v", err)
			}
		})
	}
}

// A destroyed key leaves no copy in any file of the key store.
func TestSQLiteDestroyLeavesNoCopy(t *testing.T) {
	ctx := context.Background()
	k, path := newSQLite(t)
	key, err := k.Key(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 { // a few pages of other keys around it
		if _, err := k.Key(ctx, "other-"+string(rune('a'+i%26))+hex.EncodeToString([]byte{byte(i)})); err != nil {
			t.Fatal(err)
		}
	}
	if !filesHold(t, filepath.Dir(path), key) {
		t.Fatal("the key is not in the file before destruction: the test would prove nothing")
	}
	if err := k.Destroy(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	if filesHold(t, filepath.Dir(path), key) {
		t.Fatal("a file of the key store still holds the destroyed key")
	}
}

func filesHold(t *testing.T, dir string, b []byte) bool {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, b) {
			return true
		}
	}
	return false
}
