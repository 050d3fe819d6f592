package projections

import (
	"bytes"
	"cmp"
	"fmt"
	"strings"
)

// The order of SQL values as the read models' keys are sorted: bulk inserts write rows in
// key order, and diffs merge two sets' rows by key.

// CompareRows orders rows value by value with CompareValues.
func CompareRows(a, b []any) int {
	for i := range a {
		if c := CompareValues(a[i], b[i]); c != 0 {
			return c
		}
	}
	return 0
}

// CompareValues orders values as SQLite does across types (NULL, numbers, text, blobs) and
// as both dialects do within one (text bytewise, i.e. COLLATE "C").
func CompareValues(a, b any) int {
	ra, rb := typeRank(a), typeRank(b)
	if ra != rb {
		return cmp.Compare(ra, rb)
	}
	switch x := a.(type) {
	case nil:
		return 0
	case int64:
		if y, ok := b.(int64); ok {
			return cmp.Compare(x, y)
		}
		return cmp.Compare(float64(x), b.(float64))
	case float64:
		if y, ok := b.(int64); ok {
			return cmp.Compare(x, float64(y))
		}
		return cmp.Compare(x, b.(float64))
	case bool:
		y := b.(bool)
		switch {
		case x == y:
			return 0
		case !x:
			return -1
		default:
			return 1
		}
	case string:
		return strings.Compare(x, b.(string))
	case []byte:
		return bytes.Compare(x, b.([]byte))
	}
	return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
}

func typeRank(v any) int {
	switch v.(type) {
	case nil:
		return 0
	case int64, float64, bool:
		return 1
	case string:
		return 2
	case []byte:
		return 3
	}
	return 4
}
