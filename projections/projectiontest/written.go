package projectiontest

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Written is a history a test writes at random, as the text ParseHistory reads: one event a
// line, each at the business time At, which the writer moves on as it goes.
type Written struct {
	At     time.Time
	rng    *rand.Rand
	b      strings.Builder
	merged map[int]bool // the contacts MergeSome merged, by number
}

// NewWritten is an empty history starting at at, drawn from rng.
func NewWritten(rng *rand.Rand, at time.Time) *Written { return &Written{At: at, rng: rng} }

// Line writes an event of type typ on stream at At, with the JSON data.
func (w *Written) Line(stream, typ, data string) {
	fmt.Fprintf(&w.b, "%s %s %s %s\n", w.At.Format(time.RFC3339Nano), stream, typ, data)
}

// Pick is one of list, drawn at random.
func (w *Written) Pick(list ...string) string { return list[w.rng.IntN(len(list))] }

// String is the history written so far.
func (w *Written) String() string { return w.b.String() }

// MergeSome merges contact <prefix><i>, created at since, into an earlier one not merged
// itself (<prefix><j>, j < i), one time in four: a day after At, or back-dated to a time
// between since and At, one time in two (see Merge).
func (w *Written) MergeSome(prefix string, i int, since time.Time) {
	into := w.rng.IntN(max(i, 1))
	if i == 0 || w.merged[into] || w.rng.IntN(4) != 0 {
		return
	}
	if w.merged == nil {
		w.merged = map[int]bool{}
	}
	w.merged[i] = true
	w.Merge(fmt.Sprintf("%s%d", prefix, i), fmt.Sprintf("%s%d", prefix, into), since, w.rng.IntN(2) == 0)
}

// Merge writes the merge of contact id into contact into (contact.merged_into on the
// duplicate's stream, then contact.duplicate_absorbed on the survivor's): a day after At, or
// when backDated at a time drawn between since and At. At then stays at the later of the two.
func (w *Written) Merge(id, into string, since time.Time, backDated bool) {
	last := w.At
	w.At = w.At.Add(24 * time.Hour)
	if backDated && last.After(since) {
		w.At = since.Add(time.Duration(w.rng.Int64N(int64(last.Sub(since)))))
	}
	w.Line("contact-"+id, "contact.merged_into.v1", fmt.Sprintf(`{"contact_id":%q,"into":%q}`, id, into))
	w.Line("contact-"+into, "contact.duplicate_absorbed.v1", fmt.Sprintf(`{"contact_id":%q,"duplicate_id":%q}`, into, id))
	if w.At.Before(last) {
		w.At = last
	}
}
