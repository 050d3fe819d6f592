package journey_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/journey"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// answer asks QueryContact for queries named contact_*, Query otherwise.
func answer(ctx context.Context, db *projections.DB, t projections.Tables, query string, raw []byte) (any, error) {
	if strings.HasPrefix(query, "contact_") {
		return projectiontest.AnswerWith(journey.QueryContact)(ctx, db, t, query, raw)
	}
	return projectiontest.AnswerWith(journey.Query)(ctx, db, t, query, raw)
}

func TestReadModel(t *testing.T) {
	projectiontest.ReadModel[journey.Params, journey.Answer]{Projection: journey.Projection(), Name: "journey",
		Answer: answer}.Test(t)
}

func TestQueryErrors(t *testing.T) {
	history := `2024-01-02T09:00:00Z contact-j1 contact.created.v1 {"contact_id":"j1","name":"A","channel":"web_form","owner":"rep-a"}`
	tests := []struct {
		name  string
		query func(ctx context.Context, db *projections.DB, t projections.Tables) error
		code  domain.Code
		field string
	}{
		{"bad cohort", mapQuery(journey.Params{Cohort: "2024-1"}), domain.CodeInvalid, "cohort"},
		{"cohort with a day", mapQuery(journey.Params{Cohort: "2024-01-02"}), domain.CodeInvalid, "cohort"},
		{"unknown channel", mapQuery(journey.Params{Channel: "fax"}), domain.CodeInvalid, "channel"},
		{"no contact id", contactQuery(journey.ContactParams{}), domain.CodeInvalid, "contact_id"},
		{"unknown contact", contactQuery(journey.ContactParams{ContactID: "nobody"}), domain.CodeNotFound, ""},
		{"contact captured after as_of", contactQuery(journey.ContactParams{ContactID: "j1",
			AsOf: time.Date(2024, 1, 2, 8, 59, 59, 0, time.UTC)}), domain.CodeNotFound, ""},
	}
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		tables := projections.TablesFor(journey.Projection(), "")
		projectiontest.MustApply(t, db, journey.Projection(), tables, projectiontest.MustParseHistory(t, history))
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				err := tt.query(context.Background(), db, tables)
				var de *domain.Error
				if !errors.As(err, &de) || de.Code != tt.code || de.Field != tt.field {
					t.Fatalf("error = %v, want code %s on field %q", err, tt.code, tt.field)
				}
			})
		}
	})
}

func mapQuery(p journey.Params) func(context.Context, *projections.DB, projections.Tables) error {
	return func(ctx context.Context, db *projections.DB, t projections.Tables) error {
		_, err := journey.Query(ctx, db, t, p)
		return err
	}
}

func contactQuery(p journey.ContactParams) func(context.Context, *projections.DB, projections.Tables) error {
	return func(ctx context.Context, db *projections.DB, t projections.Tables) error {
		_, err := journey.QueryContact(ctx, db, t, p)
		return err
	}
}
