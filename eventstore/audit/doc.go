// Package audit makes the log's history verifiable by someone who does not trust the server:
// a Merkle tree over the whole log (RFC 6962, as Certificate Transparency), checkpoints of it
// signed with the server's Ed25519 key, inclusion proofs of single events, consistency proofs
// between checkpoints, and the offline verification of a stored log against a checkpoint.
//
// Per-stream hash chains (eventstore.ChainHash) already show a changed, removed or reordered
// event within a stream, but only to someone who trusts the chain's last hash: whoever can
// write the database can rewrite a stream and recompute its chain, or move events between
// positions of the global log without touching any chain. A signed checkpoint fixes the
// whole log at one moment; anything changed afterwards no longer hashes to its root.
//
// The tree (see AppendLeaf for the exact leaf):
//
//	leaf i      = the i-th event of the log in position order (i from 0)
//	leaf hash   = SHA-256(0x00 || leaf)
//	node hash   = SHA-256(0x01 || left || right)
//	root        = RFC 6962 Merkle tree hash: a tree of n > 1 leaves splits at the largest
//	              power of two k < n into the trees of leaves [0, k) and [k, n);
//	              the root of no leaves is SHA-256 of the empty string
//
// Positions may have gaps (PostgreSQL skips those of rolled-back appends): the tree's size
// counts events, and each leaf records its position.
//
// Verification reads the stored rows themselves (SQLiteSource, PostgresSource), hashing the
// metadata as stored rather than as decoded, and can run inside a transaction.
package audit
