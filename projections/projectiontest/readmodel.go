package projectiontest

import (
	"testing"

	"github.com/eventcrm/crm/projections"
)

// ReadModel is what the tests of every read model check alike, each a subtest of Test:
//
//	name         the persisted name is Name: it never changes (checkpoints, table names)
//	golden       RunGolden over the cases under Dir, answered by Answer
//	apply modes  RunApplyModes over the same cases
//	refuses      Refuses: Query refuses each of Refusals as invalid (run when there are some)
type ReadModel[P, A any] struct {
	Projection projections.Projection
	Name       string
	Dir        string // "testdata" when empty
	Query      Question[P, A]
	Answer     AnswerFunc // AnswerWith(Query) when nil: every golden query asks Query
	Refusals   []Refusal[P]
}

// Test runs the subtests of r (go test -run 'TestReadModel/golden' -update rewrites the golden
// files of a read model whose test is TestReadModel).
func (r ReadModel[P, A]) Test(t *testing.T) {
	t.Helper()
	dir, answer := r.Dir, r.Answer
	if dir == "" {
		dir = "testdata"
	}
	if answer == nil {
		answer = AnswerWith(r.Query)
	}
	t.Run("name", func(t *testing.T) {
		if got := r.Projection.Name(); got != r.Name {
			t.Errorf("name = %q, want %q", got, r.Name)
		}
	})
	t.Run("golden", func(t *testing.T) { RunGolden(t, dir, r.Projection, answer) })
	t.Run("apply modes", func(t *testing.T) { RunApplyModes(t, dir, r.Projection) })
	if len(r.Refusals) > 0 {
		t.Run("refuses", func(t *testing.T) { Refuses(t, r.Projection, r.Query, r.Refusals) })
	}
}
