package commands_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/codec"
	"github.com/eventcrm/crm/eventstore/keys"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// sealing is a store through a codec over a key store, as the server runs them.
type sealing struct {
	raw   eventstore.Store // beneath the codec: what is stored
	store *codec.Store
	codec *codec.Codec
}

func newSealing(t *testing.T, path, dir string) sealing {
	t.Helper()
	c := projectiontest.SealingCodec(t, dir)
	raw := openStore(t, path)
	return sealing{raw: raw, store: codec.NewStore(raw, c), codec: c}
}

func (s sealing) handler() *commands.Handler {
	return commands.NewHandler(s.store, commands.WithShredder(s.codec), commands.WithRequestKeys(s.codec))
}

// request is what the request hash of a command without metadata is of.
func request(t *testing.T, name, target string, body any) []byte {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte(name+"\x00"+target+"\x00"), b...)
}

// The request hash of a command that holds a contact's name, email or phone is keyed by the
// contact's key: the log confirms no guess of them, a retry is recognised as before, and once
// the contact is erased nobody can compute the hash again, nor tell a retry from another
// request under its key.
func TestRequestHashOfPersonalDataIsKeyedByTheSubject(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "crm.db")
	s := newSealing(t, path, dir)
	h := s.handler()
	key := func(k string) commands.Meta { return commands.Meta{Actor: "alice", IdempotencyKey: k} }

	create := commands.CreateContact{Name: "Yui Sato", Email: "yui@example.com", Phone: "+81 90 1234 5678", Channel: "web_form"}
	created, err := h.CreateContact(ctx, key("create"), create)
	if err != nil {
		t.Fatal(err)
	}
	name := "Yui Tanaka"
	update := commands.UpdateContact{ContactID: created.ID, Name: &name}
	updated, err := h.UpdateContact(ctx, key("update"), update)
	if err != nil {
		t.Fatal(err)
	}
	otherName := "Yui Suzuki"
	type send func(*commands.Handler, commands.Meta) (commands.Result, error)
	tests := []struct {
		name    string
		key     string
		version int64
		body    any
		retry   send
		another send // the same key, another body
	}{
		{"CreateContact", "create", created.Version, create,
			func(h *commands.Handler, m commands.Meta) (commands.Result, error) {
				return h.CreateContact(ctx, m, create)
			},
			func(h *commands.Handler, m commands.Meta) (commands.Result, error) {
				other := create
				other.Email = "yui.sato@example.com"
				return h.CreateContact(ctx, m, other)
			}},
		{"UpdateContact", "update", updated.Version, update,
			func(h *commands.Handler, m commands.Meta) (commands.Result, error) {
				return h.UpdateContact(ctx, m, update)
			},
			func(h *commands.Handler, m commands.Meta) (commands.Result, error) {
				return h.UpdateContact(ctx, m, commands.UpdateContact{ContactID: created.ID, Name: &otherName})
			}},
	}
	hashes := map[string]string{}
	for _, tc := range tests {
		stored, err := s.raw.ReadStream(ctx, contact.StreamName(created.ID), tc.version, 1)
		if err != nil {
			t.Fatal(err)
		}
		hash := stored[0].Metadata.RequestHash
		hashes[tc.name] = hash
		guess := legacyHash(t, tc.name, created.ID, tc.body)
		if hash == "" || strings.Contains(hash, guess) {
			t.Errorf("%s: stored request hash %q confirms the guess %s", tc.name, hash, guess)
		}
		if res, err := tc.retry(h, key(tc.key)); err != nil || !res.Replayed {
			t.Errorf("%s: retry = %+v, %v; want the replay", tc.name, res, err)
		}
		if res, err := tc.another(h, key(tc.key)); !errors.Is(err, commands.ErrIdempotencyConflict) {
			t.Errorf("%s: another body = %+v, %v; want ErrIdempotencyConflict", tc.name, res, err)
		}
	}

	// A request without personal data is keyed by the server's key, which no erasure destroys.
	phase := commands.ChangePhase{ContactID: created.ID, Phase: "approach"}
	if _, err := h.ChangePhase(ctx, key("phase"), phase); err != nil {
		t.Fatal(err)
	}

	if _, err := h.EraseContact(ctx, commands.Meta{Actor: "admin"}, commands.EraseContact{ContactID: created.ID, Reason: "request 12"}); err != nil {
		t.Fatal(err)
	}
	fresh := newSealing(t, path, dir) // another process, over the same key store
	for _, tc := range tests {
		for _, c := range []*codec.Codec{s.codec, fresh.codec} {
			if match, _, err := c.MatchRequestHash(ctx, hashes[tc.name], request(t, tc.name, created.ID, tc.body)); !errors.Is(err, keys.ErrDestroyed) || match {
				t.Errorf("%s after the erasure: the hash of the request matches %v, %v; want ErrDestroyed", tc.name, match, err)
			}
		}
		// Nothing tells the request recorded from another one any more: both replay.
		for _, h := range []*commands.Handler{h, fresh.handler()} {
			for what, send := range map[string]send{"the same body": tc.retry, "another body": tc.another} {
				if res, err := send(h, key(tc.key)); err != nil || !res.Replayed || res.Version != tc.version {
					t.Errorf("%s after the erasure, %s: %+v, %v; want the replay", tc.name, what, res, err)
				}
			}
		}
	}
	if h, err := fresh.codec.RequestHash(ctx, created.ID, request(t, "CreateContact", created.ID, create)); !errors.Is(err, keys.ErrDestroyed) {
		t.Errorf("the hash computed again after the erasure: %q, %v; want ErrDestroyed", h, err)
	}
	for _, h := range []*commands.Handler{h, fresh.handler()} {
		if res, err := h.ChangePhase(ctx, key("phase"), phase); err != nil || !res.Replayed {
			t.Errorf("a retry without personal data after the erasure: %+v, %v; want the replay", res, err)
		}
		if res, err := h.ChangePhase(ctx, key("phase"), commands.ChangePhase{ContactID: created.ID, Phase: "discovery"}); !errors.Is(err, commands.ErrIdempotencyConflict) {
			t.Errorf("another request without personal data after the erasure: %+v, %v; want ErrIdempotencyConflict", res, err)
		}
	}
}

// Hashes recorded before hashes were keyed stay as they are, and retries of their requests are
// recognised as they were: the unkeyed hash of the request, or of its body alone.
func TestRequestHashRecordedUnkeyedIsRecognised(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s := newSealing(t, filepath.Join(dir, "crm.db"), dir)
	h := s.handler()
	given := commands.Meta{Reason: "met at the fair", CorrelationID: "corr-1"}
	tests := []struct {
		name         string
		old          func(t *testing.T, key string, body commands.CreateContact) *commands.Handler
		first, retry commands.Meta
		retryEmail   string // "" keeps the first one's
		wantConflict bool
	}{
		{"unkeyed, the same request", unkeyed(s), given, given, "", false},
		{"unkeyed, another body", unkeyed(s), given, given, "yui.sato@example.com", true},
		{"unkeyed, another reason", unkeyed(s), given, commands.Meta{Reason: "cold call", CorrelationID: "corr-1"}, "", true},
		{"of the body alone, the same request", bodyAlone(s), commands.Meta{}, commands.Meta{}, "", false},
		{"of the body alone, another body", bodyAlone(s), commands.Meta{}, commands.Meta{}, "yui.sato@example.com", true},
	}
	for _, tc := range tests {
		body := commands.CreateContact{Name: "Yui Sato", Email: "yui@example.com", Channel: "web_form"}
		first, err := tc.old(t, tc.name, body).CreateContact(ctx, keyed(tc.first, tc.name), body)
		if err != nil {
			t.Fatalf("%s: first: %v", tc.name, err)
		}
		if tc.retryEmail != "" {
			body.Email = tc.retryEmail
		}
		again, err := h.CreateContact(ctx, keyed(tc.retry, tc.name), body)
		if tc.wantConflict {
			if !errors.Is(err, commands.ErrIdempotencyConflict) {
				t.Errorf("%s: retry = %+v, %v; want ErrIdempotencyConflict", tc.name, again, err)
			}
		} else if err != nil || !again.Replayed || again.ID != first.ID || again.Version != first.Version {
			t.Errorf("%s: retry = %+v, %v; want the replay of %+v", tc.name, again, err, first)
		}
	}
}

// unkeyed is a handler as it was before hashes were keyed: it records the unkeyed hash of the
// request.
func unkeyed(s sealing) func(*testing.T, string, commands.CreateContact) *commands.Handler {
	return func(*testing.T, string, commands.CreateContact) *commands.Handler {
		return commands.NewHandler(s.store, commands.WithCacheSize(0))
	}
}

// bodyAlone is a handler as it was before the given metadata was part of the hash: it records
// the unkeyed hash of the name, target and body.
func bodyAlone(s sealing) func(*testing.T, string, commands.CreateContact) *commands.Handler {
	return func(t *testing.T, key string, body commands.CreateContact) *commands.Handler {
		hash := legacyHash(t, "CreateContact", commands.CreatedID("alice", key), body)
		return commands.NewHandler(legacyStore{s.store, hash}, commands.WithCacheSize(0))
	}
}

// After an erasure nothing can compare a body with the one recorded under an idempotency key
// of the person's, and a retry of that request replays whatever its body. A request of
// another kind, or about another contact, deal or account, sent under the same key is no
// retry of it: it is refused as before, not answered with a result it never had.
func TestRequestAfterTheErasureOfAnotherKindUnderItsKeyConflicts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s := newSealing(t, filepath.Join(dir, "crm.db"), dir)
	h := s.handler()
	key := func(k string) commands.Meta { return commands.Meta{Actor: "alice", IdempotencyKey: k} }

	created, err := h.CreateContact(ctx, key("create"), commands.CreateContact{Name: "Yui Sato", Channel: "web_form"})
	if err != nil {
		t.Fatal(err)
	}
	note := commands.AddNote{ContactID: created.ID, Text: "prefers calls"}
	if _, err := h.AddNote(ctx, key("note"), note); err != nil {
		t.Fatal(err)
	}
	opened, err := h.OpenDeal(ctx, commands.Meta{Actor: "alice"}, commands.OpenDeal{ContactID: created.ID, Title: "rollout", Amount: 100, Currency: "JPY"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.EraseContact(ctx, commands.Meta{Actor: "admin"}, commands.EraseContact{ContactID: created.ID, Reason: "request 12"}); err != nil {
		t.Fatal(err)
	}
	// Recorded after the erasure: no hash at all.
	lose := commands.LoseDeal{DealID: opened.ID, Reason: "price", Note: "went with a rival"}
	lost, err := h.LoseDeal(ctx, key("lose"), lose)
	if err != nil {
		t.Fatal(err)
	}
	other, err := h.CreateContact(ctx, commands.Meta{Actor: "alice"}, commands.CreateContact{Name: "Ken Mori", Channel: "web_form"})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		send     func() (commands.Result, error)
		conflict bool
	}{
		{"the note again, another text", func() (commands.Result, error) {
			return h.AddNote(ctx, key("note"), commands.AddNote{ContactID: created.ID, Text: "prefers mail"})
		}, false},
		{"the loss again, another note", func() (commands.Result, error) {
			return h.LoseDeal(ctx, key("lose"), commands.LoseDeal{DealID: opened.ID, Reason: "price", Note: "too dear"})
		}, false},
		{"the note's key, a note on another contact", func() (commands.Result, error) {
			return h.AddNote(ctx, key("note"), commands.AddNote{ContactID: other.ID, Text: "prefers calls"})
		}, true},
		{"the note's key, a phase change of another contact", func() (commands.Result, error) {
			return h.ChangePhase(ctx, key("note"), commands.ChangePhase{ContactID: other.ID, Phase: "approach"})
		}, true},
		{"the note's key, a touchpoint on the same contact", func() (commands.Result, error) {
			return h.RecordTouchpoint(ctx, key("note"), commands.RecordTouchpoint{ContactID: created.ID, Kind: "call", Note: "prefers calls"})
		}, true},
		{"the creation's key, the contact's details changed", func() (commands.Result, error) {
			name := "Yui Sato"
			return h.UpdateContact(ctx, key("create"), commands.UpdateContact{ContactID: created.ID, Name: &name})
		}, true},
		{"the creation again, another name", func() (commands.Result, error) {
			return h.CreateContact(ctx, key("create"), commands.CreateContact{Name: "Yui Satou", Channel: "web_form"})
		}, false},
		{"the creation's key, an account", func() (commands.Result, error) {
			return h.CreateAccount(ctx, key("create"), commands.CreateAccount{Name: "Acme"})
		}, true},
		{"the loss's key, the deal reopened", func() (commands.Result, error) {
			return h.ReopenDeal(ctx, key("lose"), commands.ReopenDeal{DealID: opened.ID})
		}, true},
	}
	for _, tc := range tests {
		res, err := tc.send()
		switch {
		case tc.conflict && !errors.Is(err, commands.ErrIdempotencyConflict):
			t.Errorf("%s: %+v, %v; want ErrIdempotencyConflict", tc.name, res, err)
		case !tc.conflict && (err != nil || !res.Replayed):
			t.Errorf("%s: %+v, %v; want the replay", tc.name, res, err)
		}
	}
	if d, err := h.Deal(ctx, opened.ID, commands.At{}); err != nil || d.IsOpen() {
		t.Errorf("the deal after the requests: %+v, %v; want it lost (version %d)", d, err, lost.Version)
	}
}
