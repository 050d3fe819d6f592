package audit

import (
	"context"
	"crypto/ed25519"
	"errors"
	"slices"
	"testing"
	"time"
)

// testSigner is a fixed key (seed: one byte, then zeros) with a fixed clock.
func testSigner(seed byte) *Signer {
	s := make([]byte, ed25519.SeedSize)
	s[0] = seed
	at := time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC)
	return NewSigner(ed25519.NewKeyFromSeed(s), func() time.Time { return at })
}

type proofFixture struct {
	ledger *Ledger
	signer *Signer
	other  *Signer
	rows   []Row
	cp     Checkpoint
}

func newProofFixture(t *testing.T) proofFixture {
	t.Helper()
	rows := makeRows(50, 11)
	src := &memSource{rows: rows, visible: len(rows)}
	f := proofFixture{signer: testSigner(1), other: testSigner(2), rows: rows}
	var err error
	f.ledger, err = NewLedger(LedgerConfig{Tree: openTestTree(t, 2), Feed: src, Source: src, Signer: f.signer})
	if err != nil {
		t.Fatal(err)
	}
	if f.cp, err = f.ledger.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f proofFixture) prove(t *testing.T, r Row, size int64) InclusionProof {
	t.Helper()
	p, err := f.ledger.Prove(context.Background(), r.Stream, r.Version, size)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func flip(b []byte) []byte {
	b = slices.Clone(b)
	b[len(b)/2] ^= 0x10
	return b
}

// A verifier fed a forged inclusion proof or checkpoint rejects it.
func TestForgedInclusionProofsAreRejected(t *testing.T) {
	f := newProofFixture(t)
	target, other := f.rows[21], f.rows[34]
	valid := f.prove(t, target, 0)
	if valid.Checkpoint == nil || valid.TreeSize != f.cp.Size || len(valid.AuditPath) == 0 {
		t.Fatalf("proof %+v", valid)
	}
	if err := valid.Verify(f.signer.Public(), *valid.Checkpoint); err != nil {
		t.Fatalf("the genuine proof: %v", err)
	}
	older := f.prove(t, target, f.cp.Size-1)
	otherProof := f.prove(t, other, 0)
	head := Head{Size: f.cp.Size, LastPosition: f.cp.LastPosition, Root: f.cp.RootHash}

	for _, tc := range []struct {
		name   string
		forge  func(p *InclusionProof, cp *Checkpoint)
		key    PublicKey
		reason error
	}{
		{"changed path element", func(p *InclusionProof, cp *Checkpoint) { p.AuditPath[1][0] ^= 1 }, PublicKey{}, ErrInvalidProof},
		{"truncated path", func(p *InclusionProof, cp *Checkpoint) { p.AuditPath = p.AuditPath[:len(p.AuditPath)-1] }, PublicKey{}, ErrInvalidProof},
		{"extended path", func(p *InclusionProof, cp *Checkpoint) { p.AuditPath = append(p.AuditPath, p.LeafHash) }, PublicKey{}, ErrInvalidProof},
		{"wrong leaf index", func(p *InclusionProof, cp *Checkpoint) { p.LeafIndex++ }, PublicKey{}, ErrInvalidProof},
		{"leaf index past the tree", func(p *InclusionProof, cp *Checkpoint) { p.LeafIndex = cp.Size }, PublicKey{}, ErrInvalidProof},
		{"wrong tree size", func(p *InclusionProof, cp *Checkpoint) { p.TreeSize-- }, PublicKey{}, ErrInvalidProof},
		{"proof for an older tree, relabelled", func(p *InclusionProof, cp *Checkpoint) {
			*p = older
			p.TreeSize = cp.Size
		}, PublicKey{}, ErrInvalidProof},
		{"proof of another event, relabelled", func(p *InclusionProof, cp *Checkpoint) {
			ap := otherProof.AuditPath
			*p = valid
			p.AuditPath = slices.Clone(ap)
		}, PublicKey{}, ErrInvalidProof},
		{"proof of another event, our leaf hash", func(p *InclusionProof, cp *Checkpoint) {
			leaf := p.LeafHash
			*p = otherProof
			p.LeafHash = leaf
		}, PublicKey{}, ErrInvalidProof},
		{"changed event (chain hash)", func(p *InclusionProof, cp *Checkpoint) { p.ChainHash[3] ^= 4 }, PublicKey{}, ErrInvalidProof},
		{"changed event, leaf hash recomputed", func(p *InclusionProof, cp *Checkpoint) {
			p.ChainHash[3] ^= 4
			p.LeafHash = EventLeafHash(p.Position, p.Stream, p.Version, p.ChainHash)
		}, PublicKey{}, ErrInvalidProof},
		{"moved event (position)", func(p *InclusionProof, cp *Checkpoint) { p.Position++ }, PublicKey{}, ErrInvalidProof},
		{"renamed stream", func(p *InclusionProof, cp *Checkpoint) { p.Stream += "x" }, PublicKey{}, ErrInvalidProof},
		{"bad signature", func(p *InclusionProof, cp *Checkpoint) { cp.Signature = flip(cp.Signature) }, PublicKey{}, ErrBadSignature},
		{"truncated signature", func(p *InclusionProof, cp *Checkpoint) { cp.Signature = cp.Signature[:63] }, PublicKey{}, ErrBadSignature},
		{"changed root", func(p *InclusionProof, cp *Checkpoint) { cp.RootHash[0] ^= 1 }, PublicKey{}, ErrBadSignature},
		{"changed size", func(p *InclusionProof, cp *Checkpoint) { cp.Size++ }, PublicKey{}, ErrBadSignature},
		{"changed last position", func(p *InclusionProof, cp *Checkpoint) { cp.LastPosition++ }, PublicKey{}, ErrBadSignature},
		{"changed timestamp", func(p *InclusionProof, cp *Checkpoint) { cp.Timestamp = "2030-01-01T00:00:00.000000Z" }, PublicKey{}, ErrBadSignature},
		{"checkpoint signed by another key", func(p *InclusionProof, cp *Checkpoint) { *cp = f.other.Sign(head) }, PublicKey{}, ErrBadSignature},
		{"another key's signature under our key id", func(p *InclusionProof, cp *Checkpoint) {
			forged := f.other.Sign(head)
			forged.KeyID = cp.KeyID
			forged.Signature = ed25519.Sign(ed25519.NewKeyFromSeed(append([]byte{2}, make([]byte, 31)...)), forged.SignedText())
			*cp = forged
		}, PublicKey{}, ErrBadSignature},
		{"verified with another key", func(p *InclusionProof, cp *Checkpoint) {}, f.other.Public(), ErrBadSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := valid
			p.AuditPath = slices.Clone(valid.AuditPath)
			cp := *valid.Checkpoint
			tc.forge(&p, &cp)
			key := f.signer.Public()
			if tc.key.key != nil {
				key = tc.key
			}
			err := p.Verify(key, cp)
			if !errors.Is(err, tc.reason) {
				t.Fatalf("verify: %v, want %v", err, tc.reason)
			}
		})
	}
}

// A verifier fed a forged consistency proof, or checkpoints that do not go together,
// rejects it.
func TestForgedConsistencyProofsAreRejected(t *testing.T) {
	ctx := context.Background()
	rows := makeRows(60, 13)
	src := &memSource{rows: rows, visible: 23}
	f := proofFixture{signer: testSigner(1), other: testSigner(2)}
	ledger, err := NewLedger(LedgerConfig{Tree: openTestTree(t, 2), Feed: src, Source: src, Signer: f.signer})
	if err != nil {
		t.Fatal(err)
	}
	older, err := ledger.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	src.visible = len(rows)
	valid, err := ledger.Consistency(ctx, older.Size, CurrentTree)
	if err != nil {
		t.Fatal(err)
	}
	newer := *valid.Checkpoint
	key := f.signer.Public()
	if err := valid.Verify(key, older, newer); err != nil {
		t.Fatalf("the genuine proof: %v", err)
	}
	// A checkpoint of a rewritten history of the same size, signed by the right key.
	rewritten := slices.Clone(rows[:older.Size])
	rewritten[3].Data = []byte(`{"rewritten":true}`)
	x := newHasher()
	var fr Frontier
	for i := range rewritten {
		fr.Append(x.leafHash(&rewritten[i], x.chainHash(&rewritten[i])))
	}
	forkedOld := f.signer.Sign(Head{Size: older.Size, LastPosition: older.LastPosition, Root: fr.Root()})

	for _, tc := range []struct {
		name          string
		forge         func(p *ConsistencyProof, o, n *Checkpoint)
		reason        error
		verifyWithKey PublicKey
	}{
		{"changed element", func(p *ConsistencyProof, o, n *Checkpoint) { p.Proof[0][5] ^= 0x80 }, ErrInvalidProof, key},
		{"truncated", func(p *ConsistencyProof, o, n *Checkpoint) { p.Proof = p.Proof[:len(p.Proof)-1] }, ErrInvalidProof, key},
		{"extended", func(p *ConsistencyProof, o, n *Checkpoint) { p.Proof = append(p.Proof, p.Proof[0]) }, ErrInvalidProof, key},
		{"empty", func(p *ConsistencyProof, o, n *Checkpoint) { p.Proof = nil }, ErrInvalidProof, key},
		{"wrong from", func(p *ConsistencyProof, o, n *Checkpoint) { p.From++ }, ErrInvalidProof, key},
		{"wrong to", func(p *ConsistencyProof, o, n *Checkpoint) { p.To-- }, ErrInvalidProof, key},
		{"checkpoints swapped", func(p *ConsistencyProof, o, n *Checkpoint) {
			*o, *n = *n, *o
			p.From, p.To = o.Size, n.Size
		}, ErrInvalidProof, key},
		{"older checkpoint of a rewritten history", func(p *ConsistencyProof, o, n *Checkpoint) { *o = forkedOld }, ErrInvalidProof, key},
		{"older signed by another key", func(p *ConsistencyProof, o, n *Checkpoint) {
			*o = f.other.Sign(Head{Size: o.Size, LastPosition: o.LastPosition, Root: o.RootHash})
		}, ErrBadSignature, key},
		{"newer with a bad signature", func(p *ConsistencyProof, o, n *Checkpoint) { n.Signature = flip(n.Signature) }, ErrBadSignature, key},
		{"newer root changed", func(p *ConsistencyProof, o, n *Checkpoint) { n.RootHash[9] ^= 2 }, ErrBadSignature, key},
		{"verified with another key", func(p *ConsistencyProof, o, n *Checkpoint) {}, ErrBadSignature, f.other.Public()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := valid
			p.Proof = slices.Clone(valid.Proof)
			o, n := older, newer
			tc.forge(&p, &o, &n)
			if err := p.Verify(tc.verifyWithKey, o, n); !errors.Is(err, tc.reason) {
				t.Fatalf("verify: %v, want %v", err, tc.reason)
			}
		})
	}
}
