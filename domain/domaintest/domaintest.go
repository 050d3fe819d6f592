// Package domaintest runs given/when/then tables against the aggregates, with no I/O.
//
// A row names the events already in the stream (given), the decision under test (when) and
// either the exact events it must emit or the domain error it must return (then).
package domaintest

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/eventcrm/crm/domain"
)

// OccurredAt is the fixed business time at which given events are applied.
var OccurredAt = time.Date(2025, 4, 1, 9, 30, 0, 0, time.UTC)

// Aggregate is what a given/when/then table needs from an aggregate's state: a pointer to it
// that folds events.
type Aggregate[S any] interface {
	*S
	Apply(e domain.Event, occurredAt time.Time)
}

// Case is one row of a given/when/then table over state S. Exactly one of Then and WantCode is
// set; an empty Then with no WantCode means "no events and no error".
type Case[S any] struct {
	Name  string
	Given []domain.Event
	When  func(s *S) ([]domain.Event, error)
	// Then is the exact list of emitted events.
	Then []domain.Event
	// WantCode and WantMessage describe the expected domain error: its code and a substring of
	// its message (Error(), so the field name can be matched too).
	WantCode    domain.Code
	WantMessage string
}

// Run runs every row as a parallel subtest. It also checks that a decision does not change the
// state it decides on, and that emitted events can be folded.
func Run[S any, P Aggregate[S]](t *testing.T, cases []Case[S]) {
	t.Helper()
	seen := map[string]bool{}
	for _, tc := range cases {
		if seen[tc.Name] {
			t.Fatalf("two rows are named %q", tc.Name)
		}
		seen[tc.Name] = true
		t.Run(tc.Name, func(t *testing.T) {
			t.Parallel()
			if tc.Then != nil && tc.WantCode != "" {
				t.Fatal("bad row: both Then and WantCode are set")
			}
			state, pristine := Fold[S, P](tc.Given), Fold[S, P](tc.Given)

			got, err := tc.When(state)

			if !reflect.DeepEqual(state, pristine) {
				t.Errorf("the decision changed the state:\nbefore %+v\nafter  %+v", *pristine, *state)
			}
			if tc.WantCode != "" {
				CheckError(t, err, tc.WantCode, tc.WantMessage)
				if len(got) != 0 {
					t.Errorf("events emitted along with an error:\n%s", Format(got))
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v (code %q)", err, domain.ErrorCode(err))
			}
			if d := DiffEvents(tc.Then, got); d != "" {
				t.Errorf("events differ (-want +got):\n%s", d)
			}
			for _, e := range got {
				P(state).Apply(e, OccurredAt)
			}
		})
	}
}

// Fold applies events in order to a new state, all at OccurredAt.
func Fold[S any, P Aggregate[S]](events []domain.Event) *S {
	s := new(S)
	for _, e := range events {
		P(s).Apply(e, OccurredAt)
	}
	return s
}

// CheckError fails t unless err is a domain error with code whose text contains message.
func CheckError(t testing.TB, err error, code domain.Code, message string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want a %q error containing %q", code, message)
	}
	if got := domain.ErrorCode(err); got != code {
		t.Errorf("error code %q (%v); want %q", got, err, code)
	}
	if !strings.Contains(err.Error(), message) {
		t.Errorf("error %q does not contain %q", err.Error(), message)
	}
}

// DiffEvents returns "" when got equals want exactly (same Go types, same values), else a
// line diff of both lists, one event a line as its type and JSON; "-" marks a wanted event
// that is missing, "+" an emitted event that was not wanted.
func DiffEvents(want, got []domain.Event) string {
	if len(want) == 0 && len(got) == 0 {
		return ""
	}
	if reflect.DeepEqual(want, got) {
		return ""
	}
	var b strings.Builder
	for i := 0; i < max(len(want), len(got)); i++ {
		var w, g string
		if i < len(want) {
			w = line(want[i])
		}
		if i < len(got) {
			g = line(got[i])
		}
		switch {
		case i < len(want) && i < len(got) && reflect.DeepEqual(want[i], got[i]):
			fmt.Fprintf(&b, "  %s\n", w)
		default:
			if i < len(want) {
				fmt.Fprintf(&b, "- %s\n", w)
			}
			if i < len(got) {
				fmt.Fprintf(&b, "+ %s\n", g)
			}
		}
	}
	return b.String()
}

// Format lists events one a line, as in DiffEvents.
func Format(events []domain.Event) string {
	var b strings.Builder
	for _, e := range events {
		fmt.Fprintf(&b, "  %s\n", line(e))
	}
	return b.String()
}

// line shows the Go type too, so a value of the wrong type with the same JSON is visible.
func line(e domain.Event) string {
	if e == nil {
		return "<nil>"
	}
	data, err := json.Marshal(e)
	if err != nil {
		data = []byte(err.Error())
	}
	return fmt.Sprintf("%s (%T) %s", e.EventType(), e, data)
}
