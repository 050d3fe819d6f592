package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// ErrBadSignature: a checkpoint's signature does not verify with the key given, or it names
// another key.
var ErrBadSignature = errors.New("bad checkpoint signature")

// TimestampFormat is the one format of a checkpoint's timestamp: UTC with microseconds, so
// the signed text has exactly one spelling.
const TimestampFormat = "2006-01-02T15:04:05.000000Z"

// Checkpoint is a signed statement of the whole log at one moment: its first Size events,
// the last of them at LastPosition, have the Merkle tree hash RootHash.
type Checkpoint struct {
	Size         int64  `json:"size"`
	LastPosition int64  `json:"last_position"`
	RootHash     Hash   `json:"root_hash"`
	Timestamp    string `json:"timestamp"`
	KeyID        string `json:"key_id"`
	// Signature is the Ed25519 signature of SignedText, base64 in JSON.
	Signature []byte `json:"signature"`
}

// SignedText is what the signature covers: six lines of text, each ending in a newline, so an
// independent verifier rebuilds it with a format string.
func (c Checkpoint) SignedText() []byte {
	var b bytes.Buffer
	b.WriteString("eventcrm audit checkpoint v1\n")
	b.WriteString("size " + strconv.FormatInt(c.Size, 10) + "\n")
	b.WriteString("last_position " + strconv.FormatInt(c.LastPosition, 10) + "\n")
	b.WriteString("root_hash " + c.RootHash.String() + "\n")
	b.WriteString("timestamp " + c.Timestamp + "\n")
	b.WriteString("key_id " + c.KeyID + "\n")
	return b.Bytes()
}

// Time returns the checkpoint's timestamp.
func (c Checkpoint) Time() (time.Time, error) { return time.Parse(TimestampFormat, c.Timestamp) }

// ParseCheckpoint reads a checkpoint as JSON.
func ParseCheckpoint(b []byte) (Checkpoint, error) {
	var c Checkpoint
	if err := json.Unmarshal(b, &c); err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint: %w", err)
	}
	if c.Size < 0 || c.LastPosition < 0 || c.KeyID == "" || len(c.Signature) == 0 {
		return Checkpoint{}, errors.New("checkpoint: want size, last_position, root_hash, timestamp, key_id and signature")
	}
	if _, err := c.Time(); err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint timestamp: %w", err)
	}
	return c, nil
}

// PublicKey verifies checkpoints.
type PublicKey struct {
	key ed25519.PublicKey
}

// NewPublicKey wraps a raw Ed25519 public key.
func NewPublicKey(raw []byte) (PublicKey, error) {
	if len(raw) != ed25519.PublicKeySize {
		return PublicKey{}, fmt.Errorf("public key of %d bytes: want %d", len(raw), ed25519.PublicKeySize)
	}
	return PublicKey{key: bytes.Clone(raw)}, nil
}

// ID names the key: the first 8 bytes of the SHA-256 of the raw public key, in hex.
func (k PublicKey) ID() string {
	sum := sha256.Sum256(k.key)
	return hex.EncodeToString(sum[:8])
}

// Raw returns the 32 bytes of the key.
func (k PublicKey) Raw() []byte { return bytes.Clone(k.key) }

// PEM returns the key as a PEM "PUBLIC KEY" (PKIX), which openssl reads.
func (k PublicKey) PEM() string {
	der, err := x509.MarshalPKIXPublicKey(k.key)
	if err != nil { // an Ed25519 key always marshals
		panic(fmt.Sprintf("marshal public key: %v", err))
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// KeyInfo is the public key as served at /v1/audit/key and printed by `crm audit key`.
type KeyInfo struct {
	Algorithm string `json:"algorithm"`
	KeyID     string `json:"key_id"`
	PublicKey []byte `json:"public_key"` // raw 32 bytes, base64 in JSON
	PEM       string `json:"public_key_pem"`
}

// Info describes the key.
func (k PublicKey) Info() KeyInfo {
	return KeyInfo{Algorithm: "ed25519", KeyID: k.ID(), PublicKey: k.Raw(), PEM: k.PEM()}
}

// Verify checks the checkpoint's signature; ErrBadSignature when it does not hold.
func (k PublicKey) Verify(c Checkpoint) error {
	if len(k.key) != ed25519.PublicKeySize {
		return fmt.Errorf("no public key: %w", ErrBadSignature)
	}
	if c.KeyID != k.ID() {
		return fmt.Errorf("checkpoint signed by key %s, not by %s: %w", c.KeyID, k.ID(), ErrBadSignature)
	}
	if !ed25519.Verify(k.key, c.SignedText(), c.Signature) {
		return fmt.Errorf("checkpoint of size %d: signature does not verify with key %s: %w", c.Size, k.ID(), ErrBadSignature)
	}
	return nil
}

// ParsePublicKey reads a public key given as the JSON of KeyInfo, a PEM public key, or the
// PEM private key file itself (audit.key).
func ParsePublicKey(b []byte) (PublicKey, error) {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '{' {
		var info KeyInfo
		if err := json.Unmarshal(b, &info); err != nil {
			return PublicKey{}, fmt.Errorf("public key JSON: %w", err)
		}
		if info.Algorithm != "" && info.Algorithm != "ed25519" {
			return PublicKey{}, fmt.Errorf("public key algorithm %q: want ed25519", info.Algorithm)
		}
		k, err := NewPublicKey(info.PublicKey)
		if err != nil {
			return PublicKey{}, err
		}
		if info.KeyID != "" && info.KeyID != k.ID() {
			return PublicKey{}, fmt.Errorf("public key JSON: key_id %s does not name its key (%s)", info.KeyID, k.ID())
		}
		return k, nil
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return PublicKey{}, errors.New("public key: want the JSON of /v1/audit/key or a PEM key")
	}
	switch block.Type {
	case "PUBLIC KEY":
		pub, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return PublicKey{}, fmt.Errorf("public key: %w", err)
		}
		raw, ok := pub.(ed25519.PublicKey)
		if !ok {
			return PublicKey{}, fmt.Errorf("public key is %T, not Ed25519", pub)
		}
		return NewPublicKey(raw)
	case "PRIVATE KEY":
		s, err := parsePrivate(block)
		if err != nil {
			return PublicKey{}, err
		}
		return s.Public(), nil
	default:
		return PublicKey{}, fmt.Errorf("public key: PEM block %q", block.Type)
	}
}

// Signer signs checkpoints with the server's Ed25519 key.
type Signer struct {
	key ed25519.PrivateKey
	pub PublicKey
	now func() time.Time
}

// NewSigner wraps a private key; now stamps checkpoints (time.Now when nil).
func NewSigner(key ed25519.PrivateKey, now func() time.Time) *Signer {
	if now == nil {
		now = time.Now
	}
	return &Signer{key: key, pub: PublicKey{key: key.Public().(ed25519.PublicKey)}, now: now}
}

// Public returns the key that verifies this signer's checkpoints.
func (s *Signer) Public() PublicKey { return s.pub }

// Sign stamps and signs a checkpoint of the tree head.
func (s *Signer) Sign(h Head) Checkpoint {
	c := Checkpoint{Size: h.Size, LastPosition: h.LastPosition, RootHash: h.Root,
		Timestamp: s.now().UTC().Format(TimestampFormat), KeyID: s.pub.ID()}
	c.Signature = ed25519.Sign(s.key, c.SignedText())
	return c
}

// KeyFile is the name of the signing key in the data directory.
const KeyFile = "audit.key"

// LoadOrCreateKey returns the signer of the key in dir/audit.key, creating the key (mode
// 0600) when there is none; created tells whether it was just made. A key file others may
// read is refused: whoever reads it can sign checkpoints of a rewritten log.
func LoadOrCreateKey(dir string) (s *Signer, created bool, err error) {
	return LoadOrCreateKeyFile(filepath.Join(dir, KeyFile))
}

// LoadOrCreateKeyFile is LoadOrCreateKey of a key file named by its path (the deployment's
// one key, given to every server), with the same checks; the file's directory is created
// (mode 0700) when missing.
func LoadOrCreateKeyFile(path string) (s *Signer, created bool, err error) {
	dir := filepath.Dir(path)
	s, err = loadKey(path)
	if err == nil {
		return s, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, false, fmt.Errorf("generate audit key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, false, fmt.Errorf("encode audit key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("create data directory: %w", err)
	}
	// O_EXCL: two processes starting at once must not each write a key of their own.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		s, err := loadKey(path)
		return s, false, err
	}
	if err != nil {
		return nil, false, fmt.Errorf("create audit key: %w", err)
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("write audit key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("write audit key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, false, fmt.Errorf("write audit key: %w", err)
	}
	return NewSigner(priv, nil), true, nil
}

func loadKey(path string) (*Signer, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("audit key: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("audit key %s has mode %v: others may read it; run chmod 600 %s", path, st.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("audit key: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("audit key %s: not a PEM private key", path)
	}
	s, err := parsePrivate(block)
	if err != nil {
		return nil, fmt.Errorf("audit key %s: %w", path, err)
	}
	return s, nil
}

func parsePrivate(block *pem.Block) (*Signer, error) {
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("private key is %T, not Ed25519", key)
	}
	return NewSigner(priv, nil), nil
}
