package directory

import (
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/eventcrm/crm/projections/readmodel"
)

// shortSearch is the longest search, in characters once normalised, answered from the
// postings: a longer one has trigrams for the database's own text index.
const shortSearch = 2

// gramRow is one posting: a listed contact whose search text holds gram (one or two
// characters of one field, normalised).
type gramRow struct {
	gram, contactID string
}

// gramCountRow counts the postings of a gram.
type gramCountRow struct {
	gram     string
	contacts int64
}

// countRow counts the listed contacts of one value of one filter: dim ” and value ” count
// every listed contact; dim phase, owner, segment, channel or account_id one value of it.
type countRow struct {
	dim, value string
	contacts   int64
}

func gramsTable() *readmodel.Table[gramRow] {
	type g = gramRow
	return readmodel.NewTable(tableContactGrams, 2,
		readmodel.Text("gram", func(r *g) *string { return &r.gram }),
		readmodel.Text("contact_id", func(r *g) *string { return &r.contactID })).
		Clustered()
}

func gramCountsTable() *readmodel.Table[gramCountRow] {
	type g = gramCountRow
	return readmodel.NewTable(tableGramCounts, 1,
		readmodel.Text("gram", func(r *g) *string { return &r.gram }),
		readmodel.BigInt("contacts", func(r *g) *int64 { return &r.contacts })).
		Clustered()
}

func countsTable() *readmodel.Table[countRow] {
	type c = countRow
	return readmodel.NewTable(tableContactCounts, 2,
		readmodel.Text("dim", func(r *c) *string { return &r.dim }),
		readmodel.Text("value", func(r *c) *string { return &r.value }),
		readmodel.BigInt("contacts", func(r *c) *int64 { return &r.contacts })).
		Clustered()
}

// gramsOf returns the distinct grams of a search column (see searchText), sorted: every
// character and every pair of adjacent characters of each field. A query of one or two
// characters is a substring of the column exactly when it is one of them. The column is
// taken as the tables store it: each NUL and each byte of invalid UTF-8 a U+FFFD (see
// projections' text), so that two grams are two rows.
func gramsOf(search string) []string {
	var grams []string
	for _, field := range strings.Split(storable(search), fieldSeparator) {
		prev := -1 // the byte offset of the previous character, -1 at the field's start
		for i, r := range field {
			size := utf8.RuneLen(r)
			grams = append(grams, field[i:i+size])
			if prev >= 0 {
				grams = append(grams, field[prev:i+size])
			}
			prev = i
		}
	}
	slices.Sort(grams)
	return slices.Compact(grams)
}

// storable is text with each NUL and each byte of invalid UTF-8 replaced by U+FFFD, as the
// read-model database stores it.
func storable(text string) string {
	if strings.IndexByte(text, 0) < 0 && utf8.ValidString(text) {
		return text
	}
	var b strings.Builder
	for i := 0; i < len(text); {
		r, size := utf8.DecodeRuneInString(text[i:])
		if r == 0 || (r == utf8.RuneError && size == 1) {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(text[i : i+size])
		}
		i += size
	}
	return b.String()
}

// filterDims are the filters whose lists the counts table answers: a list filtered on one
// of them alone, or on none, reads its total there.
var filterDims = []string{"phase", "owner", "segment", "channel", "account_id"}

// dimValues are a listed contact's values of filterDims, in that order.
func (c contactRow) dimValues() [5]string {
	return [5]string{c.phase, c.owner, c.segment, c.channel, c.accountID}
}

// putContact records a contact's row changed from before (zero for a new contact) to
// after, and moves what the posting and count tables hold for it: a contact is in them
// while it is listed.
func (m *model) putContact(rows *readmodel.Rows, before, after contactRow) {
	m.contacts.Upsert(rows, after)
	wasListed := before.contactID != "" && before.listed()
	isListed := after.listed()
	var oldGrams, newGrams []string
	if wasListed {
		oldGrams = gramsOf(before.search)
	}
	if isListed {
		newGrams = gramsOf(after.search)
	}
	if wasListed != isListed || before.search != after.search {
		for _, g := range oldGrams {
			if _, found := slices.BinarySearch(newGrams, g); !found {
				m.grams.Delete(rows, g, after.contactID)
				m.gramCounts.Add(rows, gramCountRow{gram: g, contacts: -1})
			}
		}
		for _, g := range newGrams {
			if _, found := slices.BinarySearch(oldGrams, g); !found {
				m.grams.Upsert(rows, gramRow{gram: g, contactID: after.contactID})
				m.gramCounts.Add(rows, gramCountRow{gram: g, contacts: 1})
			}
		}
	}
	m.count(rows, before, wasListed, after, isListed)
}

// count moves the counts of a contact's values that changed: a value it had while listed
// loses it, a value it has while listed gains it. Add reads nothing, and a batch merges the
// additions of its events.
func (m *model) count(rows *readmodel.Rows, before contactRow, wasListed bool, after contactRow, isListed bool) {
	if wasListed != isListed {
		m.counts.Add(rows, countRow{contacts: sign(isListed)})
	}
	old, now := before.dimValues(), after.dimValues()
	for i, dim := range filterDims {
		if wasListed == isListed && old[i] == now[i] {
			continue
		}
		if wasListed && old[i] != "" {
			m.counts.Add(rows, countRow{dim: dim, value: old[i], contacts: -1})
		}
		if isListed && now[i] != "" {
			m.counts.Add(rows, countRow{dim: dim, value: now[i], contacts: 1})
		}
	}
}

// sign is 1 for a contact that joins the list, -1 for one that leaves it.
func sign(joins bool) int64 {
	if joins {
		return 1
	}
	return -1
}
