package lease_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/lease"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// node opens a pool of its own on schema (as a server would) and its lease manager.
func node(t *testing.T, schema, name string) (*lease.Manager, *projections.DB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := projections.OpenPostgres(ctx, projectiontest.PostgresURL(), schema)
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	t.Cleanup(func() { db.SQL.Close() })
	m, err := lease.New(lease.Config{DB: db, Node: name, TTL: 600 * time.Millisecond, Renew: 100 * time.Millisecond, Poll: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return m, db
}

// holding runs Hold in the background; the lease is reported on held once taken, and Hold's
// error on done.
func holding(ctx context.Context, m *lease.Manager, name string) (held <-chan *lease.Lease, done <-chan error) {
	h, d := make(chan *lease.Lease, 1), make(chan error, 1)
	go func() {
		d <- m.Hold(ctx, name, func(ctx context.Context) error {
			h <- lease.FromContext(ctx)
			<-ctx.Done()
			return ctx.Err()
		})
	}()
	return h, d
}

func TestOneOwnerAndTakeoverAfterAKill(t *testing.T) {
	schema := projectiontest.FreshSchema(t, "lease_test_")
	a, adb := node(t, schema, "a")
	b, _ := node(t, schema, "b")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	aHeld, aDone := holding(ctx, a, "projection:x")
	first := <-aHeld
	bHeld, bDone := holding(ctx, b, "projection:x")
	select {
	case l := <-bHeld:
		t.Fatalf("b took %+v while a holds it", l)
	case <-time.After(time.Second): // more than a TTL: a renews
	}

	// a is killed: its connections go, nothing is released.
	killed := time.Now()
	adb.SQL.Close()
	second := <-bHeld
	took := time.Since(killed)
	if second.Epoch != first.Epoch+1 || second.Node != "b" {
		t.Errorf("after the kill b holds %+v, want epoch %d", second, first.Epoch+1)
	}
	if took > 3*a.TTL() {
		t.Errorf("b took over %s after the kill, want within about a TTL (%s)", took, a.TTL())
	}
	// a's work stops within a TTL of its last renewal, as lost.
	select {
	case err := <-aDone:
		if !errors.Is(err, lease.ErrLost) {
			t.Errorf("a's Hold = %v, want ErrLost", err)
		}
	case <-time.After(3 * a.TTL()):
		t.Error("a's work still runs long after its lease expired")
	}
	cancel()
	if err := <-bDone; !errors.Is(err, context.Canceled) {
		t.Errorf("b's Hold = %v, want context.Canceled", err)
	}
}

func TestReleasedLeaseMovesAtOnce(t *testing.T) {
	schema := projectiontest.FreshSchema(t, "lease_test_")
	a, _ := node(t, schema, "a")
	b, _ := node(t, schema, "b")
	actx, stopA := context.WithCancel(context.Background())
	aHeld, aDone := holding(actx, a, "snapshots")
	<-aHeld
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bHeld, _ := holding(ctx, b, "snapshots")
	stopA() // a stops cleanly: released, b need not wait for the expiry
	<-aDone
	select {
	case l := <-bHeld:
		if l.Epoch != 2 {
			t.Errorf("b holds epoch %d, want 2", l.Epoch)
		}
	case <-time.After(a.TTL() / 2):
		t.Error("b did not take the released lease before it would have expired")
	}
}

func TestCheckFencesTheOldOwner(t *testing.T) {
	schema := projectiontest.FreshSchema(t, "lease_test_")
	a, adb := node(t, schema, "a")
	b, _ := node(t, schema, "b")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// a held the lease and let it go; its epoch is what a late write of a would carry.
	var old *lease.Lease
	if err := a.Hold(ctx, "process:p", func(ctx context.Context) error {
		old = lease.FromContext(ctx)
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// While nobody else holds it, a write of a is still in order: its check locks the row.
	tx, err := adb.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck
	if err := old.Check(ctx, tx); err != nil {
		t.Fatalf("check before any takeover: %v", err)
	}
	// b's takeover waits for that transaction ...
	bHeld, _ := holding(ctx, b, "process:p")
	select {
	case l := <-bHeld:
		t.Fatalf("b took %+v while a's checked transaction is open", l)
	case <-time.After(4 * b.TTL() / 3):
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if l := <-bHeld; l.Epoch != old.Epoch+1 {
		t.Errorf("b holds epoch %d, want %d", l.Epoch, old.Epoch+1)
	}
	// ... and once it is taken, no transaction of a passes the check.
	tx2, err := adb.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx2.Rollback() //nolint:errcheck
	if err := old.Check(ctx, tx2); !errors.Is(err, lease.ErrLost) {
		t.Errorf("check of the old owner after the takeover = %v, want ErrLost", err)
	}
}

func TestLocalDatabaseOwnsEverything(t *testing.T) {
	db := projectiontest.SQLite(t)
	m, err := lease.New(lease.Config{DB: db})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ran := false
	err = m.Hold(ctx, "projection:x", func(ctx context.Context) error {
		ran = true
		tx, err := db.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback() //nolint:errcheck
		return lease.FromContext(ctx).Check(ctx, tx)
	})
	if err != nil || !ran {
		t.Errorf("Hold on SQLite: ran %v, err %v", ran, err)
	}
}

// A long transaction that checked the lease does not hold up the lease's own renewals.
func TestLongCheckedTransactionKeepsTheLease(t *testing.T) {
	schema := projectiontest.FreshSchema(t, "lease_test_")
	a, adb := node(t, schema, "a")
	err := a.Hold(context.Background(), "projection:x", func(ctx context.Context) error {
		tx, err := adb.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback() //nolint:errcheck
		if err := lease.FromContext(ctx).Check(ctx, tx); err != nil {
			return err
		}
		select {
		case <-time.After(3 * a.TTL()):
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		return tx.Commit()
	})
	if err != nil {
		t.Fatalf("Hold = %v, want the lease kept through a long transaction", err)
	}
}

func TestConfigValidate(t *testing.T) {
	db := projectiontest.SQLite(t)
	tests := []struct {
		name string
		cfg  lease.Config
		want string
	}{
		{"defaults", lease.Config{DB: db}, ""},
		{"no database", lease.Config{}, "no database"},
		{"short ttl", lease.Config{DB: db, TTL: 50 * time.Millisecond, Renew: 10 * time.Millisecond}, "lease ttl 50ms"},
		{"renewal too slow", lease.Config{DB: db, TTL: time.Second, Renew: 600 * time.Millisecond}, "lease renewal every 600ms"},
		{"negative poll", lease.Config{DB: db, Poll: -time.Second}, "lease poll -1s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := lease.New(tc.cfg)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("New = %v, want no error", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("New = %v, want %q", err, tc.want)
			}
		})
	}
}
