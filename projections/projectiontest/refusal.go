package projectiontest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/projections"
)

// Refusal is a question a read model refuses as invalid: Field is the parameter its error
// names.
type Refusal[P any] struct {
	Name   string
	Params P
	Field  string
}

// Refuses asks every question of refusals of an empty read model of p, on each dialect, and
// fails t unless ask refuses it as invalid (domain.CodeInvalid) naming its field.
func Refuses[P, A any](t *testing.T, p projections.Projection,
	ask func(ctx context.Context, db *projections.DB, tables projections.Tables, params P) (A, error), refusals []Refusal[P]) {
	t.Helper()
	ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		tables := projections.TablesFor(p, "")
		MustApply(t, db, p, tables, nil)
		for _, r := range refusals {
			t.Run(r.Name, func(t *testing.T) {
				_, err := ask(context.Background(), db, tables, r.Params)
				var de *domain.Error
				if !errors.As(err, &de) || de.Code != domain.CodeInvalid || de.Field != r.Field {
					t.Fatalf("error = %v, want an invalid %s", err, r.Field)
				}
			})
		}
	})
}

// PageRefusals are the refusals of every question that pages: no as_of, a negative limit, a
// limit over max, a cursor that is not base64. Each is the question base, otherwise valid, with
// its fields AsOf, Limit and Cursor set.
func PageRefusals[P any](max int, base P) []Refusal[P] {
	asOf := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	page := pageOf(base)
	return []Refusal[P]{
		{Name: "no as_of", Params: page(time.Time{}, 0, ""), Field: "as_of"},
		{Name: "negative limit", Params: page(asOf, -1, ""), Field: "limit"},
		{Name: "limit too large", Params: page(asOf, max+1, ""), Field: "limit"},
		{Name: "cursor not base64", Params: page(asOf, 0, "!!"), Field: "cursor"},
	}
}
