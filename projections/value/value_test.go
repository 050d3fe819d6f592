package value_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/value"
)

// question is a params file: the query it asks and its parameters.
type question struct {
	Query     string    `json:"query"`
	AsOf      time.Time `json:"as_of"`
	ContactID string    `json:"contact_id"`
	Segment   string    `json:"segment"`
	Sort      string    `json:"sort"`
	Days      int       `json:"days"`
	Phase     string    `json:"phase"`
	Owner     string    `json:"owner"`
	Limit     int       `json:"limit"`
	Cursor    string    `json:"cursor"`
}

// answerIn answers the questions of the golden files with the projection's zone.
func answerIn(zone *time.Location) projectiontest.AnswerFunc {
	return projectiontest.AnswerWith(func(ctx context.Context, db *projections.DB, t projections.Tables, q question) (any, error) {
		return ask(ctx, db, t, zone, q)
	})
}

func ask(ctx context.Context, db *projections.DB, t projections.Tables, zone *time.Location, q question) (any, error) {
	switch q.Query {
	case "customers":
		return value.QueryCustomers(ctx, db, t, zone, value.CustomersParams{AsOf: q.AsOf, Segment: q.Segment, Sort: q.Sort,
			Limit: q.Limit, Cursor: q.Cursor})
	case "value":
		return value.QueryValue(ctx, db, t, zone, value.ValueParams{ContactID: q.ContactID, AsOf: q.AsOf})
	case "rfm":
		return value.QueryRFM(ctx, db, t, zone, q.AsOf)
	case "repeat":
		return value.QueryRepeatRate(ctx, db, t, zone, q.AsOf)
	case "season":
		return value.QuerySeasonality(ctx, db, t, zone, q.AsOf)
	case "upsell":
		return value.QueryUpsell(ctx, db, t, zone, value.UpsellParams{AsOf: q.AsOf, Limit: q.Limit, Cursor: q.Cursor})
	case "dormant":
		return value.QueryDormant(ctx, db, t, zone, value.DormantParams{AsOf: q.AsOf, Days: q.Days, Phase: q.Phase,
			Owner: q.Owner, Limit: q.Limit, Cursor: q.Cursor})
	}
	return nil, fmt.Errorf("unknown query %q", q.Query)
}

// The golden cases of a business zone east of UTC (the cases under testdata/utc run in
// TestReadModel).
func TestGoldenInTokyo(t *testing.T) {
	zone := projectiontest.Tokyo(t)
	projectiontest.RunGolden(t, "testdata/tokyo", value.Projection(zone), answerIn(zone))
}

func TestReadModel(t *testing.T) {
	asOf := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	askUTC := func(ctx context.Context, db *projections.DB, tables projections.Tables, q question) (any, error) {
		return ask(ctx, db, tables, time.UTC, q)
	}
	projectiontest.ReadModel[question, any]{Projection: value.Projection(time.UTC), Name: "customer_value", Dir: "testdata/utc",
		Query: askUTC, Answer: answerIn(time.UTC), Refusals: slices.Concat(projectiontest.PageRefusals(value.MaxLimit, question{Query: "customers"}), []projectiontest.Refusal[question]{
			{Name: "unknown sort", Params: question{Query: "customers", AsOf: asOf, Sort: "revenue"}, Field: "sort"},
			{Name: "unknown segment", Params: question{Query: "customers", AsOf: asOf, Segment: "whales"}, Field: "segment"},
			{Name: "value without as_of", Params: question{Query: "value", ContactID: "c1"}, Field: "as_of"},
			{Name: "rfm without as_of", Params: question{Query: "rfm"}, Field: "as_of"},
			{Name: "repeat without as_of", Params: question{Query: "repeat"}, Field: "as_of"},
			{Name: "season without as_of", Params: question{Query: "season"}, Field: "as_of"},
			{Name: "upsell without as_of", Params: question{Query: "upsell"}, Field: "as_of"},
			{Name: "upsell bad cursor", Params: question{Query: "upsell", AsOf: asOf, Cursor: "e30"}, Field: "cursor"},
			{Name: "dormant without as_of", Params: question{Query: "dormant"}, Field: "as_of"},
			{Name: "dormant negative days", Params: question{Query: "dormant", AsOf: asOf, Days: -1}, Field: "days"},
			{Name: "dormant unknown phase", Params: question{Query: "dormant", AsOf: asOf, Phase: "asleep"}, Field: "phase"},
		})}.Test(t)
}

// A contact that does not exist, or not yet at as_of, has no value: not found.
func TestValueOfUnknownContact(t *testing.T) {
	history := projectiontest.ReadHistory(t, "testdata/utc/customers/events.txt")
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		p := value.Projection(time.UTC)
		tables := projections.TablesFor(p, "")
		projectiontest.MustApply(t, db, p, tables, history)
		for _, q := range []question{
			{Query: "value", ContactID: "nobody", AsOf: time.Date(2024, 4, 1, 0, 0, 0, 0, time.UTC)},
			{Query: "value", ContactID: "c3", AsOf: time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC)},
		} {
			_, err := ask(context.Background(), db, tables, time.UTC, q)
			if domain.ErrorCode(err) != domain.CodeNotFound {
				t.Errorf("%s as of %v: error = %v, want not found", q.ContactID, q.AsOf, err)
			}
		}
	})
}
