package wmstore_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/eventcrm/crm/eventstore/wmstore"
)

// When every connection of the store is killed, as by a restart of PostgreSQL, the stream and
// $all subscriptions go on: nothing lost, nothing twice. (Watermill's TestReconnect would
// restart the server itself, which the tests share with other runs.)
func TestSubscriptionsSurviveLostConnections(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	app := "wmstore-test-" + randomHex(t, 6)
	u, err := url.Parse(postgresURL())
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("application_name", app)
	u.RawQuery = q.Encode()
	reader := openPostgresIn(t, u.String(), schema)
	writer := openPostgresIn(t, postgresURL(), schema)

	pub := mustPublisher(t, writer, wmstore.PublisherConfig{})
	sub := mustSubscriber(t, reader, testConfig("survivors"))
	stream := mustSubscribe(t, t.Context(), sub, "survivor")
	all := mustSubscribe(t, t.Context(), sub, wmstore.AllTopic)

	want := publishN(t, pub, "survivor", 1)
	gotStream, gotAll := receive(t, stream, 1), receive(t, all, 1)
	for round := range 3 {
		// Wait until the reader is connected, so that the kill really cuts it.
		deadline := time.Now().Add(10 * time.Second)
		for terminate(t, app) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: no connection of the reader to terminate", round)
			}
			time.Sleep(20 * time.Millisecond)
		}
		more := publishN(t, pub, "survivor", 2) // may land while the reader is disconnected
		want = append(want, more...)
		gotStream = append(gotStream, receive(t, stream, 2)...)
		gotAll = append(gotAll, receive(t, all, 2)...)
	}
	for _, got := range [][]*message.Message{gotStream, gotAll} {
		equalIDs(t, got, want)
	}
	receiveNothing(t, stream, 200*time.Millisecond)
	receiveNothing(t, all, 50*time.Millisecond)
}

// terminate kills the connections of application app and returns how many there were.
func terminate(t *testing.T, app string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := execPostgres(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", app)
	if err != nil {
		t.Fatalf("terminate %s: %v", app, err)
	}
	return n
}
