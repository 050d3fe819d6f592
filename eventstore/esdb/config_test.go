package esdb

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/eventcrm/crm/eventstore"
)

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	c, err := newConfig(nil)
	if err != nil {
		t.Fatalf("default config: %v", err)
	}
	if c.subscriptionBuffer != 1024 || c.reconnectInitial != 100*time.Millisecond || c.reconnectMax != 5*time.Second ||
		c.maxReconnects != 0 || c.appendRetries != 16 || c.logger == nil || c.now == nil {
		t.Errorf("defaults = %+v", c)
	}
}

func TestConfigOptions(t *testing.T) {
	t.Parallel()
	fixed := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	logger := zaptest.NewLogger(t)
	c, err := newConfig([]Option{
		WithLogger(logger),
		WithClock(func() time.Time { return fixed }),
		WithSubscriptionBuffer(0),
		WithReconnectBackoff(time.Second, time.Minute),
		WithMaxReconnects(3),
		WithAppendRetries(0),
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.logger != logger || !c.now().Equal(fixed) || c.subscriptionBuffer != 0 || c.reconnectInitial != time.Second ||
		c.reconnectMax != time.Minute || c.maxReconnects != 3 || c.appendRetries != 0 {
		t.Errorf("config = %+v", c)
	}
}

// validate reports every problem, not only the first.
func TestConfigValidate(t *testing.T) {
	t.Parallel()
	_, err := newConfig([]Option{
		WithLogger(nil),
		WithClock(nil),
		WithSubscriptionBuffer(-1),
		WithReconnectBackoff(0, -time.Second),
		WithMaxReconnects(-1),
		WithAppendRetries(-1),
	})
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"logger", "clock", "subscription buffer", "initial reconnect delay",
		"maximum reconnect delay", "max reconnects", "append retries"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestReconnectDelay(t *testing.T) {
	t.Parallel()
	c := defaultConfig()
	c.reconnectInitial, c.reconnectMax = 100*time.Millisecond, time.Second
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond,
		800 * time.Millisecond, time.Second, time.Second}
	for i, w := range want {
		if got := c.reconnectDelay(i + 1); got != w {
			t.Errorf("reconnectDelay(%d) = %v, want %v", i+1, got, w)
		}
	}
	if got := c.reconnectDelay(1000); got != time.Second {
		t.Errorf("reconnectDelay(1000) = %v, want the maximum", got)
	}
}

func TestParseURL(t *testing.T) {
	t.Parallel()
	logger := zaptest.NewLogger(t)
	valid := []struct {
		url         string
		address     string
		disableTLS  bool
		username    string
		gossipSeeds int
	}{
		{"esdb://localhost:2113?tls=false", "localhost:2113", true, "", 0},
		{"esdb://localhost", "localhost:2113", false, "", 0},
		{"esdb://admin:changeit@db.example:2113", "db.example:2113", false, "admin", 0},
		{"esdb://node1:2113,node2:2113,node3:2113?tls=false", "", true, "", 3},
		{"esdb+discover://cluster.example:2113", "cluster.example:2113", false, "", 0},
	}
	for _, tt := range valid {
		conf, err := parseURL(tt.url, logger)
		if err != nil {
			t.Errorf("parseURL(%q): %v", tt.url, err)
			continue
		}
		if conf.Address != tt.address || conf.DisableTLS != tt.disableTLS || conf.Username != tt.username ||
			len(conf.GossipSeeds) != tt.gossipSeeds || conf.Logger == nil {
			t.Errorf("parseURL(%q) = %+v", tt.url, conf)
		}
	}

	invalid := []string{
		"",
		"localhost:2113",
		"postgres://localhost:5432/crm",
		"esdb://",
		"esdb://localhost:2113/some/path",
		"esdb://localhost:notaport",
		"esdb://localhost:2113?tls=maybe",
		"esdb://localhost:2113?userCertFile=cert.pem",
		"esdb://:secret@localhost:2113",
		"esdb://admin:s3cr3t@host:port:extra",
		"esdb://admin:s3cr3t@[::1",
	}
	for _, u := range invalid {
		_, err := parseURL(u, logger)
		if err == nil {
			t.Errorf("parseURL(%q) accepted a bad connection string", u)
			continue
		}
		if strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("parseURL(%q) error leaks the password: %v", u, err)
		}
	}
}

func TestOpenRefusesBadInput(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	if _, err := Open(ctx, "http://localhost:2113"); err == nil || !strings.Contains(err.Error(), "connection string") {
		t.Errorf("Open with a bad URL: %v", err)
	}
	if _, err := Open(ctx, "esdb://localhost:2113?tls=false", WithAppendRetries(-1)); err == nil ||
		!strings.Contains(err.Error(), "append retries") {
		t.Errorf("Open with a bad option: %v", err)
	}
}

// unreachable is a server that refuses connections at once, and gives up discovery quickly.
const unreachable = "esdb://127.0.0.1:1?tls=false&maxDiscoverAttempts=1&discoveryInterval=10&gossipTimeout=1"

func TestOpenUnreachable(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if s, err := Open(ctx, unreachable); err == nil {
		s.Close()
		t.Fatal("Open succeeded without a server")
	}
}

// newUnconnected returns a Store whose client has not connected (and cannot). It does not log:
// abandoned calls may still run when the test has ended.
func newUnconnected(t *testing.T, opts ...Option) *Store {
	t.Helper()
	cfg, err := newConfig(opts)
	if err != nil {
		t.Fatal(err)
	}
	s, err := newStore(unreachable, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestClosedStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newUnconnected(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	checks := map[string]error{}
	_, checks["Append"] = s.Append(ctx, "s", eventstore.AnyVersion, []eventstore.EventData{{ID: "a", Type: "t"}})
	_, checks["ReadStream"] = s.ReadStream(ctx, "s", 1, 10)
	_, checks["ReadAll"] = s.ReadAll(ctx, 0, 10)
	_, checks["Subscribe"] = s.Subscribe(ctx, 0)
	_, checks["EventByID"] = s.EventByID(ctx, "a")
	for op, err := range checks {
		if !errors.Is(err, eventstore.ErrClosed) {
			t.Errorf("%s on a closed store: %v, want ErrClosed", op, err)
		}
	}
}

func TestAppendValidatesBeforeIO(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newUnconnected(t)
	defer s.Close()
	ok := []eventstore.EventData{{ID: "a", Type: "t"}}
	tests := []struct {
		name     string
		stream   string
		expected int64
		events   []eventstore.EventData
	}{
		{"no stream name", "", eventstore.AnyVersion, ok},
		{"no events", "s", eventstore.AnyVersion, nil},
		{"bad expected version", "s", -2, ok},
		{"no id", "s", eventstore.AnyVersion, []eventstore.EventData{{Type: "t"}}},
		{"no type", "s", eventstore.AnyVersion, []eventstore.EventData{{ID: "a"}}},
		{"system stream", "$ce-contact", eventstore.AnyVersion, ok},
		{"event id index", claimStreamPrefix + "x", eventstore.AnyVersion, ok},
	}
	for _, tt := range tests {
		if _, err := s.Append(ctx, tt.stream, tt.expected, tt.events); !errors.Is(err, eventstore.ErrInvalidAppend) {
			t.Errorf("%s: Append error = %v, want ErrInvalidAppend", tt.name, err)
		}
	}
	for _, stream := range []string{"", "$all", claimStreamPrefix + "x"} {
		if _, err := s.ReadStream(ctx, stream, 1, 10); !errors.Is(err, eventstore.ErrStreamNotFound) {
			t.Errorf("ReadStream(%q) error = %v, want ErrStreamNotFound", stream, err)
		}
	}
}

func TestSubscriptionEndsWithStoreClose(t *testing.T) {
	t.Parallel()
	s := newUnconnected(t, WithReconnectBackoff(time.Millisecond, 10*time.Millisecond))
	sub, err := s.Subscribe(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // let it fail and retry a few times
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, open := <-sub.Events(); open {
		t.Fatal("event from an unreachable server")
	}
	if err := sub.Err(); !errors.Is(err, eventstore.ErrClosed) {
		t.Errorf("Err after store Close = %v, want ErrClosed", err)
	}
	if err := sub.Close(); err != nil {
		t.Errorf("Close after end: %v", err)
	}
}

func TestSubscriptionClose(t *testing.T) {
	t.Parallel()
	s := newUnconnected(t, WithReconnectBackoff(time.Millisecond, 10*time.Millisecond))
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	byClose, err := s.Subscribe(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	byContext, err := s.Subscribe(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := byClose.Close(); err != nil {
		t.Fatal(err)
	}
	cancel()
	for _, sub := range []eventstore.Subscription{byClose, byContext} {
		for range sub.Events() {
			t.Error("event from an unreachable server")
		}
		if err := sub.Err(); err != nil {
			t.Errorf("Err after Close or cancel = %v, want nil", err)
		}
	}
}

func TestSubscriptionGivesUp(t *testing.T) {
	t.Parallel()
	s := newUnconnected(t, WithReconnectBackoff(time.Millisecond, time.Millisecond), WithMaxReconnects(2))
	defer s.Close()
	sub, err := s.Subscribe(context.Background(), 42)
	if err != nil {
		t.Fatal(err)
	}
	for range sub.Events() {
		t.Error("event from an unreachable server")
	}
	err = sub.Err()
	if err == nil || !strings.Contains(err.Error(), "after 2 reconnects") || !strings.Contains(err.Error(), "after 42") {
		t.Errorf("Err = %v, want the last failure after 2 reconnects", err)
	}
}
