package eventstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// ChainHash is the hash of an event chained to the hash of the previous event of its stream:
// SHA-256 over prev and every recorded field but the global position (which a backend may only
// know at commit time), each length-prefixed so that no two field lists encode alike.
// A changed, removed, inserted or reordered event breaks the chain from that event on.
//
// The type and data hashed are those stored (Event.Stored), never a codec's reading of them.
// The metadata hashed is e.MetadataJSON, the stored bytes; only an event that has none (one
// built in code, never one read from a store) has EncodeMetadata(e.Metadata) hashed instead.
func ChainHash(prev []byte, e Event) []byte {
	meta := e.MetadataJSON
	if meta == nil {
		meta = EncodeMetadata(e.Metadata)
	}
	h := sha256.New()
	var n [8]byte
	field := func(b []byte) {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	num := func(v int64) {
		binary.BigEndian.PutUint64(n[:], uint64(v))
		h.Write(n[:])
	}
	typ, data := e.Stored()
	field(prev)
	field([]byte(e.ID))
	field([]byte(e.Stream))
	num(e.Version)
	field([]byte(typ))
	num(e.OccurredAt.UnixMicro())
	num(e.RecordedAt.UnixMicro())
	field(data)
	field(meta)
	return h.Sum(nil)
}

// EncodeMetadata is the metadata JSON a store writes for an appended event: encoding/json's
// encoding of m, fields in declaration order, empty ones left out.
func EncodeMetadata(m Metadata) []byte {
	b, err := json.Marshal(m)
	if err != nil { // a struct of strings always marshals
		panic(fmt.Sprintf("marshal metadata: %v", err))
	}
	return b
}

// NormalizeTime is how every backend stores a time: UTC, truncated to microseconds.
func NormalizeTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// ChainError names the first event whose hash chain does not verify.
type ChainError struct {
	Stream   string
	Version  int64
	Position int64
	EventID  string
	Problem  string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("stream %q version %d (position %d, event %s): %s: %v",
		e.Stream, e.Version, e.Position, e.EventID, e.Problem, ErrBrokenChain)
}

// Unwrap makes errors.Is(err, ErrBrokenChain) hold.
func (e *ChainError) Unwrap() error { return ErrBrokenChain }

// ChainVerifier checks events of any number of streams, fed in global order (or per stream in
// version order). It keeps the last version and hash of each stream it has seen.
type ChainVerifier struct {
	heads map[string]chainHead
	count int64
}

type chainHead struct {
	version int64
	hash    []byte
}

// NewChainVerifier returns a verifier that has seen no stream.
func NewChainVerifier() *ChainVerifier {
	return &ChainVerifier{heads: make(map[string]chainHead)}
}

// Check verifies e against the previous event of its stream and returns a *ChainError when
// the chain is broken.
func (v *ChainVerifier) Check(e Event) error {
	head := v.heads[e.Stream]
	fail := func(problem string) error {
		return &ChainError{Stream: e.Stream, Version: e.Version, Position: e.Position, EventID: e.ID, Problem: problem}
	}
	if e.Version != head.version+1 {
		return fail(fmt.Sprintf("version follows %d", head.version))
	}
	if !bytes.Equal(e.PrevHash, head.hash) {
		return fail("previous hash does not match the previous event")
	}
	if want := ChainHash(head.hash, e); !bytes.Equal(e.Hash, want) {
		return fail(fmt.Sprintf("hash %s, recomputed %s", hex.EncodeToString(e.Hash), hex.EncodeToString(want)))
	}
	v.heads[e.Stream] = chainHead{version: e.Version, hash: e.Hash}
	v.count++
	return nil
}

// Count is the number of events verified so far.
func (v *ChainVerifier) Count() int64 { return v.count }

// Streams is the number of streams seen so far.
func (v *ChainVerifier) Streams() int { return len(v.heads) }

// VerifyStream checks the hash chain of one whole stream.
func VerifyStream(ctx context.Context, s Store, stream string) (int64, error) {
	v := NewChainVerifier()
	for from := int64(1); ; {
		batch, err := s.ReadStream(ctx, stream, from, 1000)
		if err != nil {
			return v.Count(), fmt.Errorf("read stream %q: %w", stream, err)
		}
		for _, e := range batch {
			if err := v.Check(e); err != nil {
				return v.Count(), err
			}
		}
		if len(batch) < 1000 {
			return v.Count(), nil
		}
		from = batch[len(batch)-1].Version + 1
	}
}

// VerifyAll checks the hash chain of every stream by reading the whole global log, and also
// that global positions increase. progress, when not nil, is called after each batch.
func VerifyAll(ctx context.Context, s Store, progress func(verified int64)) (int64, error) {
	const batchSize = 5000
	v := NewChainVerifier()
	var last int64
	for {
		batch, err := s.ReadAll(ctx, last, batchSize)
		if err != nil {
			return v.Count(), fmt.Errorf("read log after %d: %w", last, err)
		}
		for _, e := range batch {
			if e.Position <= last {
				return v.Count(), &ChainError{Stream: e.Stream, Version: e.Version, Position: e.Position,
					EventID: e.ID, Problem: fmt.Sprintf("global position does not follow %d", last)}
			}
			if err := v.Check(e); err != nil {
				return v.Count(), err
			}
			last = e.Position
		}
		if progress != nil {
			progress(v.Count())
		}
		if len(batch) < batchSize {
			return v.Count(), nil
		}
	}
}
