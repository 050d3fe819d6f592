package httpapi

import (
	"net/http"
	"unicode"
	"unicode/utf8"
)

// checkMetadataHeaders refuses a command whose metadata headers are not valid UTF-8 or hold a
// control character. The log keeps metadata as JSON: an invalid byte would be stored as the
// replacement character, so the event would record something other than what was sent, and
// control characters have no place in a reason or an id.
//
// The headers checked are those whose values reach event metadata, directly or (the
// idempotency key) through the event ids derived from them.
func checkMetadataHeaders(h http.Header) error {
	for _, name := range []string{"X-Reason", "X-Correlation-ID", "X-Causation-ID", "Idempotency-Key"} {
		for _, v := range h.Values(name) {
			if !utf8.ValidString(v) {
				return badField(name, "header %s is not valid UTF-8", name)
			}
			for _, c := range v {
				if unicode.IsControl(c) {
					return badField(name, "header %s holds the control character %U", name, c)
				}
			}
		}
	}
	return nil
}
