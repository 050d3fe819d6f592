package readmodel

import (
	"encoding/binary"
	"reflect"
)

// rowKey is the key of a row as a map key, held as values rather than encoded: a fold looks
// up and records a row by key for every event, and an encoded key would be a string built
// and allocated each time. The columns of a key of one or two columns (every key the read
// models have) are in s (texts) or n (numbers), by column; in a wider key, the first is, and
// the others are encoded together in s[1].
type rowKey struct {
	s [2]string
	n [2]int64
}

// group is the key of k's group: its first value alone.
func (k rowKey) group() rowKey {
	return rowKey{s: [2]string{k.s[0]}, n: [2]int64{k.n[0]}}
}

// keyFrom is the key of the key values given to Get or Delete (strings, int64s, or ints,
// untyped constants).
func keyFrom(values []any) rowKey {
	var k rowKey
	if len(values) > 2 {
		var buf [64]byte
		b := buf[:0]
		for _, v := range values[1:] {
			b = appendKeyValue(b, v)
		}
		k.s[1] = string(b)
		values = values[:1]
	}
	for i, v := range values {
		k.set(i, v)
	}
	return k
}

// set puts v as the value of key column i (i < 2).
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
func (k rowKey) values(kinds []kind) []any {
	values := make([]any, len(kinds))
	natural := kinds
	if len(kinds) > 2 {
		natural = kinds[:1]
		decodeKeyValues(values[1:], k.s[1])
	}
	for i, kd := range natural {
		if kd == kindText {
			values[i] = k.s[i]
		} else {
			values[i] = k.n[i]
		}
	}
	return values
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
