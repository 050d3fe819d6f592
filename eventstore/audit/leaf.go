package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"time"

	"github.com/eventcrm/crm/eventstore"
)

// Row is an event as the log stores it. Metadata is the stored JSON itself, not a decoded
// and re-encoded copy: an edit that a decoder would forgive (a key in other case, say) still
// changes what is hashed.
type Row struct {
	Position   int64
	ID         string
	Stream     string
	Version    int64
	Type       string
	Data       []byte
	Metadata   []byte // JSON, as stored
	OccurredAt int64  // unix microseconds
	RecordedAt int64  // unix microseconds
	PrevHash   []byte
	Hash       []byte
}

// RowOf is the row of an event read from a store: its metadata is the stored bytes the store
// gave with it (Event.MetadataJSON), never a re-encoding of the decoded fields, which would
// not hash alike for every stored value. Only an event built in code, without them, has its
// metadata encoded as every backend stores it.
func RowOf(e eventstore.Event) Row {
	meta := e.MetadataJSON
	if meta == nil {
		meta = eventstore.EncodeMetadata(e.Metadata)
	}
	typ, data := e.Stored() // never a codec's reading
	return Row{
		Position: e.Position, ID: e.ID, Stream: e.Stream, Version: e.Version, Type: typ, Data: data,
		Metadata: meta, OccurredAt: e.OccurredAt.UnixMicro(), RecordedAt: e.RecordedAt.UnixMicro(),
		PrevHash: e.PrevHash, Hash: e.Hash,
	}
}

// Time returns a unix-microsecond column as a time.
func Time(micros int64) time.Time { return time.UnixMicro(micros).UTC() }

// hasher computes chain and leaf hashes, reusing its buffers: a full-log verification hashes
// every event twice, and the allocations would cost more than the hashing.
type hasher struct {
	h   hash.Hash
	n   [8]byte
	buf []byte
}

func newHasher() *hasher { return &hasher{h: sha256.New()} }

func (x *hasher) num(v int64) {
	binary.BigEndian.PutUint64(x.n[:], uint64(v))
	x.h.Write(x.n[:])
}

func (x *hasher) field(b []byte) {
	x.num(int64(len(b)))
	x.h.Write(b)
}

func (x *hasher) text(s string) {
	x.num(int64(len(s)))
	x.buf = append(x.buf[:0], s...)
	x.h.Write(x.buf)
}

// chainHash is eventstore.ChainHash of the row, over its stored metadata bytes and its
// stored PrevHash. For a row written by a store it equals the event's Hash.
func (x *hasher) chainHash(r *Row) Hash {
	x.h.Reset()
	x.field(r.PrevHash)
	x.text(r.ID)
	x.text(r.Stream)
	x.num(r.Version)
	x.text(r.Type)
	x.num(r.OccurredAt)
	x.num(r.RecordedAt)
	x.field(r.Data)
	x.field(r.Metadata)
	var out Hash
	x.h.Sum(out[:0])
	return out
}

// LeafVersion is the first byte of every leaf: the format defined by AppendLeaf.
const LeafVersion = 1

// AppendLeaf appends the Merkle leaf of an event to b:
//
//	0x01                          leaf format version
//	uint64 big-endian position    global position in the log
//	uint64 big-endian version     version in its stream
//	uint64 big-endian len(stream) || stream
//	chain hash                    32 bytes: eventstore.ChainHash of the event
//
// The chain hash covers the event's content and its predecessor in the stream; the position
// ties it to its place in the global log, so moving an event in the log changes the tree
// even where every stream's chain still holds.
func AppendLeaf(b []byte, position int64, stream string, version int64, chain Hash) []byte {
	b = append(b, LeafVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(position))
	b = binary.BigEndian.AppendUint64(b, uint64(version))
	b = binary.BigEndian.AppendUint64(b, uint64(len(stream)))
	b = append(b, stream...)
	return append(b, chain[:]...)
}

// EventLeafHash is the leaf hash of an event whose chain hash is chain.
func EventLeafHash(position int64, stream string, version int64, chain Hash) Hash {
	return LeafHash(AppendLeaf(nil, position, stream, version, chain))
}

// leafHash is EventLeafHash on the hasher's buffers.
func (x *hasher) leafHash(r *Row, chain Hash) Hash {
	x.buf = AppendLeaf(append(x.buf[:0], leafPrefix), r.Position, r.Stream, r.Version, chain)
	x.h.Reset()
	x.h.Write(x.buf)
	var out Hash
	x.h.Sum(out[:0])
	return out
}

// rowLeaf checks that a row's stored hash is the hash of its content and returns its leaf
// hash, or a *eventstore.ChainError naming the row.
func (x *hasher) rowLeaf(r *Row) (Hash, error) {
	chain := x.chainHash(r)
	if !bytes.Equal(chain[:], r.Hash) {
		return Hash{}, chainError(r, fmt.Sprintf("stored hash %x, recomputed %s", r.Hash, chain))
	}
	return x.leafHash(r, chain), nil
}

func chainError(r *Row, problem string) error {
	return &eventstore.ChainError{Stream: r.Stream, Version: r.Version, Position: r.Position, EventID: r.ID, Problem: problem}
}
