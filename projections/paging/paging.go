// Package paging checks the page size of a read model's list and encodes and decodes the
// cursors that carry a list from one page to the next: the JSON of a small struct of strings
// and integers, in base64url without padding, so that a cursor is opaque and fits a URL.
package paging

import (
	"encoding/base64"
	"encoding/json"

	"github.com/eventcrm/crm/domain"
)

// Limit checks a page size: def when limit is 0, refused as an invalid "limit" when it is
// outside 1..max.
func Limit(limit, def, max int) (int, error) {
	switch {
	case limit == 0:
		return def, nil
	case limit < 0 || limit > max:
		return 0, domain.Invalid("limit", "%d is outside 1..%d", limit, max)
	}
	return limit, nil
}

// Encode returns the cursor of c, a struct of strings and integers (which always encodes).
func Encode[C any](c C) string {
	b, _ := json.Marshal(c) // strings and integers always encode
	return base64.RawURLEncoding.EncodeToString(b)
}

// Decode reads into c a cursor Encode returned, and reports whether s was one: the caller
// then checks that the fields it needs are there, and refuses the cursor with its own words.
func Decode[C any](s string, c *C) bool {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && json.Unmarshal(b, c) == nil
}

// Cursor reads the cursor s given as the parameter field: nil when s is empty, refused as an
// invalid field with message refusal when s is not a cursor Encode returned or when whole
// finds a field it needs missing.
func Cursor[C any](s, field, refusal string, whole func(C) bool) (*C, error) {
	if s == "" {
		return nil, nil
	}
	var c C
	if !Decode(s, &c) || !whole(c) {
		return nil, domain.Invalid(field, "%s", refusal)
	}
	return &c, nil
}
