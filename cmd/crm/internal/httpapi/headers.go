package httpapi

import (
	"net/http"
	"unicode"
	"unicode/utf8"
)

// Longest values, in characters, of the request headers recorded in every event's metadata: a
// reason is a sentence or two; the ids are ids. A longer value is refused, not cut, so that
// the log records what the client sent or nothing.
const (
	MaxReasonHeader = 1000
	MaxIDHeader     = 128
)

// metadataHeaders are the headers whose values reach event metadata, directly or (the
// idempotency key) through the event ids derived from them, with their longest values (0: the
// key's own limit applies, see command).
var metadataHeaders = [...]struct {
	name  string
	limit int
}{{"X-Reason", MaxReasonHeader}, {"X-Correlation-ID", MaxIDHeader}, {"X-Causation-ID", MaxIDHeader}, {"Idempotency-Key", 0}}

// checkMetadataHeaders refuses a command whose metadata headers are not valid UTF-8, hold a
// control character or are over their limits. The log keeps metadata as JSON: an invalid byte
// would be stored as the replacement character, so the event would record something other
// than what was sent, and control characters have no place in a reason or an id.
func checkMetadataHeaders(h http.Header) error {
	for _, mh := range metadataHeaders {
		for _, v := range h.Values(mh.name) {
			if err := checkHeaderText(mh.name, v); err != nil {
				return err
			}
			if mh.limit > 0 && len(v) > mh.limit && utf8.RuneCountInString(v) > mh.limit {
				return headerTooLarge(mh.name, mh.limit)
			}
		}
	}
	return nil
}

// checkHeaderText refuses a header value that is not valid UTF-8 or holds a control character.
func checkHeaderText(name, v string) error {
	if !utf8.ValidString(v) {
		return badField(name, "header %s is not valid UTF-8", name)
	}
	for _, c := range v {
		if unicode.IsControl(c) {
			return badField(name, "header %s holds the control character %U", name, c)
		}
	}
	return nil
}
