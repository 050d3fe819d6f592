package domain_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/eventcrm/crm/domain"
)

type happened struct {
	N int `json:"n"`
}

func (*happened) EventType() string { return "test.happened.v1" }

type happenedAgain struct{}

// happenedAgain claims the name of happened: a programming error the registry must catch.
func (*happenedAgain) EventType() string { return "test.happened.v1" }

type other struct{}

func (*other) EventType() string { return "test.other.v1" }

type byValue struct{}

func (byValue) EventType() string { return "test.by_value.v1" }

func TestNewRegistryPanics(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		prototypes []domain.Event
		wantPanic  string
	}{
		{"same type twice", []domain.Event{&happened{}, &other{}, &happened{}}, `event type "test.happened.v1" registered twice`},
		{"two types, one name", []domain.Event{&happened{}, &happenedAgain{}}, `event type "test.happened.v1" registered twice`},
		{"prototype not a pointer", []domain.Event{byValue{}}, "event prototypes must be pointers: test.by_value.v1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			defer func() {
				r := recover()
				if r == nil || !strings.Contains(fmt.Sprint(r), tc.wantPanic) {
					t.Errorf("panic %v; want one containing %q", r, tc.wantPanic)
				}
			}()
			domain.NewRegistry(tc.prototypes...)
		})
	}
}

func TestRegistry(t *testing.T) {
	t.Parallel()
	r := domain.NewRegistry(&other{}, &happened{})
	if got, want := r.Names(), []string{"test.happened.v1", "test.other.v1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Names() = %v; want %v", got, want)
	}
	e, err := r.Decode("test.happened.v1", []byte(`{"n":7}`))
	if err != nil || !reflect.DeepEqual(e, &happened{N: 7}) {
		t.Errorf("Decode = %#v, %v", e, err)
	}
	data, err := domain.Encode(&happened{N: 7})
	if err != nil || string(data) != `{"n":7}` {
		t.Errorf("Encode = %s, %v", data, err)
	}
	if _, err := r.Decode("test.missing.v1", []byte(`{}`)); err == nil || !strings.Contains(err.Error(), `unknown event type "test.missing.v1"`) {
		t.Errorf("Decode of an unknown type: %v", err)
	}
	if _, err := r.New("test.missing.v1"); err == nil {
		t.Error("New of an unknown type: no error")
	}
	if got := domain.NewRegistry().Names(); len(got) != 0 {
		t.Errorf("empty registry has names %v", got)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		err      error
		wantCode domain.Code
		wantText string
	}{
		{"invalid names its field", domain.Invalid("email", "%q is bad", "x"), domain.CodeInvalid, `email: "x" is bad`},
		{"refused", domain.Refused("task %s is done", "t-1"), domain.CodeRefused, "task t-1 is done"},
		{"not found", domain.NotFound("deal not found"), domain.CodeNotFound, "deal not found"},
		{"conflict", domain.Conflict("exists"), domain.CodeConflict, "exists"},
		{"merged names the survivor", domain.Merged("contact", "c-1", "c-2"), domain.CodeMerged, "contact c-1 was merged into c-2"},
		{"wrapped", fmt.Errorf("decide: %w", domain.Refused("no")), domain.CodeRefused, "decide: no"},
		{"joined", errors.Join(errors.New("first"), domain.NotFound("gone")), domain.CodeNotFound, "first\ngone"},
		{"not a domain error", errors.New("disk full"), "", "disk full"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := domain.ErrorCode(tc.err); got != tc.wantCode {
				t.Errorf("ErrorCode = %q; want %q", got, tc.wantCode)
			}
			if got := tc.err.Error(); got != tc.wantText {
				t.Errorf("Error() = %q; want %q", got, tc.wantText)
			}
		})
	}
	if got := domain.ErrorCode(nil); got != "" {
		t.Errorf("ErrorCode(nil) = %q", got)
	}
}

func TestMergedInto(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		err    error
		want   string
		wantOK bool
	}{
		{"a merged error names the survivor", domain.Merged("contact", "c-1", "c-2"), "c-2", true},
		{"wrapped, it still does", fmt.Errorf("decide: %w", domain.Merged("contact", "c-1", "c-2")), "c-2", true},
		{"another domain error names none", domain.Refused("no"), "", false},
		{"a plain error names none", errors.New("disk full"), "", false},
		{"nil names none", nil, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, ok := domain.MergedInto(tc.err)
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("MergedInto = %q, %v; want %q, %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}
