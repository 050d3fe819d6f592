package commands_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/postgres"
	"github.com/eventcrm/crm/eventstore/postgres/postgrestest"
)

// backends open a real store of each kind; the PostgreSQL one fails, never skips, when the
// server named by CRM_TEST_POSTGRES_URL cannot be reached.
var backends = []struct {
	name string
	open func(t *testing.T) eventstore.Store
}{
	{"sqlite", func(t *testing.T) eventstore.Store { return openStore(t, filepath.Join(t.TempDir(), "crm.db")) }},
	{"postgres", openPostgres},
}

func postgresURL() string {
	if u := os.Getenv("CRM_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// openPostgres opens a store in a schema of its own, dropped when t ends.
func openPostgres(t *testing.T) eventstore.Store {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "commands_test_" + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := postgres.Open(ctx, postgresURL(), postgres.WithSchema(schema))
	if err != nil {
		t.Fatalf("open postgres (set CRM_TEST_POSTGRES_URL): %v", err)
	}
	postgrestest.DropWhenDone(t, postgresURL(), schema)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// ticking is a clock that moves an hour on every reading, so a retry's default business
// time always differs from the first attempt's.
func ticking() func() time.Time {
	var n atomic.Int64
	start := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	return func() time.Time { return start.Add(time.Duration(n.Add(1)) * time.Hour) }
}

// The same idempotency key replays only the same request: every input that changes what is
// recorded (body, business time, reason, correlation and causation ids) is part of it, a
// default left out stays left out, and a refused retry appends nothing.
func TestIdempotencyKeyComparesWhatIsRecorded(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 11, 5, 14, 30, 0, 0, time.UTC)
	given := commands.Meta{OccurredAt: at, Reason: "met at the fair", CorrelationID: "corr-1", CausationID: "cause-1"}
	with := func(f func(m *commands.Meta)) commands.Meta { m := given; f(&m); return m }
	tests := []struct {
		name         string
		first, retry commands.Meta
		retryNote    string // the retried body's note; "" keeps the first one's
		wantConflict bool
	}{
		{"identical, nothing given", commands.Meta{}, commands.Meta{}, "", false},
		{"identical, everything given", given, given, "", false},
		{"identical, the same time in another zone", given, with(func(m *commands.Meta) { m.OccurredAt = at.In(time.FixedZone("JST", 9*3600)) }), "", false},
		{"another body", given, given, "a different note", true},
		{"another occurred_at", given, with(func(m *commands.Meta) { m.OccurredAt = at.Add(time.Hour) }), "", true},
		{"occurred_at only on the retry", commands.Meta{}, commands.Meta{OccurredAt: at}, "", true},
		{"occurred_at only on the first", commands.Meta{OccurredAt: at}, commands.Meta{}, "", true},
		{"another reason", given, with(func(m *commands.Meta) { m.Reason = "cold call" }), "", true},
		{"reason only on the retry", commands.Meta{}, commands.Meta{Reason: "cold call"}, "", true},
		{"another correlation id", given, with(func(m *commands.Meta) { m.CorrelationID = "corr-2" }), "", true},
		{"another causation id", given, with(func(m *commands.Meta) { m.CausationID = "cause-2" }), "", true},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			store := b.open(t)
			h := commands.NewHandler(store, commands.WithClock(ticking()))
			ctx := context.Background()
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					c := mustCreate(t, h)
					cmd := commands.RecordTouchpoint{ContactID: c.ID, Kind: "call", Note: "intro"}
					first, err := h.RecordTouchpoint(ctx, keyed(tc.first, "touch-"+tc.name), cmd)
					if err != nil {
						t.Fatalf("first: %v", err)
					}
					if tc.retryNote != "" {
						cmd.Note = tc.retryNote
					}
					again, err := h.RecordTouchpoint(ctx, keyed(tc.retry, "touch-"+tc.name), cmd)
					if tc.wantConflict {
						if !errors.Is(err, commands.ErrIdempotencyConflict) {
							t.Fatalf("retry = %+v, %v; want ErrIdempotencyConflict", again, err)
						}
					} else if err != nil || !again.Replayed || again.Version != first.Version || again.Position != first.Position {
						t.Fatalf("retry = %+v, %v; want the replay of %+v", again, err, first)
					}
					if v := streamVersion(t, store, c.ID); v != first.Version {
						t.Fatalf("stream at version %d after the retry, want %d: the retry appended", v, first.Version)
					}
				})
			}
		})
	}
}

// The expected version (If-Match) is not part of the request: it decides whether a command
// applies, not what it records, so a retry that re-read the stream gets the recorded answer.
func TestIdempotencyKeyReplaysWithAnotherExpectedVersion(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			h := commands.NewHandler(b.open(t))
			c := mustCreate(t, h)
			cmd := commands.RecordTouchpoint{ContactID: c.ID, Kind: "call"}
			before := c.Version
			first, err := h.RecordTouchpoint(context.Background(), commands.Meta{Actor: "alice", IdempotencyKey: "k", ExpectedVersion: &before}, cmd)
			if err != nil {
				t.Fatal(err)
			}
			after := first.Version
			again, err := h.RecordTouchpoint(context.Background(), commands.Meta{Actor: "alice", IdempotencyKey: "k", ExpectedVersion: &after}, cmd)
			if err != nil || !again.Replayed || again.Version != first.Version {
				t.Fatalf("retry with the version read since = %+v, %v; want the replay of %+v", again, err, first)
			}
		})
	}
}

// legacyHash is the request hash recorded before the given metadata was part of it: the
// command's name, target and JSON body.
func legacyHash(t *testing.T, name, target string, body any) string {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(append([]byte(name+"\x00"+target+"\x00"), b...))
	return hex.EncodeToString(sum[:16])
}

// legacyStore records every append with a fixed request hash, as an earlier version of the
// handler recorded it.
type legacyStore struct {
	eventstore.Store
	hash string
}

func (s legacyStore) Append(ctx context.Context, stream string, expected int64, events []eventstore.EventData) (eventstore.AppendResult, error) {
	for i := range events {
		events[i].Metadata.RequestHash = s.hash
	}
	return s.Store.Append(ctx, stream, expected, events)
}

// Keys used before the upgrade keep working: a request without metadata hashes as it did,
// and one with metadata matches what the earlier version recorded for it.
func TestIdempotencyKeyRecordedBeforeTheUpgrade(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 11, 5, 14, 30, 0, 0, time.UTC)
	given := commands.Meta{OccurredAt: at, Reason: "met at the fair", CorrelationID: "corr-1", CausationID: "cause-1"}
	tests := []struct {
		name         string
		first, retry commands.Meta
		wantConflict bool
	}{
		{"nothing given", commands.Meta{}, commands.Meta{}, false},
		{"everything given, the same", given, given, false},
		{"another occurred_at", given, commands.Meta{OccurredAt: at.Add(time.Minute), Reason: given.Reason, CorrelationID: given.CorrelationID, CausationID: given.CausationID}, true},
		{"another reason", given, commands.Meta{OccurredAt: at, Reason: "cold call", CorrelationID: given.CorrelationID, CausationID: given.CausationID}, true},
		{"a correlation id not recorded", commands.Meta{}, commands.Meta{CorrelationID: "corr-9"}, true},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			store := b.open(t)
			h := commands.NewHandler(store, commands.WithClock(ticking()))
			ctx := context.Background()
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					c := mustCreate(t, h)
					cmd := commands.RecordTouchpoint{ContactID: c.ID, Kind: "call", Note: "intro"}
					old := commands.NewHandler(legacyStore{store, legacyHash(t, "RecordTouchpoint", c.ID, cmd)}, commands.WithCacheSize(0))
					first, err := old.RecordTouchpoint(ctx, keyed(tc.first, "old-"+tc.name), cmd)
					if err != nil {
						t.Fatalf("first: %v", err)
					}
					again, err := h.RecordTouchpoint(ctx, keyed(tc.retry, "old-"+tc.name), cmd)
					if tc.wantConflict {
						if !errors.Is(err, commands.ErrIdempotencyConflict) {
							t.Fatalf("retry = %+v, %v; want ErrIdempotencyConflict", again, err)
						}
					} else if err != nil || !again.Replayed || again.Version != first.Version {
						t.Fatalf("retry = %+v, %v; want the replay of %+v", again, err, first)
					}
					if v := streamVersion(t, store, c.ID); v != first.Version {
						t.Fatalf("stream at version %d after the retry, want %d: the retry appended", v, first.Version)
					}
				})
			}
		})
	}
}

// A request without metadata records the hash earlier versions recorded, byte for byte.
func TestRequestHashWithoutMetadataIsUnchanged(t *testing.T) {
	t.Parallel()
	h, store := newHandler(t)
	c := mustCreate(t, h)
	cmd := commands.RecordTouchpoint{ContactID: c.ID, Kind: "call", Note: "intro"}
	res, err := h.RecordTouchpoint(context.Background(), commands.Meta{Actor: "alice", IdempotencyKey: "k"}, cmd)
	if err != nil {
		t.Fatal(err)
	}
	events, err := store.ReadStream(context.Background(), contact.StreamName(c.ID), res.Version, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := events[0].Metadata.RequestHash, legacyHash(t, "RecordTouchpoint", c.ID, cmd); got != want {
		t.Fatalf("request hash %s, want %s", got, want)
	}
}

func keyed(m commands.Meta, key string) commands.Meta {
	m.Actor, m.IdempotencyKey = "alice", key
	return m
}

func streamVersion(t *testing.T, store eventstore.Store, id string) int64 {
	t.Helper()
	events, err := store.ReadStream(context.Background(), contact.StreamName(id), 1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return events[len(events)-1].Version
}

// A key scope makes one command of the same key sent by different actors: the second
// replays the first (whose actor the events keep), and CreatedID names what it created.
// Without a scope, keys are the actor's.
func TestIdempotencyKeyScope(t *testing.T) {
	store := backends[0].open(t)
	h := commands.NewHandler(store)
	ctx := context.Background()
	cmd := commands.CreateContact{Name: "Yui", Channel: "seminar", Owner: "rep"}
	first, err := h.CreateContact(ctx, commands.Meta{Actor: "alice", KeyScope: "import", IdempotencyKey: "k1"}, cmd)
	if err != nil {
		t.Fatal(err)
	}
	second, err := h.CreateContact(ctx, commands.Meta{Actor: "bob", KeyScope: "import", IdempotencyKey: "k1"}, cmd)
	if err != nil || !second.Replayed || second.ID != first.ID || first.ID != commands.CreatedID("import", "k1") {
		t.Fatalf("second actor in the scope: %+v %v; first %+v", second, err, first)
	}
	own, err := h.CreateContact(ctx, commands.Meta{Actor: "bob", IdempotencyKey: "k1"}, cmd)
	if err != nil || own.Replayed || own.ID == first.ID || own.ID != commands.CreatedID("bob", "k1") {
		t.Fatalf("without a scope: %+v %v", own, err)
	}
	c, err := h.Contact(ctx, first.ID, commands.At{})
	if err != nil || c.Version != 1 {
		t.Fatalf("the scoped contact %+v %v", c, err)
	}
}
