package keys_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eventcrm/crm/eventstore/keys"
	"github.com/eventcrm/crm/eventstore/postgres/postgrestest"
)

func testURL() string {
	if u := os.Getenv("CRM_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// newPostgres opens a key store in a fresh schema, dropped when t ends; it fails, never
// skips, when PostgreSQL cannot be reached. open opens another store on the same schema.
func newPostgres(t *testing.T, opts ...keys.Option) (k keys.Keys, open func() keys.Keys, exec func(string, ...any) error) {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "keys_test_" + hex.EncodeToString(b)
	// Every store is closed before the schema is dropped: a store still open writes in the
	// background (bindings, refills), and its writes would meet the drop.
	var opened []keys.Keys
	open = func() keys.Keys {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		k, err := keys.OpenPostgres(ctx, testURL(), schema, opts...)
		if err != nil {
			t.Fatalf("open key store (set CRM_TEST_POSTGRES_URL): %v", err)
		}
		opened = append(opened, k)
		return k
	}
	k = open()
	exec = func(stmt string, into ...any) error {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, testURL())
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "SET search_path TO "+pgx.Identifier{schema}.Sanitize()); err != nil {
			return err
		}
		if len(into) > 0 {
			return conn.QueryRow(ctx, stmt).Scan(into...)
		}
		_, err = conn.Exec(ctx, stmt)
		return err
	}
	postgrestest.DropWhenDone(t, testURL(), schema)
	t.Cleanup(func() {
		for _, k := range opened {
			_ = k.Close()
		}
	})
	return k, open, exec
}

func newSQLite(t *testing.T, opts ...keys.Option) (keys.Keys, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keys.db")
	return openSQLite(t, path, opts...), path
}

func openSQLite(t *testing.T, path string, opts ...keys.Option) keys.Keys {
	t.Helper()
	k, err := keys.OpenSQLite(context.Background(), path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k.Close() })
	return k
}

// count runs a query of one number.
func (b backend) count(t *testing.T, query string) int {
	t.Helper()
	n := -1
	if err := b.exec(query, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// backend is a key store to test: open opens another store on the same database (another
// server), exec runs SQL in it.
type backend struct {
	name  string
	first keys.Keys
	open  func() keys.Keys
	exec  func(stmt string, into ...any) error // into: the columns of the one row a query gives
}

func backends(t *testing.T, opts ...keys.Option) []func(t *testing.T) backend {
	return []func(t *testing.T) backend{
		func(t *testing.T) backend {
			k, path := newSQLite(t, opts...)
			return backend{"sqlite", k, func() keys.Keys { return openSQLite(t, path, opts...) }, func(stmt string, into ...any) error {
				db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
				if err != nil {
					return err
				}
				defer db.Close()
				if len(into) > 0 {
					return db.QueryRow(stmt).Scan(into...)
				}
				_, err = db.Exec(stmt)
				return err
			}}
		},
		func(t *testing.T) backend {
			k, open, exec := newPostgres(t, opts...)
			return backend{"postgres", k, open, exec}
		},
	}
}

func TestKeys(t *testing.T) {
	for _, pool := range []int{0, 3} {
		for i, newBackend := range backends(t, keys.WithPool(pool)) {
			t.Run(fmt.Sprintf("%s pool %d", []string{"sqlite", "postgres"}[i], pool), func(t *testing.T) {
				t.Parallel()
				testKeys(t, newBackend(t).first, pool > 0)
			})
		}
	}
}

func testKeys(t *testing.T, k keys.Keys, pooled bool) {
	ctx := context.Background()
	if _, err := k.Lookup(ctx, "s1", ""); !errors.Is(err, keys.ErrNoKey) {
		t.Fatalf("lookup before any key: %v, want ErrNoKey", err)
	}
	first, err := k.Key(ctx, "s1")
	if err != nil || len(first.Bytes) != keys.KeySize || (first.ID != "") != pooled {
		t.Fatalf("key: %+v, %v", first, err)
	}
	again, err := k.Key(ctx, "s1")
	if err != nil || !bytes.Equal(first.Bytes, again.Bytes) || first.ID != again.ID {
		t.Fatalf("second Key gave another key: %+v, %v", again, err)
	}
	if got, err := k.Lookup(ctx, "s1", first.ID); err != nil || !bytes.Equal(got, first.Bytes) {
		t.Fatalf("lookup: %x, %v", got, err)
	}
	if pooled {
		if _, err := k.Lookup(ctx, "s2", first.ID); !errors.Is(err, keys.ErrNotSubjects) {
			t.Fatalf("lookup of s1's key for s2: %v, want ErrNotSubjects", err)
		}
	}
	var others []keys.Key
	for i := range 7 { // past a batch of the pool
		other, err := k.Key(ctx, fmt.Sprintf("s%d", i+2))
		if err != nil || bytes.Equal(first.Bytes, other.Bytes) {
			t.Fatalf("another subject: %+v, %v", other, err)
		}
		others = append(others, other)
	}
	if err := k.Destroy(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	if err := k.Destroy(ctx, "s1"); err != nil {
		t.Fatalf("destroying twice: %v", err)
	}
	if got, err := k.Lookup(ctx, "s1", first.ID); !errors.Is(err, keys.ErrDestroyed) || got != nil {
		t.Errorf("lookup after destroy: %x, %v; want ErrDestroyed", got, err)
	}
	if got, err := k.Key(ctx, "s1"); !errors.Is(err, keys.ErrDestroyed) || got.Bytes != nil {
		t.Errorf("key after destroy: %+v, %v; want ErrDestroyed", got, err)
	}
	for i, other := range others {
		if got, err := k.Lookup(ctx, fmt.Sprintf("s%d", i+2), other.ID); err != nil || !bytes.Equal(got, other.Bytes) {
			t.Errorf("another subject's key changed: %x, %v", got, err)
		}
	}
	if err := k.Destroy(ctx, "never"); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Key(ctx, "never"); !errors.Is(err, keys.ErrDestroyed) {
		t.Errorf("a subject destroyed before any key got one: %v", err)
	}
}

// Keys of the pool: durable before they are handed out; never one key for two subjects, even
// from two stores on one database; a binding lost with a crash is found again from the id a
// box names (and the key destroyed when its subject was erased meanwhile); keys never handed
// out are deleted at Close.
func TestPool(t *testing.T) {
	for i, newBackend := range backends(t, keys.WithPool(8)) {
		t.Run([]string{"sqlite", "postgres"}[i], func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := newBackend(t)
			t.Run("concurrent claims", func(t *testing.T) {
				stores := []keys.Keys{b.first, b.open()}
				var (
					mu   sync.Mutex
					ids  = map[string]string{} // key id -> subject
					wg   sync.WaitGroup
					errs = make(chan error, 64)
				)
				for w := range 32 {
					wg.Go(func() {
						for i := range 10 {
							subject := fmt.Sprintf("c%d", (w*10+i)/2) // two claims per subject
							k, err := stores[w%2].Key(ctx, subject)
							if err != nil {
								errs <- err
								return
							}
							mu.Lock()
							if was, ok := ids[k.ID]; ok && was != subject {
								errs <- fmt.Errorf("key %s given to %s and %s", k.ID, was, subject)
							}
							ids[k.ID] = subject
							mu.Unlock()
						}
					})
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					t.Error(err)
				}
				if len(ids) < 160 {
					t.Errorf("%d keys for 160 subjects", len(ids))
				}
			})
			t.Run("lost binding", func(t *testing.T) {
				a := b.open()
				kept, err := a.Key(ctx, "kept")
				if err != nil {
					t.Fatal(err)
				}
				erased, err := a.Key(ctx, "erased")
				if err != nil {
					t.Fatal(err)
				}
				if err := a.Close(); err != nil {
					t.Fatal(err)
				}
				// As after a crash between the event's append and the binding's write.
				if err := b.exec(`UPDATE pooled_keys SET subject = NULL, bound_at = NULL WHERE subject IN ('kept', 'erased')`); err != nil {
					t.Fatal(err)
				}
				other := b.open()
				if got, err := other.Lookup(ctx, "kept", kept.ID); err != nil || !bytes.Equal(got, kept.Bytes) {
					t.Errorf("lookup of an unbound key: %x, %v", got, err)
				}
				if _, err := other.Lookup(ctx, "intruder", kept.ID); !errors.Is(err, keys.ErrNotSubjects) {
					t.Errorf("the key bound on lookup is another's too: %v", err)
				}
				if err := other.Destroy(ctx, "erased"); err != nil {
					t.Fatal(err)
				}
				if got, err := other.Lookup(ctx, "erased", erased.ID); !errors.Is(err, keys.ErrDestroyed) {
					t.Errorf("a key of an erased subject, unbound: %x, %v", got, err)
				}
				if n := b.count(t, `SELECT count(*) FROM pooled_keys WHERE subject = 'erased' AND key IS NULL AND destroyed_at IS NOT NULL`); n != 1 {
					t.Errorf("%d destroyed keys of the erased subject, want 1", n)
				}
			})
			t.Run("unused keys deleted at close", func(t *testing.T) {
				b := newBackend(t) // no other store open: no other refill nor binding under way
				if err := b.first.Close(); err != nil {
					t.Fatal(err)
				}
				const unbound = `SELECT count(*) FROM pooled_keys WHERE subject IS NULL`
				before := b.count(t, unbound)
				a := b.open()
				if _, err := a.Key(ctx, "one"); err != nil {
					t.Fatal(err)
				}
				if n := b.count(t, unbound); n < before+7 { // the one used may not be bound yet
					t.Fatalf("%d unbound keys after a batch of 8 of which one was used, want at least %d", n, before+7)
				}
				if err := a.Close(); err != nil {
					t.Fatal(err)
				}
				if n := b.count(t, unbound); n != before {
					t.Errorf("%d unbound keys after Close, want %d", n, before)
				}
			})
		})
	}
}

// Key of a subject that has a key in the database, made by another store (another server, or
// this one before a restart), gives that key, found in one query: a pooled key bound to it,
// else the key stored under its name, which comes first; and ErrDestroyed for an erased one.
func TestKeyFoundByAnotherStore(t *testing.T) {
	for i, newBackend := range backends(t, keys.WithPool(4)) {
		t.Run([]string{"sqlite", "postgres"}[i], func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := newBackend(t)
			a := b.open()
			bound, err := a.Key(ctx, "bound")
			if err != nil {
				t.Fatal(err)
			}
			both, err := a.Key(ctx, "both")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := a.Key(ctx, "gone"); err != nil {
				t.Fatal(err)
			}
			if err := a.Close(); err != nil { // writes the bindings
				t.Fatal(err)
			}
			named, err := b.first.Secret(ctx, "both")
			if err != nil {
				t.Fatal(err)
			}
			if err := b.first.Destroy(ctx, "gone"); err != nil {
				t.Fatal(err)
			}
			other := b.open()
			if got, err := other.Key(ctx, "bound"); err != nil || got.ID != bound.ID || !bytes.Equal(got.Bytes, bound.Bytes) {
				t.Errorf("key of a subject bound by another store: %+v, %v; want %+v", got, err, bound)
			}
			if got, err := other.Key(ctx, "both"); err != nil || got.ID != "" || !bytes.Equal(got.Bytes, named) || bytes.Equal(got.Bytes, both.Bytes) {
				t.Errorf("key of a subject with a key under its name and a pooled one: %+v, %v; want the one under its name", got, err)
			}
			if got, err := other.Key(ctx, "gone"); !errors.Is(err, keys.ErrDestroyed) {
				t.Errorf("key of a destroyed subject: %+v, %v; want ErrDestroyed", got, err)
			}
			if got, err := other.Key(ctx, "new"); err != nil || got.ID == "" || got.ID == bound.ID {
				t.Errorf("key of a new subject: %+v, %v; want one of the pool", got, err)
			}
		})
	}
}

// KeyOfNewSubject takes a key of the pool without a query (shown with a cancelled context,
// with which any query fails), and the key is the subject's like any other: Key gives it
// again, Lookup opens it, and another store finds it bound. Without a pool it is Key.
func TestKeyOfNewSubject(t *testing.T) {
	for _, pool := range []int{0, 4} {
		for i, newBackend := range backends(t, keys.WithPool(pool)) {
			t.Run(fmt.Sprintf("%s pool %d", []string{"sqlite", "postgres"}[i], pool), func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				b := newBackend(t)
				a := b.open().(keys.NewSubjectKeys)
				first, err := a.KeyOfNewSubject(ctx, "n1") // the first batch of the pool is made
				if err != nil || (first.ID != "") != (pool > 0) {
					t.Fatalf("key of a new subject: %+v, %v", first, err)
				}
				cancelled, cancel := context.WithCancel(ctx)
				cancel()
				k, err := a.KeyOfNewSubject(cancelled, "n2")
				if pool > 0 && err != nil {
					t.Fatalf("key of a new subject asked the database: %v", err)
				}
				if pool == 0 {
					if err == nil {
						t.Fatal("without a pool, a key was made with a cancelled context")
					}
					if k, err = a.KeyOfNewSubject(ctx, "n2"); err != nil {
						t.Fatal(err)
					}
				}
				if _, err := a.Key(cancelled, "n3"); err == nil {
					t.Fatal("Key of an unknown subject answered without the database: the test shows nothing")
				}
				if again, err := a.Key(ctx, "n2"); err != nil || again.ID != k.ID || !bytes.Equal(again.Bytes, k.Bytes) {
					t.Errorf("Key after KeyOfNewSubject: %+v, %v; want %+v", again, err, k)
				}
				if got, err := a.Lookup(ctx, "n2", k.ID); err != nil || !bytes.Equal(got, k.Bytes) {
					t.Errorf("lookup: %x, %v", got, err)
				}
				if err := a.Close(); err != nil {
					t.Fatal(err)
				}
				if got, err := b.open().Key(ctx, "n2"); err != nil || got.ID != k.ID || !bytes.Equal(got.Bytes, k.Bytes) {
					t.Errorf("another store's Key: %+v, %v; want %+v", got, err, k)
				}
			})
		}
	}
}

// A destroyed key leaves no copy in any file of the key store.
func TestSQLiteDestroyLeavesNoCopy(t *testing.T) {
	ctx := context.Background()
	k, path := newSQLite(t)
	k1, err := k.Key(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	key := k1.Bytes
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

// A key store opened read-only finds keys, even one whose binding was lost, and makes none.
func TestReadOnly(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keys.db")
	w := openSQLite(t, path)
	k, err := w.Key(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE pooled_keys SET subject = NULL`); err != nil { // as after a crash
		t.Fatal(err)
	}
	_ = db.Close()
	r := openSQLite(t, path, keys.ReadOnly())
	if got, err := r.Lookup(ctx, "s1", k.ID); err != nil || !bytes.Equal(got, k.Bytes) {
		t.Errorf("lookup: %x, %v", got, err)
	}
	if _, err := r.Key(ctx, "s2"); err == nil {
		t.Error("a read-only store made a key")
	}
}

// TestSecret keeps a key under its subject's name whatever the pool: durable before Secret
// returns (another store on the same database, as after a crash, finds it by the name alone),
// the same at every call, gone with Destroy.
func TestSecret(t *testing.T) {
	for i, newBackend := range backends(t, keys.WithPool(3)) {
		t.Run([]string{"sqlite", "postgres"}[i], func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := newBackend(t)
			secret, err := b.first.Secret(ctx, "webhook:w1")
			if err != nil || len(secret) != keys.KeySize {
				t.Fatalf("secret: %x, %v", secret, err)
			}
			if again, err := b.first.Secret(ctx, "webhook:w1"); err != nil || !bytes.Equal(again, secret) {
				t.Fatalf("second Secret gave another key: %x, %v", again, err)
			}
			other := b.open()
			if got, err := other.Lookup(ctx, "webhook:w1", ""); err != nil || !bytes.Equal(got, secret) {
				t.Fatalf("lookup by name on another store: %x, %v", got, err)
			}
			if err := other.Destroy(ctx, "webhook:w1"); err != nil {
				t.Fatal(err)
			}
			for _, k := range []keys.Keys{b.first, other} {
				if _, err := k.Secret(ctx, "webhook:w1"); !errors.Is(err, keys.ErrDestroyed) {
					t.Errorf("secret after destroy: %v, want ErrDestroyed", err)
				}
			}
		})
	}
}
