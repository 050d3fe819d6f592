package domain

import (
	"encoding/json"
	"reflect"
	"sync"
	"unicode/utf8"

	gojson "github.com/goccy/go-json"
)

// DecodeData decodes the stored JSON of an event into v (a pointer to the event's type). Every
// event is decoded again wherever it is read: by each aggregate a command loads, by every read
// model on the live path, in rebuilds and in time travel, where decoding is most of the work.
// So it is decoded with github.com/goccy/go-json, about twice as fast as encoding/json, which
// gives the same value for any valid JSON (TestDecodeDataAgreesWithEncodingJSON,
// FuzzDecodeDataAgreesWithEncodingJSON) but three kinds, left to encoding/json here (see
// plainData): invalid UTF-8 (kept as it is, where encoding/json reads U+FFFD), a number of 19
// digits just beyond an int64 (not refused), and a member name written otherwise than in
// lower-case ASCII without escapes (goccy/go-json matches "\u0074" to a field "to", does not
// fold the Kelvin sign to k nor ſ to s, and in a struct of more than 16 fields matches no
// upper-case name). What is stored is always valid JSON: Encode wrote it, and the hash chain
// of each stream shows it unchanged. (Of invalid JSON goccy/go-json does not check the members
// it skips: an error may come later or not at all.)
func DecodeData(data []byte, v any) error {
	if !utf8.Valid(data) || !plainData(data) {
		return json.Unmarshal(data, v)
	}
	t := reflect.TypeOf(v)
	if _, ok := compiled.Load(t); ok {
		return gojson.Unmarshal(data, v)
	}
	return decodeFirst(t, data, v)
}

// goccy/go-json (v0.10.5) compiles a decoder for a type the first time it decodes one and
// keeps it in a table it writes without a lock: a goroutine that decodes the same type
// meanwhile may find it half written and crash (goccy/go-json issues 474, 495 and 566). So
// the first decoding of each type is done under compiling, one at a time, and the types done
// are in compiled: the others decode without a lock. Those two are the only state of the
// package, as the library's own table is of the process.
var (
	compiling sync.Mutex
	compiled  sync.Map // reflect.Type of the value decoded into → struct{}
)

// decodeFirst decodes data into v, of type t, the first time, under compiling.
func decodeFirst(t reflect.Type, data []byte, v any) error {
	compiling.Lock()
	defer compiling.Unlock()
	err := gojson.Unmarshal(data, v)
	compiled.Store(t, struct{}{})
	return err
}

// plainData says whether data holds no run of 19 digits (in a number or a text), no member
// name with an escape, a byte beyond ASCII or an upper-case letter, and no text cut short or
// with an invalid escape (goccy/go-json may read past the end of such data and panic): what
// goccy/go-json reads as encoding/json does.
func plainData(data []byte) bool {
	run := 0
	for i := 0; i < len(data); i++ {
		c := data[i]
		if c-'0' <= 9 {
			if run++; run == 19 {
				return false
			}
			continue
		}
		run = 0
		if c != '"' {
			continue
		}
		plain := true
		for i++; i < len(data) && data[i] != '"'; i++ {
			switch c := data[i]; {
			case c-'0' <= 9:
				if run++; run == 19 {
					return false
				}
				continue
			case c == '\\':
				plain = false
				if i++; i == len(data) || !escape(data[i]) {
					return false // invalid JSON, which goccy/go-json may read past its end
				}
			case c >= utf8.RuneSelf || c-'A' <= 'Z'-'A':
				plain = false
			}
			run = 0
		}
		run = 0
		if i == len(data) || !plain && memberName(data[i+1:]) {
			return false
		}
	}
	return true
}

// escape says whether c may follow a backslash in JSON text.
func escape(c byte) bool {
	switch c {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't', 'u':
		return true
	}
	return false
}

// memberName says whether the text just read is a member name: a colon follows it.
func memberName(rest []byte) bool {
	for _, c := range rest {
		switch c {
		case ' ', '\t', '\n', '\r':
		case ':':
			return true
		default:
			return false
		}
	}
	return false
}
