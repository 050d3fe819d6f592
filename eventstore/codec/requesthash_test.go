package codec_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/eventcrm/crm/eventstore/keys"
)

// A request hash is keyed: it confirms no guess to whoever lacks the key, another process
// over the same key store checks it, and once the subject is erased nobody can compute it.
func TestRequestHash(t *testing.T) {
	ctx := context.Background()
	k := newKeys(t)
	c := newCodec(t, k)
	request := []byte("CreateContact\x00c1\x00" + `{"name":"佐藤 花子","email":"h@example.com"}`)
	guess := func() string { sum := sha256.Sum256(request); return hex.EncodeToString(sum[:16]) }()

	personal, err := c.RequestHash(ctx, "c1", request)
	if err != nil {
		t.Fatal(err)
	}
	server, err := c.RequestHash(ctx, "", request)
	if err != nil {
		t.Fatal(err)
	}
	other, err := c.RequestHash(ctx, "c2", request)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{personal, server, other} {
		if strings.Contains(h, guess) {
			t.Fatalf("hash %s holds the unkeyed hash of the request", h)
		}
	}
	if personal[strings.LastIndexByte(personal, ':'):] == other[strings.LastIndexByte(other, ':'):] {
		t.Fatalf("two subjects' keys give the same hash: %s, %s", personal, other)
	}

	again := newCodec(t, k) // another process over the same key store
	stranger := newCodec(t, newKeys(t))
	tests := []struct {
		name    string
		hash    string
		request []byte
		match   bool
		keyed   bool
	}{
		{"a subject's, the same request", personal, request, true, true},
		{"a subject's, another request", personal, []byte("CreateContact\x00c1\x00{}"), false, true},
		{"the server's, the same request", server, request, true, true},
		{"the server's, another request", server, []byte("x"), false, true},
		{"unkeyed, recorded before keys", guess, request, false, false},
	}
	for _, tc := range tests {
		for _, cdc := range []struct {
			name  string
			match func(context.Context, string, []byte) (bool, bool, error)
		}{{"same codec", c.MatchRequestHash}, {"another codec", again.MatchRequestHash}} {
			match, keyed, err := cdc.match(ctx, tc.hash, tc.request)
			if err != nil || match != tc.match || keyed != tc.keyed {
				t.Errorf("%s, %s: match %v keyed %v, %v; want %v %v", tc.name, cdc.name, match, keyed, err, tc.match, tc.keyed)
			}
		}
	}
	if match, _, err := stranger.MatchRequestHash(ctx, server, request); err != nil || match {
		t.Errorf("the server's hash, by a codec over another key store: match %v, %v", match, err)
	}

	if err := c.Destroy(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if h, err := c.RequestHash(ctx, "c1", request); !errors.Is(err, keys.ErrDestroyed) {
		t.Fatalf("hash of an erased subject's request: %q, %v; want ErrDestroyed", h, err)
	}
	for _, cdc := range []struct {
		name  string
		match func(context.Context, string, []byte) (bool, bool, error)
	}{{"same codec", c.MatchRequestHash}, {"another codec", newCodec(t, k).MatchRequestHash}} {
		if match, _, err := cdc.match(ctx, personal, request); !errors.Is(err, keys.ErrDestroyed) || match {
			t.Errorf("%s: an erased subject's hash: match %v, %v; want ErrDestroyed", cdc.name, match, err)
		}
	}
	if match, _, err := c.MatchRequestHash(ctx, other, request); err != nil || !match {
		t.Errorf("another subject's hash after the erasure: match %v, %v", match, err)
	}
}
