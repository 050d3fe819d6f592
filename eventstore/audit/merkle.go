package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
)

// Hash is a SHA-256 digest. It reads and writes JSON as lower-case hex.
type Hash [sha256.Size]byte

// String returns the hash in lower-case hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// MarshalText implements encoding.TextMarshaler.
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler: exactly 64 hex digits.
func (h *Hash) UnmarshalText(b []byte) error {
	if len(b) != 2*len(h) {
		return fmt.Errorf("hash %q: want %d hex digits", b, 2*len(h))
	}
	if _, err := hex.Decode(h[:], b); err != nil {
		return fmt.Errorf("hash %q: %w", b, err)
	}
	return nil
}

// ParseHash reads a hash in hex.
func ParseHash(s string) (Hash, error) {
	var h Hash
	err := h.UnmarshalText([]byte(s))
	return h, err
}

// RFC 6962 domain separation: a leaf can never be taken for an interior node.
const (
	leafPrefix = 0x00
	nodePrefix = 0x01
)

// LeafHash is the RFC 6962 hash of a leaf: SHA-256(0x00 || leaf).
func LeafHash(leaf []byte) Hash {
	h := sha256.New()
	h.Write([]byte{leafPrefix})
	h.Write(leaf)
	var out Hash
	h.Sum(out[:0])
	return out
}

// NodeHash is the RFC 6962 hash of an interior node: SHA-256(0x01 || left || right).
func NodeHash(left, right Hash) Hash {
	var buf [1 + 2*sha256.Size]byte
	buf[0] = nodePrefix
	copy(buf[1:], left[:])
	copy(buf[1+sha256.Size:], right[:])
	return sha256.Sum256(buf[:])
}

// EmptyRoot is the root of the tree of no leaves: SHA-256 of the empty string.
func EmptyRoot() Hash { return sha256.Sum256(nil) }

// Errors of proofs and verification. Match them with errors.Is.
var (
	// ErrInvalidProof: a proof does not lead from its leaf (or older root) to the root.
	ErrInvalidProof = errors.New("invalid proof")
	// ErrOutOfRange: a leaf index or tree size the tree does not have.
	ErrOutOfRange = errors.New("out of range")
)

// RootOf computes the Merkle tree hash (RFC 6962 section 2.1) of leaf hashes in memory.
func RootOf(leaves []Hash) Hash {
	var f Frontier
	for _, l := range leaves {
		f.Append(l)
	}
	return f.Root()
}

// Frontier is the right edge of a tree grown one leaf at a time: the roots of its perfect
// subtrees, one per bit set in its size, so it holds at most 64 hashes whatever the size.
// It is how a whole log is hashed in bounded memory.
type Frontier struct {
	size  int64
	nodes []Hash // roots of perfect subtrees, largest (leftmost) first
}

// Size is the number of leaves appended.
func (f *Frontier) Size() int64 { return f.size }

// Append adds the next leaf hash.
func (f *Frontier) Append(leaf Hash) {
	h := leaf
	// Each trailing one bit of the old size is a perfect subtree of the new leaf's size.
	for s := f.size; s&1 == 1; s >>= 1 {
		h = NodeHash(f.nodes[len(f.nodes)-1], h)
		f.nodes = f.nodes[:len(f.nodes)-1]
	}
	f.nodes = append(f.nodes, h)
	f.size++
}

// Root is the Merkle tree hash of the leaves appended so far. RFC 6962 splits a tree at the
// largest power of two below its size, so the root folds the perfect subtrees from the right.
func (f *Frontier) Root() Hash {
	if len(f.nodes) == 0 {
		return EmptyRoot()
	}
	acc := f.nodes[len(f.nodes)-1]
	for i := len(f.nodes) - 2; i >= 0; i-- {
		acc = NodeHash(f.nodes[i], acc)
	}
	return acc
}

// rangeHasher gives the Merkle tree hash of the leaves [lo, hi) of a tree. Proofs only ask
// for ranges RFC 6962's recursion produces: lo is a multiple of the smallest power of two
// not below hi-lo, so a range is either a perfect, aligned subtree or the right edge of one.
type rangeHasher interface {
	hashRange(ctx context.Context, lo, hi int64) (Hash, error)
}

// split is RFC 6962's k: the largest power of two smaller than n (n > 1).
func split(n int64) int64 { return 1 << (bits.Len64(uint64(n-1)) - 1) }

// inclusionPath is PATH(index, D[0:size]) of RFC 6962 section 2.1.1: the sibling hashes
// from the leaf up to the root.
func inclusionPath(ctx context.Context, h rangeHasher, index, size int64) ([]Hash, error) {
	if index < 0 || index >= size {
		return nil, fmt.Errorf("leaf %d of a tree of %d: %w", index, size, ErrOutOfRange)
	}
	var path []Hash
	var walk func(lo, hi int64) error
	walk = func(lo, hi int64) error {
		if hi-lo == 1 {
			return nil
		}
		k := split(hi - lo)
		var (
			sib Hash
			err error
		)
		if index < lo+k {
			if err = walk(lo, lo+k); err == nil {
				sib, err = h.hashRange(ctx, lo+k, hi)
			}
		} else {
			if err = walk(lo+k, hi); err == nil {
				sib, err = h.hashRange(ctx, lo, lo+k)
			}
		}
		if err != nil {
			return err
		}
		path = append(path, sib)
		return nil
	}
	if err := walk(0, size); err != nil {
		return nil, err
	}
	return path, nil
}

// consistencyPath is PROOF(from, D[0:to]) of RFC 6962 section 2.1.2. It is empty when from
// is 0 or equals to: every tree extends the empty one, and itself.
func consistencyPath(ctx context.Context, h rangeHasher, from, to int64) ([]Hash, error) {
	if from < 0 || from > to {
		return nil, fmt.Errorf("consistency of %d with %d: %w", from, to, ErrOutOfRange)
	}
	if from == 0 || from == to {
		return nil, nil
	}
	var proof []Hash
	var sub func(m, lo, hi int64, whole bool) error
	sub = func(m, lo, hi int64, whole bool) error {
		n := hi - lo
		if m == n {
			if whole {
				return nil // the old root itself: the verifier has it
			}
			r, err := h.hashRange(ctx, lo, hi)
			if err != nil {
				return err
			}
			proof = append(proof, r)
			return nil
		}
		k := split(n)
		var (
			r   Hash
			err error
		)
		if m <= k {
			if err = sub(m, lo, lo+k, whole); err == nil {
				r, err = h.hashRange(ctx, lo+k, hi)
			}
		} else {
			if err = sub(m-k, lo+k, hi, false); err == nil {
				r, err = h.hashRange(ctx, lo, lo+k)
			}
		}
		if err != nil {
			return err
		}
		proof = append(proof, r)
		return nil
	}
	if err := sub(from, 0, to, true); err != nil {
		return nil, err
	}
	return proof, nil
}

// VerifyInclusion checks that leaf is the leaf at index of the tree of size leaves whose
// root is root, by the algorithm of RFC 9162 section 2.1.3.2. It returns ErrInvalidProof
// when it is not.
func VerifyInclusion(leaf Hash, index, size int64, path []Hash, root Hash) error {
	if index < 0 || index >= size {
		return fmt.Errorf("leaf index %d in a tree of %d: %w", index, size, ErrInvalidProof)
	}
	fn, sn := uint64(index), uint64(size-1)
	r := leaf
	for _, p := range path {
		if sn == 0 {
			return fmt.Errorf("audit path longer than the tree is deep: %w", ErrInvalidProof)
		}
		if fn&1 == 1 || fn == sn {
			r = NodeHash(p, r)
			for fn&1 == 0 && fn != 0 {
				fn >>= 1
				sn >>= 1
			}
		} else {
			r = NodeHash(r, p)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 {
		return fmt.Errorf("audit path shorter than the tree is deep: %w", ErrInvalidProof)
	}
	if r != root {
		return fmt.Errorf("audit path leads to root %s, not %s: %w", r, root, ErrInvalidProof)
	}
	return nil
}

// VerifyConsistency checks that the tree of size to with root toRoot extends the tree of
// size from with root fromRoot, by the algorithm of RFC 9162 section 2.1.4.2. From 0 every
// tree is consistent with an empty proof; equal sizes need equal roots and an empty proof.
func VerifyConsistency(from, to int64, fromRoot, toRoot Hash, proof []Hash) error {
	switch {
	case from < 0 || from > to:
		return fmt.Errorf("consistency of size %d with size %d: %w", from, to, ErrInvalidProof)
	case from == 0:
		if len(proof) != 0 {
			return fmt.Errorf("non-empty proof from the empty tree: %w", ErrInvalidProof)
		}
		return nil
	case from == to:
		if len(proof) != 0 || fromRoot != toRoot {
			return fmt.Errorf("trees of equal size %d differ: %w", from, ErrInvalidProof)
		}
		return nil
	case len(proof) == 0:
		return fmt.Errorf("empty consistency proof: %w", ErrInvalidProof)
	}
	path := proof
	if from&(from-1) == 0 { // a power of two: the old root is a node of the new tree
		path = append([]Hash{fromRoot}, proof...)
	}
	fn, sn := uint64(from-1), uint64(to-1)
	for fn&1 == 1 {
		fn >>= 1
		sn >>= 1
	}
	fr, sr := path[0], path[0]
	for _, c := range path[1:] {
		if sn == 0 {
			return fmt.Errorf("consistency proof too long: %w", ErrInvalidProof)
		}
		if fn&1 == 1 || fn == sn {
			fr = NodeHash(c, fr)
			sr = NodeHash(c, sr)
			for fn&1 == 0 && fn != 0 {
				fn >>= 1
				sn >>= 1
			}
		} else {
			sr = NodeHash(sr, c)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 {
		return fmt.Errorf("consistency proof too short: %w", ErrInvalidProof)
	}
	if fr != fromRoot {
		return fmt.Errorf("consistency proof leads to old root %s, not %s: %w", fr, fromRoot, ErrInvalidProof)
	}
	if sr != toRoot {
		return fmt.Errorf("consistency proof leads to new root %s, not %s: %w", sr, toRoot, ErrInvalidProof)
	}
	return nil
}

// memoryTree hashes ranges of leaf hashes held in memory: the reference the stored tree is
// tested against, and what verifiers use for a tile.
type memoryTree []Hash

func (m memoryTree) hashRange(_ context.Context, lo, hi int64) (Hash, error) {
	if lo < 0 || hi > int64(len(m)) || lo >= hi {
		return Hash{}, fmt.Errorf("leaves [%d, %d) of %d: %w", lo, hi, len(m), ErrOutOfRange)
	}
	return RootOf(m[lo:hi]), nil
}
