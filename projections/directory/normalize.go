package directory

import (
	"strings"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Normalize is the form in which text is searched and sorted: NFKC (full-width Latin and
// half-width kana become their usual forms: ｻﾄｳ is サトウ, ＡＢＣ is ABC), then Unicode case
// folding, then NFKC again (folding can leave text that is not in normal form). The same is
// applied to what is stored and to what is asked, so a search is an exact substring match
// of the normalised texts.
func Normalize(s string) string {
	return norm.NFKC.String(cases.Fold().String(norm.NFKC.String(s)))
}

// fieldSeparator separates the fields of a search column: a control character, which no
// query parameter may hold, so a match never spans two fields.
const fieldSeparator = "\x1f"

// searchText is the search column of fields.
func searchText(fields ...string) string {
	for i, f := range fields {
		fields[i] = Normalize(f)
	}
	return strings.Join(fields, fieldSeparator)
}
