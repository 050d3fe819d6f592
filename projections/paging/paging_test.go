package paging_test

import (
	"testing"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/domaintest"
	"github.com/eventcrm/crm/projections/paging"
)

func TestLimit(t *testing.T) {
	for _, tc := range []struct {
		limit, want int
		refused     string
	}{
		{limit: 0, want: 50},
		{limit: 1, want: 1},
		{limit: 200, want: 200},
		{limit: 201, refused: "limit: 201 is outside 1..200"},
		{limit: -1, refused: "limit: -1 is outside 1..200"},
	} {
		got, err := paging.Limit(tc.limit, 50, 200)
		if tc.refused != "" {
			domaintest.CheckError(t, err, domain.CodeInvalid, tc.refused)
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Limit(%d) = %d, %v; want %d", tc.limit, got, err, tc.want)
		}
	}
}

func TestCursorRoundTrip(t *testing.T) {
	type cursor struct {
		At int64  `json:"a"`
		ID string `json:"i"`
	}
	want := cursor{At: 1700000000000000, ID: "c-1"}
	s := paging.Encode(want)
	var got cursor
	if !paging.Decode(s, &got) || got != want {
		t.Fatalf("Decode(Encode(%v)) = %v", want, got)
	}
	for _, bad := range []string{"not base64!", "bm90IGpzb24", "W10"} { // "not json", "[]"
		var c cursor
		if paging.Decode(bad, &c) {
			t.Errorf("Decode(%q) took it for a cursor: %v", bad, c)
		}
	}
}

func TestCursor(t *testing.T) {
	type cursor struct {
		ID string `json:"i"`
	}
	whole := func(c cursor) bool { return c.ID != "" }
	if c, err := paging.Cursor("", "cursor", "is not a cursor of this list", whole); c != nil || err != nil {
		t.Errorf("no cursor: %v, %v; want nil, nil", c, err)
	}
	if c, err := paging.Cursor(paging.Encode(cursor{ID: "c-1"}), "cursor", "is not a cursor of this list", whole); err != nil || c == nil || c.ID != "c-1" {
		t.Errorf("a cursor: %v, %v; want c-1", c, err)
	}
	for _, bad := range []string{"not base64!", paging.Encode(cursor{})} {
		_, err := paging.Cursor(bad, "cursor", "is not a cursor of this list", whole)
		domaintest.CheckError(t, err, domain.CodeInvalid, "cursor: is not a cursor of this list")
	}
}
