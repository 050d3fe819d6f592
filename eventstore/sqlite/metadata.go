package sqlite

import (
	"encoding/json"
	"unicode/utf8"

	"github.com/eventcrm/crm/eventstore"
)

// decodeMetadata decodes the metadata column. The column always holds what json.Marshal wrote
// for eventstore.Metadata, which a small scanner reads several times faster than reflection
// does: that matters when a projection is rebuilt from the whole log. Anything the scanner
// does not expect (escapes, spaces, a field it does not know) goes to encoding/json.
func decodeMetadata(b []byte, m *eventstore.Metadata) error {
	if scanMetadata(b, m) {
		return nil
	}
	*m = eventstore.Metadata{}
	return json.Unmarshal(b, m)
}

// scanMetadata reads a flat JSON object of known string fields without escapes. It reports
// false, leaving m partly set, for any other input.
func scanMetadata(b []byte, m *eventstore.Metadata) bool {
	*m = eventstore.Metadata{}
	if len(b) < 2 || b[0] != '{' {
		return false
	}
	i := 1
	if b[i] == '}' {
		return i+1 == len(b)
	}
	for {
		key, next, ok := scanString(b, i)
		if !ok || next >= len(b) || b[next] != ':' {
			return false
		}
		value, next, ok := scanString(b, next+1)
		if !ok || next >= len(b) {
			return false
		}
		switch string(key) { // no allocation: the compiler compares in place
		case "actor":
			m.Actor = string(value)
		case "command_id":
			m.CommandID = string(value)
		case "correlation_id":
			m.CorrelationID = string(value)
		case "causation_id":
			m.CausationID = string(value)
		case "reason":
			m.Reason = string(value)
		case "request_hash":
			m.RequestHash = string(value)
		default:
			return false
		}
		switch b[next] {
		case ',':
			i = next + 1
		case '}':
			return next+1 == len(b)
		default:
			return false
		}
	}
}

// scanString reads the JSON string starting at b[i] and returns its contents and the index
// after its closing quote. It refuses escapes, control characters and invalid UTF-8, which
// encoding/json would rewrite.
func scanString(b []byte, i int) (s []byte, next int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	ascii := true
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			s = b[i+1 : j]
			if !ascii && !utf8.Valid(s) {
				return nil, 0, false
			}
			return s, j + 1, true
		case c == '\\' || c < 0x20:
			return nil, 0, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, 0, false
}
