package postgres

import (
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
)

// withAppName returns the test URL with an application_name, so a test can find the
// connections of one Store in pg_stat_activity.
func withAppName(t *testing.T, name string) string {
	t.Helper()
	u, err := url.Parse(testURL())
	if err != nil {
		t.Skipf("CRM_TEST_POSTGRES_URL is not a URL (%v): cannot set application_name", err)
	}
	q := u.Query()
	q.Set("application_name", name)
	u.RawQuery = q.Encode()
	return u.String()
}

// terminate ends every backend whose application_name is name and returns how many.
func terminate(t *testing.T, s *Store, name string) int {
	t.Helper()
	var n int
	err := s.Pool().QueryRow(t.Context(), `SELECT count(pg_terminate_backend(pid))
		FROM pg_stat_activity WHERE application_name = $1`, name).Scan(&n)
	if err != nil {
		t.Fatalf("terminate %s: %v", name, err)
	}
	return n
}

// A subscription that never polls is woken by what another process (another Store) appends.
func TestSubscribeWokenByNotification(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	reader := mustOpen(t, schema, WithPollInterval(time.Hour))
	writer := mustOpen(t, schema)
	sub, err := reader.Subscribe(t.Context(), 0)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	defer sub.Close()
	for i := range 3 {
		res := mustAppend(t, writer, "elsewhere", int64(i), newEvents(1))
		if got := receive(t, sub, 1, 10*time.Second); got[0].Position != res.Position {
			t.Fatalf("delivered %d, want %d", got[0].Position, res.Position)
		}
	}
}

// When every connection of a Store is killed, as by a restart of PostgreSQL, its subscription
// reconnects and goes on: nothing lost, nothing twice, no error.
func TestSubscriptionSurvivesLostConnections(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	app := "eventstore-test-" + randomHex(6)
	reader := open(t, withAppName(t, app), schema, WithPollInterval(time.Hour))
	t.Cleanup(func() { reader.Close() })
	writer := mustOpen(t, schema)
	sub, err := reader.Subscribe(t.Context(), 0)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	defer sub.Close()

	var want []int64
	version := int64(0)
	appendOne := func() {
		res := mustAppend(t, writer, "survivor", version, newEvents(1))
		version = res.Version
		want = append(want, res.Position)
	}
	appendOne()
	got := receive(t, sub, 1, 10*time.Second)

	for round := range 3 {
		// Wait until the listener is connected, so the kill really cuts it.
		deadline := time.Now().Add(10 * time.Second)
		for terminate(t, writer, app) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: no connection of the reader to terminate", round)
			}
			time.Sleep(20 * time.Millisecond)
		}
		appendOne() // may land while the reader is disconnected
		appendOne()
		got = append(got, receive(t, sub, 2, 15*time.Second)...)
	}
	if !slices.Equal(positions(got), want) {
		t.Fatalf("delivered %v, want %v", positions(got), want)
	}
	receiveNothing(t, sub, 200*time.Millisecond)
	if err := sub.Err(); err != nil {
		t.Errorf("subscription err = %v, want nil", err)
	}
	if n, err := eventstore.VerifyStream(t.Context(), writer, "survivor"); err != nil || n != int64(len(want)) {
		t.Errorf("verify stream = %d, %v", n, err)
	}
}
