package projections

import (
	"reflect"
	"testing"
)

func TestStorableText(t *testing.T) {
	type phase string
	tests := []struct {
		name string
		in   []any
		want []any
	}{
		{"plain text stays", []any{"Aiko", int64(3), nil}, []any{"Aiko", int64(3), nil}},
		{"NUL", []any{"a\x00b"}, []any{"a\uFFFDb"}},
		{"NUL alone", []any{"\x00"}, []any{"\uFFFD"}},
		{"each invalid byte", []any{"x\xff\xfey"}, []any{"x\uFFFD\uFFFDy"}},
		{"a truncated sequence", []any{"\xe3\x81"}, []any{"\uFFFD\uFFFD"}},
		{"valid multibyte and controls other than NUL stay", []any{"佐藤\t\n\x01"}, []any{"佐藤\t\n\x01"}},
		{"a named string type", []any{phase("lead\x00")}, []any{"lead\uFFFD"}},
		{"a list of keys", []any{[]string{"c1", "c\x002"}}, []any{[]string{"c1", "c\uFFFD2"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := append([]any(nil), tc.in...)
			got := storableArgs(in)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("storableArgs(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if !reflect.DeepEqual(in, tc.in) {
				t.Fatalf("the caller's values changed: %q", in)
			}
		})
	}
}
