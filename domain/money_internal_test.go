package domain

import (
	"slices"
	"strings"
	"testing"
)

// TestISO4217List keeps the code list well formed: each entry three upper-case letters, sorted,
// unique, and the string padded so that the " CODE " lookup works for the first and last.
func TestISO4217List(t *testing.T) {
	t.Parallel()
	if !strings.HasPrefix(iso4217, " ") || !strings.HasSuffix(iso4217, " ") || strings.Contains(iso4217, "  ") {
		t.Fatalf("the list must be single-space separated and padded with one space on each side")
	}
	codes := strings.Fields(iso4217)
	for _, c := range codes {
		if len(c) != 3 || strings.Trim(c, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
			t.Errorf("%q is not three upper-case letters", c)
		}
		if err := ValidateCurrency("currency", c); err != nil {
			t.Errorf("listed code %s is refused: %v", c, err)
		}
	}
	if !slices.IsSorted(codes) {
		t.Error("codes are not sorted")
	}
	if len(slices.Compact(slices.Clone(codes))) != len(codes) {
		t.Error("a code is listed twice")
	}
}
