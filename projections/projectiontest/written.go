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
	At  time.Time
	rng *rand.Rand
	b   strings.Builder
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
