package directory

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendJSON appends the page exactly as encoding/json encodes it, without its reflection:
// the HTTP answer writes a page of the directory, its most asked list, in one piece.
func (c Contacts) AppendJSON(dst []byte) ([]byte, error) {
	dst = append(dst, `{"total":`...)
	dst = strconv.AppendInt(dst, c.Total, 10)
	dst, err := appendArray(append(dst, `,"contacts":`...), c.Contacts, func(dst []byte, e ContactEntry) ([]byte, error) {
		return e.appendJSON(dst)
	})
	if err != nil {
		return dst, err
	}
	if c.NextCursor != "" {
		dst = appendField(dst, "next_cursor", c.NextCursor)
	}
	return append(dst, '}'), nil
}

// appendJSON appends the contact as encoding/json encodes ContactEntry: its fields in order,
// those marked omitempty only when not empty.
func (e ContactEntry) appendJSON(dst []byte) ([]byte, error) {
	dst = append(dst, `{"contact_id":`...)
	dst = appendString(dst, e.ContactID)
	dst = appendField(dst, "name", e.Name)
	for _, f := range [...]struct{ name, value string }{{"email", e.Email}, {"phone", e.Phone}, {"company", e.Company}} {
		if f.value != "" {
			dst = appendField(dst, f.name, f.value)
		}
	}
	dst = append(dst, `,"account":`...)
	if e.Account == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, `{"account_id":`...)
		dst = appendString(dst, e.Account.AccountID)
		dst = append(appendField(dst, "name", e.Account.Name), '}')
	}
	dst = appendField(dst, "phase", string(e.Phase))
	dst, err := appendTime(append(dst, `,"phase_since":`...), e.PhaseSince)
	if err != nil {
		return dst, err
	}
	dst = appendField(dst, "owner", e.Owner)
	if e.Segment != "" {
		dst = appendField(dst, "segment", e.Segment)
	}
	dst = appendField(dst, "channel", e.Channel)
	if dst, err = appendTime(append(dst, `,"created_at":`...), e.CreatedAt); err != nil {
		return dst, err
	}
	dst = append(dst, `,"last_activity":`...)
	if e.LastActivity == nil {
		dst = append(dst, "null"...)
	} else if dst, err = appendTime(dst, *e.LastActivity); err != nil {
		return dst, err
	}
	dst = strconv.AppendInt(append(dst, `,"open_deals":`...), e.OpenDeals, 10)
	dst, err = appendArray(append(dst, `,"opted_out":`...), e.OptedOut, func(dst []byte, ch string) ([]byte, error) {
		return appendString(dst, ch), nil
	})
	if err != nil {
		return dst, err
	}
	return append(dst, '}'), nil
}

// appendArray appends items as encoding/json encodes a slice: null when nil, else each item
// by appendItem between brackets.
func appendArray[T any](dst []byte, items []T, appendItem func([]byte, T) ([]byte, error)) ([]byte, error) {
	if items == nil {
		return append(dst, "null"...), nil
	}
	dst = append(dst, '[')
	for i, item := range items {
		if i > 0 {
			dst = append(dst, ',')
		}
		var err error
		if dst, err = appendItem(dst, item); err != nil {
			return dst, err
		}
	}
	return append(dst, ']'), nil
}

// appendField appends ,"name":"value".
func appendField(dst []byte, name, value string) []byte {
	dst = append(append(append(dst, `,"`...), name...), `":`...)
	return appendString(dst, value)
}

// appendTime appends t as time.Time's MarshalJSON does.
func appendTime(dst []byte, t time.Time) ([]byte, error) {
	if y := t.Year(); y < 0 || y > 9999 {
		return dst, fmt.Errorf("time %v: year outside of range [0,9999]", y)
	}
	dst = append(dst, '"')
	return append(t.AppendFormat(dst, time.RFC3339Nano), '"'), nil
}

// appendString appends s quoted as encoding/json quotes it: copied when it holds nothing
// that encoding/json escapes (a control character, a quote, a backslash, <, > or &, U+2028,
// U+2029 or bytes that are not UTF-8), else as encoding/json writes it.
func appendString(dst []byte, s string) []byte {
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b < 0x20 || b == '"' || b == '\\' || b == '<' || b == '>' || b == '&' {
				return appendEscaped(dst, s)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || r == '\u2028' || r == '\u2029' {
			return appendEscaped(dst, s)
		}
		i += size
	}
	return append(append(append(dst, '"'), s...), '"')
}

func appendEscaped(dst []byte, s string) []byte {
	b, _ := json.Marshal(s) // a string always encodes
	return append(dst, b...)
}
