package readmodel

import (
	"encoding/binary"
	"reflect"
)

// rowKey is the key of a row as a map key, held as values rather than encoded: a fold looks
// up and records a row by key for every event, and an encoded key would be a string built
// and allocated each time. The texts of a key are in s and its numbers in n, in the order of
// the key's columns (see keyShape): every key of at most two texts and two numbers (a parts
// table's position, entity and figure) is held so. In a wider key the first column is, and
// the others are encoded together in s[1].
type rowKey struct {
	s [2]string
	n [2]int64
}

// keyShape is where the key columns of a table are held in its rows' keys.
type keyShape struct {
	kinds []kind
	// slots holds the place of each key column in s (texts) or n (numbers); nil for a wide
	// key, whose columns after the first are encoded.
	slots []int
}

func newKeyShape(kinds []kind) keyShape {
	shape := keyShape{kinds: kinds, slots: make([]int, len(kinds))}
	var texts, numbers int
	for i, k := range kinds {
		if k == kindText {
			shape.slots[i] = texts
			texts++
		} else {
			shape.slots[i] = numbers
			numbers++
		}
	}
	if texts > 2 || numbers > 2 {
		shape.slots = nil
	}
	return shape
}

// group is the key of k's group: its first value alone.
func (sh keyShape) group(k rowKey) rowKey {
	if sh.kinds[0] == kindText {
		return rowKey{s: [2]string{k.s[0]}}
	}
	return rowKey{n: [2]int64{k.n[0]}}
}

// groupOf is the key of the group whose first value is v.
func (sh keyShape) groupOf(v any) rowKey {
	var k rowKey
	k.set(0, v)
	return k
}

// of is the key of the key values given to Get or Delete (strings, int64s, or ints, untyped
// constants).
func (sh keyShape) of(values []any) rowKey {
	var k rowKey
	if sh.slots == nil || len(values) != len(sh.slots) {
		if len(values) > 1 {
			var buf [64]byte
			b := buf[:0]
			for _, v := range values[1:] {
				b = appendKeyValue(b, v)
			}
			k.s[1] = string(b)
		}
		if len(values) > 0 {
			k.set(0, values[0])
		}
		return k
	}
	for i, v := range values {
		k.set(sh.slots[i], v)
	}
	return k
}

// set puts v in slot i of its kind (i < 2).
func (k *rowKey) set(i int, v any) {
	switch v := v.(type) {
	case string:
		k.s[i] = v
	case int64:
		k.n[i] = v
	case int:
		k.n[i] = int64(v)
	default:
		panic(badKeyValue(v))
	}
}

// values are the values of k's columns, as query arguments: strings and int64s.
func (sh keyShape) values(k rowKey) []any {
	values := make([]any, len(sh.kinds))
	if sh.slots == nil {
		decodeKeyValues(values[1:], k.s[1])
		values[0] = sh.groupValue(k)
		return values
	}
	for i, kd := range sh.kinds {
		if kd == kindText {
			values[i] = k.s[sh.slots[i]]
		} else {
			values[i] = k.n[sh.slots[i]]
		}
	}
	return values
}

// groupValue is the value of k's first column.
func (sh keyShape) groupValue(k rowKey) any {
	if sh.kinds[0] == kindText {
		return k.s[0]
	}
	return k.n[0]
}

func appendKeyValue(b []byte, v any) []byte {
	switch v := v.(type) {
	case string:
		return appendText(b, v)
	case int64:
		return appendNumber(b, v)
	case int:
		return appendNumber(b, int64(v))
	}
	panic(badKeyValue(v))
}

// badKeyValue is the panic of a key value of another type. It reads the value's type alone,
// so that the key values given to Get stay on the caller's stack.
func badKeyValue(v any) string {
	return "readmodel: key value of type " + reflect.TypeOf(v).String()
}

// A text is its length times two, then its bytes; a number 1, then its 8 bytes: no two keys
// share an encoding.
func appendText(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s))<<1)
	return append(b, s...)
}

func appendNumber(b []byte, n int64) []byte {
	b = binary.AppendUvarint(b, 1)
	return binary.BigEndian.AppendUint64(b, uint64(n))
}

// decodeKeyValues decodes the values encoded in more (the key columns after the first of a
// wide key) into values.
func decodeKeyValues(values []any, more string) {
	for i := range values {
		h, n := binary.Uvarint([]byte(more))
		more = more[n:]
		if h&1 == 1 {
			values[i] = int64(binary.BigEndian.Uint64([]byte(more[:8])))
			more = more[8:]
			continue
		}
		values[i] = more[:h>>1]
		more = more[h>>1:]
	}
}
