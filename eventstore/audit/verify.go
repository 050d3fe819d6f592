package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/eventcrm/crm/eventstore"
)

// Verifier checks the stored log against checkpoints signed by Key.
type Verifier struct {
	// Key verifies the checkpoints' signatures.
	Key PublicKey
	// Source is the stored log: the backend's raw source, possibly inside a transaction.
	Source Source
	// Ledger gives the proofs that Stream, Event and Extends check. Log needs none, but with
	// one it names the first 256 events that differ when a root does not match.
	Ledger *Ledger
	// Progress, when not nil, is called by Log after each batch with the events read.
	Progress func(events int64)
}

// LogReport is what a full verification read.
type LogReport struct {
	Covered int64 // events under the checkpoint, all verified
	Newer   int64 // events after it, whose chains were verified
	Streams int
}

// verifyBatch is how many events Log reads at once.
const verifyBatch = 8192

type chainHead struct {
	version int64
	hash    Hash
}

// Log verifies the whole log against cp, reading every stored event once and trusting
// nothing else: the checkpoint's signature; every stream's hash chain (versions without
// gaps, each event's previous hash, each event's hash recomputed from its stored content);
// global positions increasing; and the Merkle root of the first cp.Size events, rebuilt
// from their leaves, against the signed root, with the last of them at cp.LastPosition.
// Events after the checkpoint have their chains checked too.
//
// It names the first problem in log order: a *eventstore.ChainError, or an error matching
// ErrLogAltered (root, size or last position differ) or ErrBadSignature.
func (v Verifier) Log(ctx context.Context, cp Checkpoint) (LogReport, error) {
	var rep LogReport
	if err := v.Key.Verify(cp); err != nil {
		return rep, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := prefetch(ctx, v.Source, 0, verifyBatch)
	var (
		heads = make(map[string]chainHead)
		f     Frontier
		x     = newHasher()
		after int64
		read  int64
	)
	if cp.Size == 0 && cp.RootHash != EmptyRoot() {
		return rep, fmt.Errorf("checkpoint of 0 events with root %s: %w", cp.RootHash, ErrLogAltered)
	}
	for b := range batches {
		if b.err != nil {
			return rep, b.err
		}
		for i := range b.rows {
			r := &b.rows[i]
			if r.Position <= after {
				return rep, chainError(r, fmt.Sprintf("global position does not follow %d", after))
			}
			after = r.Position
			head, seen := heads[r.Stream]
			if r.Version != head.version+1 {
				return rep, chainError(r, fmt.Sprintf("version follows %d", head.version))
			}
			if (seen && !bytes.Equal(r.PrevHash, head.hash[:])) || (!seen && len(r.PrevHash) != 0) {
				return rep, chainError(r, "previous hash does not match the previous event")
			}
			leaf, err := x.rowLeaf(r)
			if err != nil {
				return rep, err
			}
			copy(head.hash[:], r.Hash)
			head.version = r.Version
			heads[r.Stream] = head
			if f.Size() == cp.Size {
				rep.Newer++
				continue
			}
			f.Append(leaf)
			rep.Covered++
			if f.Size() == cp.Size {
				if err := checkHead(cp, f.Root(), r.Position); err != nil {
					return rep, v.locateChange(ctx, cp.Size, err)
				}
			}
		}
		read += int64(len(b.rows))
		rep.Streams = len(heads)
		if v.Progress != nil {
			v.Progress(read)
		}
	}
	if f.Size() < cp.Size {
		return rep, fmt.Errorf("the log has %d events, the checkpoint covers %d: %w", f.Size(), cp.Size, ErrLogAltered)
	}
	return rep, nil
}

// locateChange adds to a root mismatch where the log changed: the first tile of the audit
// tree (256 events) that the stored rows no longer hash to, when there is a tree to ask.
func (v Verifier) locateChange(ctx context.Context, size int64, mismatch error) error {
	if v.Ledger == nil {
		return mismatch
	}
	snap, err := v.Ledger.tree.Snapshot(ctx, v.Source)
	if err != nil {
		return mismatch
	}
	tiles := min(snap.completeTiles(), size/snap.t.width)
	for idx := int64(0); idx < tiles; idx++ {
		if _, err := snap.tile(ctx, idx); err != nil {
			return fmt.Errorf("%w; first change: %s", mismatch, strings.TrimSuffix(err.Error(), ": "+ErrLogAltered.Error()))
		}
	}
	return mismatch
}

func checkHead(cp Checkpoint, root Hash, last int64) error {
	if last != cp.LastPosition {
		return fmt.Errorf("event %d of the log is at position %d, the checkpoint's last is at %d: %w",
			cp.Size, last, cp.LastPosition, ErrLogAltered)
	}
	if root != cp.RootHash {
		return fmt.Errorf("the first %d events hash to root %s, the checkpoint says %s: %w", cp.Size, root, cp.RootHash, ErrLogAltered)
	}
	return nil
}

// StreamReport is what a stream verification checked.
type StreamReport struct {
	Stream  string
	Covered int64 // events under the checkpoint, each proven included
	Newer   int64 // events after it, chain checked only
}

// Stream verifies one stream against cp: its hash chain from the stored events, and an
// inclusion proof of each of its events under the checkpoint up to the signed root. It
// returns eventstore.ErrStreamNotFound for a stream the log does not have.
func (v Verifier) Stream(ctx context.Context, cp Checkpoint, stream string) (StreamReport, error) {
	rep := StreamReport{Stream: stream}
	snap, err := v.prepare(ctx, cp)
	if err != nil {
		return rep, err
	}
	var (
		x    = newHasher()
		head chainHead
	)
	for from := int64(1); ; {
		rows, err := v.Ledger.src.ReadStream(ctx, stream, from, 1000)
		if err != nil {
			return rep, fmt.Errorf("read %s: %w", stream, err)
		}
		if len(rows) == 0 && from == 1 {
			return rep, fmt.Errorf("%s: %w", stream, eventstore.ErrStreamNotFound)
		}
		for i := range rows {
			r := &rows[i]
			if r.Version != head.version+1 {
				return rep, chainError(r, fmt.Sprintf("version follows %d", head.version))
			}
			if (head.version > 0 && !bytes.Equal(r.PrevHash, head.hash[:])) || (head.version == 0 && len(r.PrevHash) != 0) {
				return rep, chainError(r, "previous hash does not match the previous event")
			}
			if _, err := x.rowLeaf(r); err != nil {
				return rep, err
			}
			copy(head.hash[:], r.Hash)
			head.version = r.Version
			p, err := proveRow(ctx, snap, r, cp.Size)
			if errors.Is(err, ErrOutOfRange) { // after the checkpoint, maybe after the tree too
				rep.Newer++
				continue
			}
			if err != nil {
				return rep, err
			}
			if err := VerifyInclusion(p.LeafHash, p.LeafIndex, p.TreeSize, p.AuditPath, cp.RootHash); err != nil {
				return rep, fmt.Errorf("%s version %d (position %d) is not in the checkpoint's tree: %w", r.Stream, r.Version, r.Position, err)
			}
			rep.Covered++
		}
		if len(rows) < 1000 {
			return rep, nil
		}
		from = rows[len(rows)-1].Version + 1
	}
}

// Event verifies one event against cp: its stored hash against its content, and its
// inclusion proof up to the signed root. An event after the checkpoint is ErrOutOfRange.
func (v Verifier) Event(ctx context.Context, cp Checkpoint, stream string, version int64) (InclusionProof, error) {
	snap, err := v.prepare(ctx, cp)
	if err != nil {
		return InclusionProof{}, err
	}
	p, err := v.Ledger.prove(ctx, snap, stream, version, cp.Size)
	if err != nil {
		return p, err
	}
	if err := p.Verify(v.Key, cp); err != nil {
		return p, fmt.Errorf("%s version %d (position %d) is not in the checkpoint's tree: %w", stream, version, p.Position, err)
	}
	return p, nil
}

// prepare checks cp's signature and brings the tree up to the end of the log.
func (v Verifier) prepare(ctx context.Context, cp Checkpoint) (*Snapshot, error) {
	if err := v.Key.Verify(cp); err != nil {
		return nil, err
	}
	if v.Ledger == nil {
		return nil, errors.New("verify: no audit tree to prove events with")
	}
	if _, err := v.Ledger.Update(ctx); err != nil {
		return nil, err
	}
	snap, err := v.Ledger.tree.Snapshot(ctx, v.Ledger.src)
	if err != nil {
		return nil, err
	}
	if snap.Size() < cp.Size {
		return nil, fmt.Errorf("the log has %d events, the checkpoint covers %d: %w", snap.Size(), cp.Size, ErrLogAltered)
	}
	return snap, nil
}

// Extends checks that newer extends older: both signed by Key, and the consistency proof
// between them, built from the log's tree, leads from the older root to the newer. When it
// does not, it tells whether the log no longer matches the newer checkpoint (changed since)
// or matches it but not the older (rewritten before the newer was signed).
func (v Verifier) Extends(ctx context.Context, older, newer Checkpoint) error {
	if err := v.Key.Verify(older); err != nil {
		return fmt.Errorf("older checkpoint: %w", err)
	}
	if newer.Size < older.Size || newer.LastPosition < older.LastPosition {
		return fmt.Errorf("the newer checkpoint (%d events, last position %d) is smaller than the older (%d, %d): %w",
			newer.Size, newer.LastPosition, older.Size, older.LastPosition, ErrInvalidProof)
	}
	snap, err := v.prepare(ctx, newer)
	if err != nil {
		return fmt.Errorf("newer checkpoint: %w", err)
	}
	proof, err := snap.ConsistencyPath(ctx, older.Size, newer.Size)
	if err != nil {
		return err
	}
	err = VerifyConsistency(older.Size, newer.Size, older.RootHash, newer.RootHash, proof)
	if err == nil {
		return nil
	}
	if root, rerr := snap.Root(ctx, newer.Size); rerr == nil && root != newer.RootHash {
		return fmt.Errorf("the log's first %d events no longer hash to the newer checkpoint's root: %w", newer.Size, ErrLogAltered)
	}
	if root, rerr := snap.Root(ctx, older.Size); rerr == nil && root != older.RootHash {
		return fmt.Errorf("the newer checkpoint does not extend the older: its first %d events were rewritten before it was signed: %w",
			older.Size, ErrInvalidProof)
	}
	return fmt.Errorf("the newer checkpoint does not extend the older: %w", err)
}
