package codec_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/codec"
	"github.com/eventcrm/crm/eventstore/keys"
	"github.com/eventcrm/crm/eventstore/sqlite"
	"github.com/eventcrm/crm/eventstore/storetest"
)

func newKeys(t testing.TB) keys.Keys {
	t.Helper()
	k, err := keys.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "keys.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k.Close() })
	return k
}

func newKeysB(b *testing.B) keys.Keys { return newKeys(b) }

func newCodec(t testing.TB, k keys.Keys) *codec.Codec {
	t.Helper()
	c, err := codec.New(codec.Config{Keys: k, SubjectMember: "contact_id",
		Personal: map[string][]string{"p.created.v1": {"name", "email"}, "p.only.v1": {"text"}},
		Upcasters: []codec.Upcaster{
			{From: "p.created.v1", To: "p.created.v2", Up: func(b []byte) ([]byte, error) {
				return bytes.Replace(b, []byte(`"name":`), []byte(`"family_name":`), 1), nil
			}},
			{From: "p.created.v2", To: "p.created.v3", Up: func(b []byte) ([]byte, error) { return b, nil }},
		}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The codec's Store is a store like any other: the conformance suite passes through it.
func TestStoreConformance(t *testing.T) {
	k := newKeys(t)
	storetest.TestStore(t, storetest.Features{Checkpoints: true}, func(t *testing.T) eventstore.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "crm.db"))
		if err != nil {
			t.Fatal(err)
		}
		return codec.NewStore(s, newCodec(t, k))
	})
}

func members(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return m
}

func TestSealAndOpen(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name, typ, data string
		sealed          bool
		readType        string
		read            string // after open and upcast
		erased          string // read after the subject's key is destroyed
	}{
		{"personal members sealed, upcast twice", "p.created.v1", `{"contact_id":"c1","name":"佐藤 花子","channel":"web","email":"h@example.com"}`, true,
			"p.created.v3", `{"contact_id":"c1","family_name":"佐藤 花子","channel":"web","email":"h@example.com"}`, `{"contact_id":"c1","channel":"web"}`},
		{"only some present", "p.created.v1", `{"contact_id":"c1","email":"h@example.com"}`, true,
			"p.created.v3", `{"contact_id":"c1","email":"h@example.com"}`, `{"contact_id":"c1"}`},
		{"no personal member present: stored as it is", "p.created.v1", `{"contact_id":"c1","channel":"web"}`, false,
			"p.created.v3", `{"contact_id":"c1","channel":"web"}`, `{"contact_id":"c1","channel":"web"}`},
		{"a type without personal members", "p.other.v1", `{"contact_id":"c1","name":"not personal here"}`, false,
			"p.other.v1", `{"contact_id":"c1","name":"not personal here"}`, `{"contact_id":"c1","name":"not personal here"}`},
		{"subject first, personal last", "p.only.v1", `{"contact_id":"c1","text":"a \"quoted\" note, with \"sealed\":\"x:y\"}"}`, true,
			"p.only.v1", `{"contact_id":"c1","text":"a \"quoted\" note, with \"sealed\":\"x:y\"}"}`, `{"contact_id":"c1"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCodec(t, newKeys(t))
			stored, err := c.Seal(ctx, "e1", tt.typ, []byte(tt.data))
			if err != nil {
				t.Fatal(err)
			}
			if codec.IsSealed(stored) != tt.sealed {
				t.Fatalf("sealed = %v, want %v: %s", codec.IsSealed(stored), tt.sealed, stored)
			}
			if tt.sealed {
				for _, plain := range []string{"佐藤", "h@example.com", "quoted"} {
					if strings.Contains(string(stored), plain) {
						t.Errorf("stored data holds %q in clear: %s", plain, stored)
					}
				}
			}
			e := eventstore.Event{ID: "e1", Stream: "contact-c1", Version: 1, Type: tt.typ, Data: stored}
			e.Hash = eventstore.ChainHash(nil, e)
			got, err := c.Open(ctx, e)
			if err != nil {
				t.Fatal(err)
			}
			if got.Type != tt.readType || !reflect.DeepEqual(members(t, got.Data), members(t, []byte(tt.read))) {
				t.Errorf("read %s %s, want %s %s", got.Type, got.Data, tt.readType, tt.read)
			}
			if typ, data := got.Stored(); typ != tt.typ || !bytes.Equal(data, stored) {
				t.Errorf("stored form not kept: %s %s", typ, data)
			}
			if err := eventstore.NewChainVerifier().Check(got); err != nil {
				t.Errorf("the opened event no longer verifies: %v", err)
			}
			if err := c.Destroy(ctx, "c1"); err != nil {
				t.Fatal(err)
			}
			after, reading, err := c.Read(ctx, e)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(members(t, after.Data), members(t, []byte(tt.erased))) {
				t.Errorf("read after erasure %s, want %s", after.Data, tt.erased)
			}
			if want := map[bool]codec.Reading{true: codec.Erased, false: codec.NoPersonalData}[tt.sealed]; reading != want {
				t.Errorf("reading %v, want %v", reading, want)
			}
			// A fresh codec (another process) reads the destroyed key from the key store.
		})
	}
}

func TestOpenRefusesAlteredOrMovedBoxes(t *testing.T) {
	ctx := context.Background()
	k := newKeys(t)
	c := newCodec(t, k)
	stored, err := c.Seal(ctx, "e1", "p.only.v1", []byte(`{"contact_id":"c1","text":"secret"}`))
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(stored)
	flipped[len(flipped)-5] ^= 1
	tests := []struct {
		name string
		e    eventstore.Event
	}{
		{"a flipped byte", eventstore.Event{ID: "e1", Type: "p.only.v1", Data: flipped}},
		{"moved to another event", eventstore.Event{ID: "e2", Type: "p.only.v1", Data: stored}},
		{"another subject named", eventstore.Event{ID: "e1", Type: "p.only.v1", Data: bytes.Replace(stored, []byte(`"c1:`), []byte(`"c2:`), 1)}},
	}
	if _, err := k.Key(ctx, "c2"); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := newCodec(t, k).Open(ctx, tt.e); err == nil {
				t.Error("opened")
			}
		})
	}
	t.Run("a lost key store is an error, not an erasure", func(t *testing.T) {
		if _, err := newCodec(t, newKeys(t)).Open(ctx, eventstore.Event{ID: "e1", Type: "p.only.v1", Data: stored}); err == nil {
			t.Error("opened without a key")
		}
	})
}

// Data sealed for an erased subject keeps no personal member.
func TestSealAfterErasureKeepsNothing(t *testing.T) {
	ctx := context.Background()
	c := newCodec(t, newKeys(t))
	if err := c.Destroy(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	stored, err := c.Seal(ctx, "e1", "p.only.v1", []byte(`{"contact_id":"c1","text":"secret"}`))
	if err != nil {
		t.Fatal(err)
	}
	if string(stored) != `{"contact_id":"c1"}` {
		t.Errorf("stored %s", stored)
	}
}

func TestStoreSealsAndOpens(t *testing.T) {
	ctx := context.Background()
	inner, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "crm.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	s := codec.NewStore(inner, newCodec(t, newKeys(t)))
	in := []eventstore.EventData{{ID: "00000000-0000-0000-0000-000000000001", Type: "p.only.v1", Data: []byte(`{"contact_id":"c1","text":"secret"}`)}}
	if _, err := s.Append(ctx, "contact-c1", eventstore.NoStream, in); err != nil {
		t.Fatal(err)
	}
	if string(in[0].Data) != `{"contact_id":"c1","text":"secret"}` {
		t.Error("Append changed the caller's data")
	}
	raw, err := inner.ReadAll(ctx, 0, 10)
	if err != nil || len(raw) != 1 || bytes.Contains(raw[0].Data, []byte("secret")) {
		t.Fatalf("stored %v %s", err, raw[0].Data)
	}
	read, err := s.ReadAll(ctx, 0, 10)
	if err != nil || string(read[0].Data) != `{"contact_id":"c1","text":"secret"}` {
		t.Fatalf("read %v %s", err, read[0].Data)
	}
	if !bytes.Equal(read[0].StoredData, raw[0].Data) || !bytes.Equal(read[0].Hash, raw[0].Hash) {
		t.Error("the stored bytes are not kept beside the reading")
	}
	byID, err := s.EventByID(ctx, in[0].ID)
	if err != nil || string(byID.Data) != string(read[0].Data) {
		t.Errorf("by id %v %s", err, byID.Data)
	}
	sub, err := s.Subscribe(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	e := <-sub.Events()
	if string(e.Data) != string(read[0].Data) {
		t.Errorf("subscribed %s", e.Data)
	}
	if err := sub.Close(); err != nil && !errors.Is(err, eventstore.ErrClosed) {
		t.Error(err)
	}
}

// A box sealed with a key kept under its subject's name (before key pools) names no key id
// and still opens, and is still erased, once the store hands out keys from a pool.
func TestBoxesWithoutKeyID(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keys.db")
	open := func(opts ...keys.Option) *codec.Codec {
		k, err := keys.OpenSQLite(ctx, path, opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = k.Close() })
		return newCodec(t, k)
	}
	old, err := open(keys.WithPool(0)).Seal(ctx, "e1", "p.only.v1", []byte(`{"contact_id":"c1","text":"secret"}`))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(old, []byte(`"sealed":"c1:`)) || bytes.Count(old, []byte(":")) != 3 { // "contact_id":, "sealed":, c1:
		t.Fatalf("old box %s", old)
	}
	c := open()
	fresh, err := c.Seal(ctx, "e2", "p.only.v1", []byte(`{"contact_id":"c2","text":"secret"}`))
	if err != nil || !bytes.Contains(fresh, []byte(`"sealed":"c2:1:`)) {
		t.Fatalf("new box %s, %v", fresh, err)
	}
	e := eventstore.Event{ID: "e1", Type: "p.only.v1", Data: old}
	if got, err := c.Open(ctx, e); err != nil || string(got.Data) != `{"contact_id":"c1","text":"secret"}` {
		t.Fatalf("old box opened: %s, %v", got.Data, err)
	}
	if err := c.Destroy(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if got, err := open().Open(ctx, e); err != nil || string(got.Data) != `{"contact_id":"c1"}` {
		t.Errorf("old box after erasure: %s, %v", got.Data, err)
	}
}

// countingKeys counts how a key store is asked for keys to seal with.
type countingKeys struct {
	keys.Keys
	key, newSubject int
}

func (k *countingKeys) Key(ctx context.Context, subject string) (keys.Key, error) {
	k.key++
	return k.Keys.Key(ctx, subject)
}

// plainKeys is a key store without KeyOfNewSubject (a KMS, say).
type plainKeys struct{ *countingKeys }

type newSubjectCountingKeys struct{ *countingKeys }

func (k newSubjectCountingKeys) KeyOfNewSubject(ctx context.Context, subject string) (keys.Key, error) {
	k.newSubject++
	return k.Keys.(keys.NewSubjectKeys).KeyOfNewSubject(ctx, subject)
}

// A subject that WithNewSubject names gets its key from KeyOfNewSubject, when the key store has
// it; any other subject, or a key store without it, goes through Key. Either way the event opens.
func TestSealNewSubject(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name          string
		hasNewSubject bool
		ctxSubject    string
		wantKey       int
		wantNew       int
	}{
		{"new subject", true, "c1", 0, 1},
		{"another subject named new", true, "c2", 1, 0},
		{"no subject named new", true, "", 1, 0},
		{"key store without KeyOfNewSubject", false, "c1", 1, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			counts := &countingKeys{Keys: newKeys(t)}
			var k keys.Keys = plainKeys{counts}
			if tt.hasNewSubject {
				k = newSubjectCountingKeys{counts}
			}
			c := newCodec(t, k)
			sctx := ctx
			if tt.ctxSubject != "" {
				sctx = codec.WithNewSubject(ctx, tt.ctxSubject)
			}
			stored, err := c.Seal(sctx, "e1", "p.only.v1", []byte(`{"contact_id":"c1","text":"secret"}`))
			if err != nil {
				t.Fatal(err)
			}
			if counts.key != tt.wantKey || counts.newSubject != tt.wantNew {
				t.Errorf("Key %d, KeyOfNewSubject %d times; want %d, %d", counts.key, counts.newSubject, tt.wantKey, tt.wantNew)
			}
			got, err := newCodec(t, k).Open(ctx, eventstore.Event{ID: "e1", Type: "p.only.v1", Data: stored})
			if err != nil || !strings.Contains(string(got.Data), `"text":"secret"`) {
				t.Errorf("open: %s, %v", got.Data, err)
			}
		})
	}
}

// Two codecs over one key store (two servers of one PostgreSQL deployment): a subject's key
// destroyed through one is still in the other's memory, which reads the data until it is
// told to forget the subject; from then on it reads the subject as erased.
func TestForgetDropsAKeyDestroyedElsewhere(t *testing.T) {
	ctx := context.Background()
	k := newKeys(t)
	here, there := newCodec(t, k), newCodec(t, k)
	stored, err := there.Seal(ctx, "e1", "p.only.v1", []byte(`{"contact_id":"c1","text":"secret"}`))
	if err != nil {
		t.Fatal(err)
	}
	e := eventstore.Event{ID: "e1", Stream: "contact-c1", Version: 1, Type: "p.only.v1", Data: stored}
	if got, _, err := there.Read(ctx, e); err != nil || !strings.Contains(string(got.Data), "secret") {
		t.Fatalf("read before the erasure: %s, %v", got.Data, err)
	}
	if err := here.Destroy(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	there.Forget("c1")
	there.Forget("never-seen") // a subject it never read: nothing to do
	got, reading, err := there.Read(ctx, e)
	if err != nil || reading != codec.Erased || strings.Contains(string(got.Data), "secret") {
		t.Errorf("read after the erasure elsewhere: %s, %v, %v", got.Data, reading, err)
	}
	if stored, err := there.Seal(ctx, "e2", "p.only.v1", []byte(`{"contact_id":"c1","text":"secret"}`)); err != nil || string(stored) != `{"contact_id":"c1"}` {
		t.Errorf("sealed after the erasure elsewhere: %s, %v", stored, err)
	}
}
