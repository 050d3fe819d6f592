package httpapi

import (
	"fmt"
	"net/http"
	"unicode/utf8"
)

// Longest values, in characters, of the request headers recorded in every event's metadata: a
// reason is a sentence or two; the ids are ids. A longer value is refused, not cut, so that
// the log records what the client sent or nothing.
const (
	MaxReasonHeader = 1000
	MaxIDHeader     = 128
)

// headerTooLarge is the problem of one header over its limit.
func headerTooLarge(name string, limit int) *apiError {
	return &apiError{status: http.StatusRequestHeaderFieldsTooLarge, slug: "header-too-large", title: "Request header too large",
		detail: fmt.Sprintf("%s is longer than %d characters", name, limit), field: name}
}

// checkMetadataHeaderSizes refuses a request whose headers recorded in event metadata are
// over their limits.
func checkMetadataHeaderSizes(h http.Header) error {
	for _, l := range [...]struct {
		name  string
		limit int
	}{{"X-Reason", MaxReasonHeader}, {"X-Correlation-ID", MaxIDHeader}, {"X-Causation-ID", MaxIDHeader}} {
		if v := h.Get(l.name); len(v) > l.limit && utf8.RuneCountInString(v) > l.limit {
			return headerTooLarge(l.name, l.limit)
		}
	}
	return nil
}
