package postgres

import (
	"encoding/json"
	"strings"

	"github.com/eventcrm/crm/eventstore"
)

// decodeMetadata decodes the metadata column. The store writes it with json.Marshal, so it is
// nearly always an object of plain strings under known keys: that case is parsed here without
// reflection, and its fields share the memory of s, which makes replays markedly faster.
// Anything else (an escape, an unknown key) goes to encoding/json.
func decodeMetadata(s string, m *eventstore.Metadata) error {
	if fastMetadata(s, m) {
		return nil
	}
	*m = eventstore.Metadata{}
	return json.Unmarshal([]byte(s), m)
}

// fastMetadata parses s as {"key":"value",...} with no escapes and no whitespace, and reports
// whether it could.
func fastMetadata(s string, m *eventstore.Metadata) bool {
	*m = eventstore.Metadata{}
	if len(s) < 2 || s[0] != '{' || s[len(s)-1] != '}' {
		return false
	}
	s = s[1 : len(s)-1]
	for len(s) > 0 {
		key, rest, ok := jsonString(s)
		if !ok || len(rest) == 0 || rest[0] != ':' {
			return false
		}
		value, rest, ok := jsonString(rest[1:])
		if !ok {
			return false
		}
		switch key {
		case "actor":
			m.Actor = value
		case "command_id":
			m.CommandID = value
		case "correlation_id":
			m.CorrelationID = value
		case "causation_id":
			m.CausationID = value
		case "reason":
			m.Reason = value
		case "request_hash":
			m.RequestHash = value
		default:
			return false
		}
		switch {
		case len(rest) == 0:
			return true
		case rest[0] == ',':
			s = rest[1:]
		default:
			return false
		}
	}
	return true
}

// jsonString splits a JSON string without escapes off the front of s.
func jsonString(s string) (value, rest string, ok bool) {
	if len(s) == 0 || s[0] != '"' {
		return "", "", false
	}
	end := strings.IndexByte(s[1:], '"')
	if end < 0 {
		return "", "", false
	}
	value = s[1 : 1+end]
	for i := 0; i < len(value); i++ {
		if c := value[i]; c == '\\' || c < 0x20 { // an escape, or not JSON: encoding/json decides
			return "", "", false
		}
	}
	return value, s[2+end:], true
}
