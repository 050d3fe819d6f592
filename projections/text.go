package projections

import (
	"reflect"
	"strings"
	"unicode/utf8"
)

// Text in a read model is what both dialects can hold: PostgreSQL's text refuses the NUL
// character and invalid UTF-8, which SQLite stores as given. The HTTP edge refuses both, but
// a log may hold them from before it did, or from another writer; an event must then project
// on PostgreSQL exactly as on SQLite, live as in a rebuild. So every text value a projection
// writes or looks up through a Tx is made storable here, on both dialects alike: each NUL and
// each byte of an invalid UTF-8 sequence becomes U+FFFD, the replacement character (as
// encoding/json already does with invalid UTF-8 in event data). Keys looked up are replaced
// as the keys written were, so they still match.

// replacement stands for each character a read model cannot hold.
const replacement = "\uFFFD"

// storableText returns s with each NUL and each invalid UTF-8 byte replaced by U+FFFD.
func storableText(s string) string {
	if strings.IndexByte(s, 0) < 0 && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 2)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == 0 || (r == utf8.RuneError && size == 1) {
			b.WriteString(replacement)
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// storableArgs returns args with every text value made storable: args itself when none
// needed it (the common case costs no allocation), else a copy, so the caller's values stay.
func storableArgs(args []any) []any {
	out := args
	for i, a := range args {
		v, changed := storableValue(a)
		if !changed {
			continue
		}
		if &out[0] == &args[0] {
			out = append([]any(nil), args...)
		}
		out[i] = v
	}
	return out
}

// storableValue makes one statement argument storable; changed is false when it already was.
func storableValue(a any) (v any, changed bool) {
	switch x := a.(type) {
	case nil, int64, int, float64, bool, []byte:
		return a, false
	case string:
		s := storableText(x)
		return s, s != x
	case []string:
		s := storableStrings(x)
		return s, len(x) > 0 && &s[0] != &x[0]
	}
	// A named string type (a phase, a stage) reaches the driver as its string.
	if rv := reflect.ValueOf(a); rv.Kind() == reflect.String {
		s := rv.String()
		if t := storableText(s); t != s {
			return t, true
		}
	}
	return a, false
}

// storableStrings is storableText over a list: keys itself when none changed, else a copy.
func storableStrings(keys []string) []string {
	out := keys
	for i, k := range keys {
		s := storableText(k)
		if s == k {
			continue
		}
		if &out[0] == &keys[0] {
			out = append([]string(nil), keys...)
		}
		out[i] = s
	}
	return out
}
