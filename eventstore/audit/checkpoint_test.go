package audit

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeyIsCreatedOnceAndKeptPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s, created, err := LoadOrCreateKey(dir)
	if err != nil || !created {
		t.Fatalf("create: %v, created %v", err, created)
	}
	st, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v", st.Mode().Perm())
	}
	again, created, err := LoadOrCreateKey(dir)
	if err != nil || created || again.Public().ID() != s.Public().ID() {
		t.Fatalf("load: %v, created %v, key %s then %s", err, created, s.Public().ID(), again.Public().ID())
	}
	if err := os.Chmod(filepath.Join(dir, KeyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateKey(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a key others may read: %v", err)
	}
}

func TestPublicKeyForms(t *testing.T) {
	dir := t.TempDir()
	s, _, err := LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	info, err := json.Marshal(s.Public().Info())
	if err != nil {
		t.Fatal(err)
	}
	private, err := os.ReadFile(filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		in   string
		ok   bool
	}{
		{"the JSON of /v1/audit/key", string(info), true},
		{"PEM public key", s.Public().PEM(), true},
		{"the key file", string(private), true},
		{"JSON whose key id names another key", strings.Replace(string(info), s.Public().ID(), "0000000000000000", 1), false},
		{"JSON of another algorithm", strings.Replace(string(info), "ed25519", "rsa", 1), false},
		{"hex", "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", false},
		{"empty", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := ParsePublicKey([]byte(tc.in))
			if tc.ok != (err == nil) {
				t.Fatalf("parse: %v", err)
			}
			if tc.ok && k.ID() != s.Public().ID() {
				t.Fatalf("key %s, want %s", k.ID(), s.Public().ID())
			}
		})
	}
}

func TestCheckpointRoundTripsThroughJSON(t *testing.T) {
	s := testSigner(3)
	cp := s.Sign(Head{Size: 12, LastPosition: 15, Root: LeafHash([]byte("r"))})
	b, err := json.Marshal(cp)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseCheckpoint(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Public().Verify(back); err != nil {
		t.Fatal(err)
	}
	want := "eventcrm audit checkpoint v1\nsize 12\nlast_position 15\nroot_hash " + cp.RootHash.String() +
		"\ntimestamp 2025-01-02T03:04:05.000006Z\nkey_id " + s.Public().ID() + "\n"
	if got := string(back.SignedText()); got != want {
		t.Fatalf("signed text\n%s\nwant\n%s", got, want)
	}
	if _, err := ParseCheckpoint([]byte(`{"size":1}`)); err == nil {
		t.Fatal("parsed a checkpoint without signature")
	}
	if err := testSigner(4).Public().Verify(back); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("another key: %v", err)
	}
}
