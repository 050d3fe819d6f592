package timeline_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/timeline"
)

func TestReadModel(t *testing.T) {
	projectiontest.ReadModel[timeline.Params, timeline.Answer]{Projection: timeline.Projection(), Name: "contact_timeline",
		Query: timeline.Query}.Test(t)
}

func TestQueryRejectsBadParams(t *testing.T) {
	now := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		params timeline.Params
		code   domain.Code
		field  string
	}{
		{"no contact", timeline.Params{Now: now}, domain.CodeInvalid, "contact_id"},
		{"no now", timeline.Params{ContactID: "c1"}, domain.CodeInvalid, "now"},
		{"negative limit", timeline.Params{ContactID: "c1", Now: now, Limit: -1}, domain.CodeInvalid, "limit"},
		{"limit too large", timeline.Params{ContactID: "c1", Now: now, Limit: timeline.MaxLimit + 1}, domain.CodeInvalid, "limit"},
		{"unknown type", timeline.Params{ContactID: "c1", Now: now, Types: []string{"note", "usage"}}, domain.CodeInvalid, "types"},
		{"before not a cursor", timeline.Params{ContactID: "c1", Now: now, Before: "!!"}, domain.CodeInvalid, "before"},
		{"before a date only", timeline.Params{ContactID: "c1", Now: now, Before: "2024-01-01"}, domain.CodeInvalid, "before"},
		{"before without position", timeline.Params{ContactID: "c1", Now: now, Before: "eyJhIjoxfQ"}, domain.CodeInvalid, "before"},
		{"unknown contact", timeline.Params{ContactID: "nobody", Now: now}, domain.CodeNotFound, ""},
	}
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		tables := projections.TablesFor(timeline.Projection(), "")
		projectiontest.MustApply(t, db, timeline.Projection(), tables, projectiontest.MustParseHistory(t,
			`2024-01-01T00:00:00Z contact-c1 contact.created.v1 {"contact_id":"c1","name":"A","channel":"other","owner":"o"}`))
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := timeline.Query(context.Background(), db, tables, tt.params)
				var de *domain.Error
				if !errors.As(err, &de) || de.Code != tt.code || de.Field != tt.field {
					t.Fatalf("error = %v, want %s %q", err, tt.code, tt.field)
				}
			})
		}
	})
}
