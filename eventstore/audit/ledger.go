package audit

import (
	"context"
	"errors"
	"fmt"

	"github.com/eventcrm/crm/eventstore"
)

// Ledger answers for the log: signed checkpoints of its Merkle tree, inclusion proofs of its
// events and consistency proofs between checkpoints.
type Ledger struct {
	tree   *Tree
	feed   Source
	src    Source
	signer *Signer
}

// LedgerConfig is what a Ledger needs.
type LedgerConfig struct {
	// Tree holds the Merkle tree of the log.
	Tree *Tree
	// Feed brings new events into the tree: StoreSource of the store, or a raw source where
	// it sees positions in commit order (SQLiteSource).
	Feed Source
	// Source re-reads stored events for proofs: the backend's raw source when it has one.
	Source Source
	// Signer signs checkpoints; without one Checkpoint fails, proofs work.
	Signer *Signer
}

// NewLedger returns a ledger.
func NewLedger(cfg LedgerConfig) (*Ledger, error) {
	var errs []error
	if cfg.Tree == nil {
		errs = append(errs, errors.New("no tree"))
	}
	if cfg.Feed == nil {
		errs = append(errs, errors.New("no feed"))
	}
	if cfg.Source == nil {
		errs = append(errs, errors.New("no source"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("audit ledger: %w", err)
	}
	return &Ledger{tree: cfg.Tree, feed: cfg.Feed, src: cfg.Source, signer: cfg.Signer}, nil
}

// PublicKey is the key that verifies this ledger's checkpoints.
func (l *Ledger) PublicKey() (PublicKey, error) {
	if l.signer == nil {
		return PublicKey{}, errors.New("audit ledger has no signing key")
	}
	return l.signer.Public(), nil
}

// Update brings the tree up to the end of the log and returns its head.
func (l *Ledger) Update(ctx context.Context) (Head, error) { return l.tree.Update(ctx, l.feed) }

// Checkpoint brings the tree up to the end of the log and signs its head.
func (l *Ledger) Checkpoint(ctx context.Context) (Checkpoint, error) {
	if l.signer == nil {
		return Checkpoint{}, errors.New("checkpoint: audit ledger has no signing key")
	}
	h, err := l.Update(ctx)
	if err != nil {
		return Checkpoint{}, err
	}
	return l.tree.checkpoint(ctx, h, l.signer)
}

// InclusionProof shows that one event is the leaf at LeafIndex of the tree of TreeSize
// events. Its fields rebuild the leaf (see AppendLeaf); ChainHash is the event's Hash, which
// an auditor recomputes from the event itself (eventstore.ChainHash).
type InclusionProof struct {
	Stream    string `json:"stream"`
	Version   int64  `json:"version"`
	Position  int64  `json:"position"`
	EventID   string `json:"event_id"`
	ChainHash Hash   `json:"chain_hash"`
	LeafIndex int64  `json:"leaf_index"`
	LeafHash  Hash   `json:"leaf_hash"`
	TreeSize  int64  `json:"tree_size"`
	AuditPath []Hash `json:"audit_path"`
	// Checkpoint is the signed head the proof leads to, when it was asked for the current one.
	Checkpoint *Checkpoint `json:"checkpoint,omitempty"`
}

// Verify checks the proof against a checkpoint signed by key: the signature, the size, the
// leaf rebuilt from the proof's event fields, and the audit path up to the signed root.
func (p InclusionProof) Verify(key PublicKey, cp Checkpoint) error {
	if err := key.Verify(cp); err != nil {
		return err
	}
	if p.TreeSize != cp.Size {
		return fmt.Errorf("proof for a tree of %d events, checkpoint of %d: %w", p.TreeSize, cp.Size, ErrInvalidProof)
	}
	if leaf := EventLeafHash(p.Position, p.Stream, p.Version, p.ChainHash); leaf != p.LeafHash {
		return fmt.Errorf("leaf hash %s is not the hash of the event's leaf (%s): %w", p.LeafHash, leaf, ErrInvalidProof)
	}
	if err := VerifyInclusion(p.LeafHash, p.LeafIndex, p.TreeSize, p.AuditPath, cp.RootHash); err != nil {
		return fmt.Errorf("event %s version %d: %w", p.Stream, p.Version, err)
	}
	return nil
}

// Prove returns the inclusion proof of event version of stream in the tree of the first size
// events; size 0 means the current tree, whose signed checkpoint the proof then carries (when
// the ledger signs). It returns eventstore.ErrStreamNotFound or ErrEventNotFound for an
// event the log does not have, ErrOutOfRange when the event is not among the first size,
// ErrLogAltered or a *eventstore.ChainError when the stored event was changed.
func (l *Ledger) Prove(ctx context.Context, stream string, version, size int64) (InclusionProof, error) {
	h, err := l.Update(ctx)
	if err != nil {
		return InclusionProof{}, err
	}
	var cp *Checkpoint
	if size == 0 {
		size = h.Size
		if l.signer != nil {
			c, err := l.tree.checkpoint(ctx, h, l.signer)
			if err != nil {
				return InclusionProof{}, err
			}
			cp = &c
		}
	}
	snap, err := l.tree.Snapshot(ctx, l.src)
	if err != nil {
		return InclusionProof{}, err
	}
	p, err := l.prove(ctx, snap, stream, version, size)
	p.Checkpoint = cp
	return p, err
}

// event reads one stored event.
func (l *Ledger) event(ctx context.Context, stream string, version int64) (Row, error) {
	rows, err := l.src.ReadStream(ctx, stream, version, 1)
	if err != nil {
		return Row{}, fmt.Errorf("read %s: %w", stream, err)
	}
	if len(rows) == 0 || rows[0].Version != version {
		if version > 1 {
			if first, err := l.src.ReadStream(ctx, stream, 1, 1); err == nil && len(first) == 0 {
				return Row{}, fmt.Errorf("%s: %w", stream, eventstore.ErrStreamNotFound)
			}
		}
		return Row{}, fmt.Errorf("%s version %d: %w", stream, version, eventstore.ErrEventNotFound)
	}
	return rows[0], nil
}

func (l *Ledger) prove(ctx context.Context, snap *Snapshot, stream string, version, size int64) (InclusionProof, error) {
	r, err := l.event(ctx, stream, version)
	if err != nil {
		return InclusionProof{}, err
	}
	return proveRow(ctx, snap, &r, size)
}

func proveRow(ctx context.Context, snap *Snapshot, r *Row, size int64) (InclusionProof, error) {
	x := newHasher()
	chain := x.chainHash(r)
	leaf, err := x.rowLeaf(r)
	if err != nil {
		return InclusionProof{}, err
	}
	p := InclusionProof{Stream: r.Stream, Version: r.Version, Position: r.Position, EventID: r.ID,
		ChainHash: chain, LeafHash: leaf, TreeSize: size}
	idx, treeLeaf, err := snap.Locate(ctx, r.Position)
	if err != nil {
		return p, fmt.Errorf("%s version %d: %w", r.Stream, r.Version, err)
	}
	if treeLeaf != leaf {
		return p, fmt.Errorf("%s version %d (position %d) differs from when it was added to the audit tree: %w",
			r.Stream, r.Version, r.Position, ErrLogAltered)
	}
	p.LeafIndex = idx
	if idx >= size {
		return p, fmt.Errorf("%s version %d is event %d of the log, newer than a tree of %d: %w", r.Stream, r.Version, idx+1, size, ErrOutOfRange)
	}
	if p.AuditPath, err = snap.InclusionPath(ctx, idx, size); err != nil {
		return p, err
	}
	if p.AuditPath == nil {
		p.AuditPath = []Hash{} // a tree of one event: an empty path, not null
	}
	return p, nil
}

// ConsistencyProof shows that the tree of To events extends the tree of From events.
type ConsistencyProof struct {
	From  int64  `json:"from"`
	To    int64  `json:"to"`
	Proof []Hash `json:"proof"`
	// Checkpoint is the signed head of size To, when it was asked for the current one.
	Checkpoint *Checkpoint `json:"checkpoint,omitempty"`
}

// Verify checks that newer extends older, both signed by key, with this proof.
func (p ConsistencyProof) Verify(key PublicKey, older, newer Checkpoint) error {
	if err := key.Verify(older); err != nil {
		return fmt.Errorf("older checkpoint: %w", err)
	}
	if err := key.Verify(newer); err != nil {
		return fmt.Errorf("newer checkpoint: %w", err)
	}
	if p.From != older.Size || p.To != newer.Size {
		return fmt.Errorf("proof from %d to %d, checkpoints of %d and %d: %w", p.From, p.To, older.Size, newer.Size, ErrInvalidProof)
	}
	return VerifyConsistency(p.From, p.To, older.RootHash, newer.RootHash, p.Proof)
}

// CurrentTree as the size a consistency proof leads to means the tree as it is now.
const CurrentTree int64 = -1

// Consistency returns the proof that the tree of to events extends the tree of from events;
// to CurrentTree means the current tree, whose signed checkpoint the proof then carries. The
// proof is empty when from is 0 (every tree extends the empty one) or from equals to (the
// roots must then be equal).
func (l *Ledger) Consistency(ctx context.Context, from, to int64) (ConsistencyProof, error) {
	h, err := l.Update(ctx)
	if err != nil {
		return ConsistencyProof{}, err
	}
	p := ConsistencyProof{From: from, To: to}
	if to == CurrentTree {
		p.To = h.Size
		if l.signer != nil {
			c, err := l.tree.checkpoint(ctx, h, l.signer)
			if err != nil {
				return ConsistencyProof{}, err
			}
			p.Checkpoint = &c
		}
	}
	if from < 0 || from > p.To {
		return ConsistencyProof{}, fmt.Errorf("consistency from %d to %d: %w", from, p.To, ErrOutOfRange)
	}
	snap, err := l.tree.Snapshot(ctx, l.src)
	if err != nil {
		return ConsistencyProof{}, err
	}
	if p.Proof, err = snap.ConsistencyPath(ctx, from, p.To); err != nil {
		return ConsistencyProof{}, err
	}
	if p.Proof == nil {
		p.Proof = []Hash{}
	}
	return p, nil
}
