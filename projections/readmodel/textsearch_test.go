package readmodel_test

import (
	"context"
	"slices"
	"testing"

	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/readmodel"
)

// person is a row of a searched table: its search column holds the name as given.
type person struct{ id, search string }

func newPhonebook() (*readmodel.Model, *readmodel.Table[person]) {
	people := readmodel.NewTable("people", 1,
		readmodel.Text("person_id", func(r *person) *string { return &r.id }),
		readmodel.Text("search", func(r *person) *string { return &r.search })).
		Searched("search")
	fold := func(e *readmodel.Event, rows *readmodel.Rows) error {
		ev, err := readmodel.Decode[struct{ ID, Name string }](e)
		if err != nil {
			return err
		}
		switch e.Type {
		case "person.named":
			people.Get(rows, ev.ID)
			people.Upsert(rows, person{id: ev.ID, search: ev.Name})
		case "person.gone":
			people.Delete(rows, ev.ID)
		}
		return nil
	}
	return readmodel.Define(readmodel.Spec{Name: "phonebook", Version: 1, Tables: []readmodel.AnyTable{people}, Fold: fold}), people
}

// TestTextSearch: a searched column finds exact substrings on both dialects, through the
// trigram index and, below three characters, by LIKE, with LIKE's and FTS5's special
// characters taken literally; renames and deletions keep the index in step.
func TestTextSearch(t *testing.T) {
	history := projectiontest.MustParseHistory(t, `
2024-01-01T00:00:00Z p-1 person.named {"id":"1","name":"100% natural"}
2024-01-01T00:00:00Z p-2 person.named {"id":"2","name":"a_b"}
2024-01-01T00:00:00Z p-3 person.named {"id":"3","name":"say \"hi\" OR bye"}
2024-01-01T00:00:00Z p-4 person.named {"id":"4","name":"佐藤 花子"}
2024-01-01T00:00:00Z p-5 person.named {"id":"5","name":"axb old name"}
2024-01-01T00:00:00Z p-5 person.named {"id":"5","name":"new name"}
2024-01-01T00:00:00Z p-6 person.named {"id":"6","name":"gone soon"}
2024-01-01T00:00:00Z p-6 person.gone {"id":"6"}
`)
	tests := []struct {
		name, text string
		want       []string
	}{
		{"percent, short", "%", []string{"1"}},
		{"percent in a trigram", "0% n", []string{"1"}},
		{"underscore", "a_b", []string{"2"}},
		{"quotes and an operator", `"hi" OR`, []string{"3"}},
		{"two characters", "佐藤", []string{"4"}},
		{"three characters", "佐藤 ", []string{"4"}},
		{"renamed: the old name", "old name", nil},
		{"renamed: the new name", "new name", []string{"5"}},
		{"deleted", "gone", nil},
		{"everywhere", "a", []string{"1", "2", "3", "5"}},
	}
	p, _ := newPhonebook()
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		tables := projections.TablesFor(p, "")
		projectiontest.MustApply(t, db, p, tables, history)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if got := search(t, db, tables.Name("people"), tt.text); !slices.Equal(got, tt.want) {
					t.Fatalf("%q found %v, want %v", tt.text, got, tt.want)
				}
			})
		}
	})
}

func search(t *testing.T, db *projections.DB, table, text string) []string {
	t.Helper()
	cond, arg := db.Dialect.TextMatch(table, "x", "search", text)
	rows, err := db.SQL.QueryContext(context.Background(), db.Dialect.Rebind(`SELECT x.person_id FROM `+table+` x WHERE `+cond+` ORDER BY x.person_id`), arg)
	if err != nil {
		t.Fatalf("search %q: %v", text, err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return ids
}
