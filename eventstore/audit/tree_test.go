package audit

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"github.com/eventcrm/crm/eventstore"
)

// memSource is a log in memory; visible limits what ReadAfter shows, like a log still growing.
type memSource struct {
	rows    []Row
	visible int
}

func (m *memSource) ReadAfter(_ context.Context, after int64, limit int) ([]Row, error) {
	rows := m.rows[:m.visible]
	i := sort.Search(len(rows), func(i int) bool { return rows[i].Position > after })
	return slices.Clone(rows[i:min(len(rows), i+limit)]), nil
}

func (m *memSource) ReadStream(_ context.Context, stream string, from int64, limit int) ([]Row, error) {
	var out []Row
	for _, r := range m.rows[:m.visible] {
		if r.Stream == stream && r.Version >= from && len(out) < limit {
			out = append(out, r)
		}
	}
	return out, nil
}

// makeRows returns a valid log of n events over a few streams, with gaps in positions.
func makeRows(n int, seed uint64) []Row {
	rng := rand.New(rand.NewPCG(seed, seed))
	x := newHasher()
	heads := map[string]Row{}
	rows := make([]Row, 0, n)
	pos := int64(0)
	for i := range n {
		stream := fmt.Sprintf("s-%d", rng.IntN(7))
		head := heads[stream]
		pos += 1 + int64(rng.IntN(2))
		r := Row{Position: pos, ID: fmt.Sprintf("e-%d", i), Stream: stream, Version: head.Version + 1, Type: "t.v1",
			Data: []byte(fmt.Sprintf(`{"i":%d}`, i)), Metadata: []byte(`{"actor":"a"}`),
			OccurredAt: int64(i) * 1000, RecordedAt: int64(i)*1000 + 1, PrevHash: head.Hash}
		h := x.chainHash(&r)
		r.Hash = h[:]
		heads[stream] = r
		rows = append(rows, r)
	}
	return rows
}

func leavesOf(t *testing.T, rows []Row) memoryTree {
	t.Helper()
	x := newHasher()
	out := make(memoryTree, len(rows))
	for i := range rows {
		l, err := x.rowLeaf(&rows[i])
		if err != nil {
			t.Fatal(err)
		}
		out[i] = l
	}
	return out
}

func openTestTree(t *testing.T, height uint) *Tree {
	t.Helper()
	tree, err := OpenTree(context.Background(), filepath.Join(t.TempDir(), "tree.db"), WithTileHeight(height))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tree.Close() })
	return tree
}

// The stored, incremental tree gives the roots and proofs of the tree in memory, for every
// size it passed through, while the log grows in uneven steps.
func TestTreeMatchesTheTreeInMemory(t *testing.T) {
	ctx := context.Background()
	for _, height := range []uint{1, 2, 3} {
		t.Run(fmt.Sprintf("tile height %d", height), func(t *testing.T) {
			t.Parallel()
			rows := makeRows(150, uint64(height))
			leaves := leavesOf(t, rows)
			src := &memSource{rows: rows}
			tree := openTestTree(t, height)
			rng := rand.New(rand.NewPCG(7, uint64(height)))
			for src.visible < len(rows) {
				src.visible = min(len(rows), src.visible+1+rng.IntN(13))
				head, err := tree.Update(ctx, src)
				if err != nil {
					t.Fatal(err)
				}
				n := int64(src.visible)
				if head.Size != n || head.LastPosition != rows[n-1].Position || head.Root != referenceRoot(leaves[:n]) {
					t.Fatalf("head %+v after %d events", head, n)
				}
				snap, err := tree.Snapshot(ctx, src)
				if err != nil {
					t.Fatal(err)
				}
				for range 5 {
					m := 1 + rng.Int64N(n)
					if root, err := snap.Root(ctx, m); err != nil || root != referenceRoot(leaves[:m]) {
						t.Fatalf("root of %d in a tree of %d: %s, %v", m, n, root, err)
					}
					i := rng.Int64N(m)
					idx, leaf, err := snap.Locate(ctx, rows[i].Position)
					if err != nil || idx != i || leaf != leaves[i] {
						t.Fatalf("locate position %d: %d %s %v", rows[i].Position, idx, leaf, err)
					}
					got, err := snap.InclusionPath(ctx, i, m)
					want, _ := inclusionPath(ctx, leaves, i, m)
					if err != nil || !slices.Equal(got, want) {
						t.Fatalf("inclusion of %d in %d: %v, %v", i, m, got, err)
					}
					from := rng.Int64N(m + 1)
					got, err = snap.ConsistencyPath(ctx, from, m)
					want, _ = consistencyPath(ctx, leaves, from, m)
					if err != nil || !slices.Equal(got, want) {
						t.Fatalf("consistency of %d with %d: %v, %v", from, m, got, err)
					}
				}
			}
		})
	}
}

// A second process (another Tree on the same file) continues where the first stopped.
func TestTreeIsSharedThroughItsFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "tree.db")
	rows := makeRows(100, 3)
	src := &memSource{rows: rows, visible: 37}
	a, err := OpenTree(ctx, path, WithTileHeight(2))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := OpenTree(ctx, path, WithTileHeight(2))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := a.Update(ctx, src); err != nil {
		t.Fatal(err)
	}
	src.visible = 100
	head, err := b.Update(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	if head.Root != referenceRoot(leavesOf(t, rows)) {
		t.Fatal("the second tree computed another root")
	}
	if _, err := OpenTree(ctx, path, WithTileHeight(3)); err == nil {
		t.Fatal("opened a tree file with another tile height")
	}
}

// A tree refuses an event whose stored hash is not the hash of its content, and a proof
// over a tile whose events changed after they were added reports the change.
func TestTreeNoticesChangedEvents(t *testing.T) {
	ctx := context.Background()
	rows := makeRows(40, 5)
	src := &memSource{rows: slices.Clone(rows), visible: 40}
	src.rows[10].Data = []byte(`{"i":"changed"}`)
	tree := openTestTree(t, 2)
	var ce *eventstore.ChainError
	if _, err := tree.Update(ctx, src); !errors.As(err, &ce) || ce.Position != rows[10].Position {
		t.Fatalf("update over a changed event: %v", err)
	}

	src.rows = slices.Clone(rows)
	if _, err := tree.Update(ctx, src); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(rows []Row) []Row
	}{
		{"event rehashed", func(rows []Row) []Row {
			x := newHasher()
			rows[5].Type = "other.v1"
			h := x.chainHash(&rows[5])
			rows[5].Hash = h[:]
			return rows
		}},
		{"event removed", func(rows []Row) []Row { return slices.Delete(rows, 6, 7) }},
		{"positions swapped", func(rows []Row) []Row {
			rows[4].Position, rows[5].Position = rows[5].Position, rows[4].Position
			rows[4], rows[5] = rows[5], rows[4]
			return rows
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			changed := &memSource{rows: tc.mutate(slices.Clone(rows))}
			changed.visible = len(changed.rows)
			snap, err := tree.Snapshot(ctx, changed)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := snap.Locate(ctx, rows[5].Position); !errors.Is(err, ErrLogAltered) {
				t.Fatalf("locate in a changed tile: %v", err)
			}
		})
	}
}
