package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// The Certificate Transparency reference leaves and tree heads (RFC 6962 test vectors): a
// tree no other implementation agrees with proves nothing to anyone.
var (
	ctLeaves = []string{"", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"}
	ctRoots  = []string{
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
		"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
		"aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
		"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
		"4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
		"76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
		"ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
		"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
	}
)

func mustHash(t *testing.T, s string) Hash {
	t.Helper()
	h, err := ParseHash(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func ctLeafHashes(t *testing.T) memoryTree {
	t.Helper()
	var leaves memoryTree
	for _, l := range ctLeaves {
		b, err := hex.DecodeString(l)
		if err != nil {
			t.Fatal(err)
		}
		leaves = append(leaves, LeafHash(b))
	}
	return leaves
}

func TestRootsMatchRFC6962Vectors(t *testing.T) {
	leaves := ctLeafHashes(t)
	for n := 0; n <= len(leaves); n++ {
		if got := RootOf(leaves[:n]); got.String() != ctRoots[n] {
			t.Errorf("size %d: root %s, want %s", n, got, ctRoots[n])
		}
	}
}

func TestProofsMatchRFC6962Vectors(t *testing.T) {
	ctx := context.Background()
	leaves := ctLeafHashes(t)
	for _, tc := range []struct {
		name      string
		index, m  int64 // leaf index, or old size for consistency
		n         int64
		proof     []string
		inclusion bool
	}{
		{"inclusion of leaf 0 in 8", 0, 0, 8, []string{
			"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
			"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
			"6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}, true},
		{"inclusion of leaf 5 in 8", 5, 0, 8, []string{
			"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
			"ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
			"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}, true},
		{"consistency of 6 with 8", 0, 6, 8, []string{
			"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
			"ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
			"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var (
				got []Hash
				err error
			)
			if tc.inclusion {
				got, err = inclusionPath(ctx, leaves, tc.index, tc.n)
			} else {
				got, err = consistencyPath(ctx, leaves, tc.m, tc.n)
			}
			if err != nil {
				t.Fatal(err)
			}
			var want []Hash
			for _, p := range tc.proof {
				want = append(want, mustHash(t, p))
			}
			if !slices.Equal(got, want) {
				t.Fatalf("proof %v, want %v", got, want)
			}
			root := mustHash(t, ctRoots[tc.n])
			if tc.inclusion {
				err = VerifyInclusion(leaves[tc.index], tc.index, tc.n, got, root)
			} else {
				err = VerifyConsistency(tc.m, tc.n, mustHash(t, ctRoots[tc.m]), root, got)
			}
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// referenceRoot is RFC 6962's MTH, written as the RFC states it.
func referenceRoot(leaves []Hash) Hash {
	switch len(leaves) {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return leaves[0]
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	return NodeHash(referenceRoot(leaves[:k]), referenceRoot(leaves[k:]))
}

func testLeaves(n int) memoryTree {
	leaves := make(memoryTree, n)
	for i := range leaves {
		leaves[i] = LeafHash([]byte(fmt.Sprintf("leaf %d", i)))
	}
	return leaves
}

func TestFrontierIsTheReferenceRoot(t *testing.T) {
	leaves := testLeaves(600)
	var f Frontier
	for n := 0; n <= len(leaves); n++ {
		if got, want := f.Root(), referenceRoot(leaves[:n]); got != want {
			t.Fatalf("size %d: frontier root %s, reference %s", n, got, want)
		}
		if len(f.nodes) > 64 {
			t.Fatalf("frontier of %d hashes", len(f.nodes))
		}
		if n < len(leaves) {
			f.Append(leaves[n])
		}
	}
}

// Every proof of every small tree verifies, and the same proof for anything else does not.
func TestEveryProofVerifies(t *testing.T) {
	ctx := context.Background()
	leaves := testLeaves(70)
	roots := make([]Hash, len(leaves)+1)
	for n := range roots {
		roots[n] = referenceRoot(leaves[:n])
	}
	for n := int64(1); n <= int64(len(leaves)); n++ {
		for i := int64(0); i < n; i++ {
			path, err := inclusionPath(ctx, leaves, i, n)
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifyInclusion(leaves[i], i, n, path, roots[n]); err != nil {
				t.Fatalf("inclusion of %d in %d: %v", i, n, err)
			}
			if n > 1 {
				if err := VerifyInclusion(leaves[(i+1)%n], i, n, path, roots[n]); !errors.Is(err, ErrInvalidProof) {
					t.Fatalf("inclusion of %d in %d accepted another leaf: %v", i, n, err)
				}
			}
		}
		for m := int64(0); m <= n; m++ {
			proof, err := consistencyPath(ctx, leaves, m, n)
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifyConsistency(m, n, roots[m], roots[n], proof); err != nil {
				t.Fatalf("consistency of %d with %d: %v", m, n, err)
			}
			if m > 0 && m < n {
				if err := VerifyConsistency(m, n, roots[m-1], roots[n], proof); !errors.Is(err, ErrInvalidProof) {
					t.Fatalf("consistency of %d with %d accepted another old root: %v", m, n, err)
				}
			}
		}
	}
}

// Mangled proofs are rejected: every element, a truncation, an extension, a wrong index,
// for every proof of the trees up to 40 leaves. (A wrong size with the same root is not a
// forgery the verifier can see: sizes and roots come signed together, see proof_test.go.)
func TestMangledProofsAreRejected(t *testing.T) {
	ctx := context.Background()
	leaves := testLeaves(40)
	rng := rand.New(rand.NewPCG(1, 2))
	junk := LeafHash([]byte("junk"))
	for n := int64(2); n <= int64(len(leaves)); n++ {
		root := referenceRoot(leaves[:n])
		for i := int64(0); i < n; i++ {
			path, _ := inclusionPath(ctx, leaves, i, n)
			reject := func(what string, leaf Hash, index, size int64, p []Hash) {
				t.Helper()
				if err := VerifyInclusion(leaf, index, size, p, root); !errors.Is(err, ErrInvalidProof) {
					t.Fatalf("inclusion of %d in %d, %s: accepted (%v)", i, n, what, err)
				}
			}
			for j := range path {
				p := slices.Clone(path)
				p[j][rng.IntN(len(Hash{}))] ^= 1 << rng.IntN(8)
				reject(fmt.Sprintf("element %d changed", j), leaves[i], i, n, p)
			}
			reject("truncated", leaves[i], i, n, path[:len(path)-1])
			reject("extended", leaves[i], i, n, append(slices.Clone(path), junk))
			reject("index+1", leaves[i], (i+1)%n, n, path)
			reject("index past size", leaves[i], n, n, path)
		}
		for m := int64(1); m < n; m++ {
			oldRoot := referenceRoot(leaves[:m])
			proof, _ := consistencyPath(ctx, leaves, m, n)
			reject := func(what string, from, to int64, p []Hash) {
				t.Helper()
				if err := VerifyConsistency(from, to, oldRoot, root, p); !errors.Is(err, ErrInvalidProof) {
					t.Fatalf("consistency of %d with %d, %s: accepted (%v)", m, n, what, err)
				}
			}
			for j := range proof {
				p := slices.Clone(proof)
				p[j][rng.IntN(len(Hash{}))] ^= 1 << rng.IntN(8)
				reject(fmt.Sprintf("element %d changed", j), m, n, p)
			}
			reject("truncated", m, n, proof[:len(proof)-1])
			reject("extended", m, n, append(slices.Clone(proof), junk))
			reject("empty", m, n, nil)
			reject("from+1", m+1, n, proof)
			reject("reversed", n, m, proof)
		}
	}
}
