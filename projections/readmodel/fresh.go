package readmodel

import (
	"hash/maphash"

	"github.com/eventcrm/crm/projections"
)

// fresh is what the batch path knows of a set a builder writes from empty (its first batch
// starts at checkpoint 0): the keys of the rows of its tables of counters (those Add writes)
// written since.
// An addition to a key not written yet is a new row: it is copied in with the batch's other
// new rows (COPY on PostgreSQL), instead of being merged with INSERT ... ON CONFLICT DO
// UPDATE, whose checks of the key cost PostgreSQL most of a rebuild of counters. Only the
// additions to a key written by an earlier batch are merged.
//
// Keys are held as hashes: a new key whose hash was written before is merged, which is right
// too (a merge into no row inserts it). A key stored but not noted could only come from a
// write that did not go through the batch path with this state: the live path drops the
// state of its set (Model.Apply), and a write that fails drops it too. Were one left, its COPY
// would fail and the batch would be folded event by event, which is right.
type fresh struct {
	seed    maphash.Seed
	written map[table]map[uint64]struct{}
}

func newFresh() *fresh {
	return &fresh{seed: maphash.MakeSeed(), written: map[table]map[uint64]struct{}{}}
}

// firstWrite notes that the row of key k of table t, a table of counters, is written, and
// says whether it is the first time since the set was empty. A nil fresh knows nothing: false.
func (f *fresh) firstWrite(t table, k rowKey) bool {
	if f == nil {
		return false
	}
	keys := f.written[t]
	if keys == nil {
		keys = map[uint64]struct{}{}
		f.written[t] = keys
	}
	h := maphash.Comparable(f.seed, k)
	if _, ok := keys[h]; ok {
		return false
	}
	keys[h] = struct{}{}
	return true
}

// freshFor returns the state of set t for the prepared batch of a builder that starts at
// start: a new one when the set holds nothing yet (start 0), else the one kept since, if any.
func (m *Model) freshFor(t projections.Tables, start int64) *fresh {
	m.freshMu.Lock()
	defer m.freshMu.Unlock()
	if start == 0 {
		f := newFresh()
		if m.fresh == nil {
			m.fresh = map[string]*fresh{}
		}
		m.fresh[t.Prefix()] = f
		m.freshSets.Store(int32(len(m.fresh)))
		return f
	}
	return m.fresh[t.Prefix()]
}

// EndBuild forgets what the batch path knows of set t (see fresh): the builder is done with
// it, or something else writes it.
func (m *Model) EndBuild(t projections.Tables) {
	if m.freshSets.Load() == 0 {
		return
	}
	m.freshMu.Lock()
	defer m.freshMu.Unlock()
	delete(m.fresh, t.Prefix())
	m.freshSets.Store(int32(len(m.fresh)))
}
