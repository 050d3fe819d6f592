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

// countedSearch is the longest search whose matches the fold counts: the number of rows
// holding each gram of up to three characters is kept (the postings only of one and two).
const countedSearch = 3

// postingRow is one posting: a row of a list (id) whose search text holds gram (one or two
// characters of one field, normalised), with the row's key in the list's default sort (a
// text or a number), so that a page of a search in that order is read from the postings in
// order, as many as the page shows.
type postingRow struct {
	gram     string
	sortText string
	sortNum  int64
	id       string
}

// gramCountRow counts the postings of a gram; the empty gram counts the rows of the list.
type gramCountRow struct {
	gram    string
	matches int64
}

// countRow counts the listed contacts of one value of one filter: dim ” and value ” count
// every listed contact; dim phase, owner, segment, channel or account_id one value of it.
type countRow struct {
	dim, value string
	contacts   int64
}

// postingTables are the postings of one list and their number per gram.
type postingTables struct {
	postings *readmodel.Table[postingRow]
	counts   *readmodel.Table[gramCountRow]
	// sortColumn is the column of the list, and of the postings, of its default sort;
	// numeric when it holds numbers.
	sortColumn string
	numeric    bool
}

// newPostingTables declares the postings of a list (table postings: gram, the sort key in
// column sortColumn, the id in column idColumn) and their counts (table counts).
func newPostingTables(postings, counts, sortColumn string, numeric bool, idColumn string) postingTables {
	type g = postingRow
	sortKey := readmodel.Text(sortColumn, func(r *g) *string { return &r.sortText })
	if numeric {
		sortKey = readmodel.BigInt(sortColumn, func(r *g) *int64 { return &r.sortNum })
	}
	type c = gramCountRow
	return postingTables{
		postings: readmodel.NewTable(postings, 3,
			readmodel.Text("gram", func(r *g) *string { return &r.gram }),
			sortKey,
			readmodel.Text(idColumn, func(r *g) *string { return &r.id })).
			Clustered(),
		counts: readmodel.NewTable(counts, 1,
			readmodel.Text("gram", func(r *c) *string { return &r.gram }),
			readmodel.BigInt("matches", func(r *c) *int64 { return &r.matches })).
			Clustered(),
		sortColumn: sortColumn,
		numeric:    numeric,
	}
}

// posted is what the postings of a row are made of: its search text, its sort key and
// whether the list shows it.
type posted struct {
	id, search, sortText string
	sortNum              int64
	listed               bool
}

func (p posted) sameKey(o posted) bool { return p.sortText == o.sortText && p.sortNum == o.sortNum }

// key is the sort key of the postings.
func (pt postingTables) key(p posted) any {
	if pt.numeric {
		return p.sortNum
	}
	return p.sortText
}

// move changes the postings of a row from before to after (before not listed for a new
// row): a gram it loses is deleted and counted out, a gram it gains is inserted and counted
// in, and when its sort key changed every posting it keeps is moved to the new key. The
// count of the empty gram follows whether the list shows it.
func (pt postingTables) move(rows *readmodel.Rows, before, after posted) {
	if before.listed == after.listed && (!after.listed || before.search == after.search && before.sameKey(after)) {
		return
	}
	var oldGrams, newGrams, oldTrigrams, newTrigrams []string
	if before.listed {
		oldGrams, oldTrigrams = gramsOf(before.search), trigramsOf(before.search)
	}
	if after.listed {
		newGrams, newTrigrams = gramsOf(after.search), trigramsOf(after.search)
	}
	for _, g := range oldTrigrams {
		if _, kept := slices.BinarySearch(newTrigrams, g); !kept {
			pt.counts.Add(rows, gramCountRow{gram: g, matches: -1})
		}
	}
	for _, g := range newTrigrams {
		if _, had := slices.BinarySearch(oldTrigrams, g); !had {
			pt.counts.Add(rows, gramCountRow{gram: g, matches: 1})
		}
	}
	moved := !before.sameKey(after)
	for _, g := range oldGrams {
		_, kept := slices.BinarySearch(newGrams, g)
		if !kept || moved {
			pt.postings.Delete(rows, g, pt.key(before), before.id)
		}
		if !kept {
			pt.counts.Add(rows, gramCountRow{gram: g, matches: -1})
		}
	}
	for _, g := range newGrams {
		_, had := slices.BinarySearch(oldGrams, g)
		if !had || moved {
			pt.postings.Upsert(rows, postingRow{gram: g, sortText: after.sortText, sortNum: after.sortNum, id: after.id})
		}
		if !had {
			pt.counts.Add(rows, gramCountRow{gram: g, matches: 1})
		}
	}
	if before.listed != after.listed {
		pt.counts.Add(rows, gramCountRow{gram: "", matches: sign(after.listed)})
	}
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

// trigramsOf returns the distinct runs of three characters of each field of a search
// column, sorted, taken as gramsOf takes them: a query of three characters is a substring
// of the column exactly when it is one of them.
func trigramsOf(search string) []string {
	var grams []string
	for _, field := range strings.Split(storable(search), fieldSeparator) {
		var starts [3]int // byte offsets of the last three characters
		n := 0
		for i, r := range field {
			starts[0], starts[1], starts[2] = starts[1], starts[2], i
			n++
			if n >= 3 {
				grams = append(grams, field[starts[0]:i+utf8.RuneLen(r)])
			}
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
	m.contactPostings.move(rows,
		posted{id: before.contactID, search: before.search, sortText: before.sortName, listed: wasListed},
		posted{id: after.contactID, search: after.search, sortText: after.sortName, listed: isListed})
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
