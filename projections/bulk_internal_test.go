package projections

import (
	"slices"
	"testing"
)

type sortCase struct {
	name       string
	width, key int
	values     []any
	want       []any
}

// manyOfFewKeys is enough rows for the sort not to be a plain insertion sort: 300 rows of 3
// text keys, the second column their order.
func manyOfFewKeys() sortCase {
	c := sortCase{name: "many rows of few keys", width: 2, key: 1}
	keys := []string{"c", "a", "b"}
	for i := range 300 {
		c.values = append(c.values, keys[i*7%3], int64(i))
	}
	for _, k := range []string{"a", "b", "c"} {
		for i := range 300 {
			if keys[i*7%3] == k {
				c.want = append(c.want, k, int64(i))
			}
		}
	}
	return c
}

// sortRows orders rows by key and keeps rows of one key in the order given: with
// ConflictIgnore the first of them wins.
func TestSortRowsKeepsTheOrderOfRowsOfOneKey(t *testing.T) {
	for _, tc := range []sortCase{
		{name: "number key", width: 2, key: 1,
			values: []any{int64(3), "a", int64(1), "b", int64(3), "c", int64(1), "d", int64(2), "e"},
			want:   []any{int64(1), "b", int64(1), "d", int64(2), "e", int64(3), "a", int64(3), "c"}},
		{name: "text and number key", width: 3, key: 2,
			values: []any{"y", int64(1), "a", "x", int64(2), "b", "y", int64(1), "c", "x", int64(1), "d", "x", int64(2), "e"},
			want:   []any{"x", int64(1), "d", "x", int64(2), "b", "x", int64(2), "e", "y", int64(1), "a", "y", int64(1), "c"}},
		{name: "wide key", width: 4, key: 3,
			values: []any{"b", "p", int64(1), "a", "a", "q", int64(2), "b", "b", "p", int64(1), "c", "a", "q", int64(1), "d", "a", "q", int64(2), "e"},
			want:   []any{"a", "q", int64(1), "d", "a", "q", int64(2), "b", "a", "q", int64(2), "e", "b", "p", int64(1), "a", "b", "p", int64(1), "c"}},
		// Wide keys are compared through an encoding of each: a text before its extensions
		// and before any longer text it begins (also one of a 0 byte), negative numbers
		// before positive ones.
		{name: "wide key of prefixes", width: 4, key: 3,
			values: []any{"ab", "", int64(0), "a", "a", "b", int64(0), "b", "a\x00", "", int64(0), "c", "a", "", int64(5), "d",
				"a", "", int64(-5), "e", "a", "\x00", int64(0), "f"},
			want: []any{"a", "", int64(-5), "e", "a", "", int64(5), "d", "a", "\x00", int64(0), "f", "a", "b", int64(0), "b",
				"a\x00", "", int64(0), "c", "ab", "", int64(0), "a"}},
		{name: "wide key of other types", width: 3, key: 3,
			values: []any{"b", 2.5, nil, "a", 1.5, nil, "b", 1.5, nil},
			want:   []any{"a", 1.5, nil, "b", 1.5, nil, "b", 2.5, nil}},
		manyOfFewKeys(),
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := sortRows(slices.Clone(tc.values), tc.width, tc.key); !slices.Equal(got, tc.want) {
				t.Errorf("sortRows = %v, want %v", got, tc.want)
			}
		})
	}
}
