package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/eventcrm/crm/projections/explain"
	"github.com/eventcrm/crm/projections/horizon"
	"github.com/eventcrm/crm/projections/value"
)

// ValueQueries are the HTTP routes of the customer value read model, whose business dates are
// taken in zone (the one its projection is built with). Each answers as of ?as_of= (business
// time, default now): about now from the rows the fold keeps, about an earlier time from the
// purchases and facts then.
func ValueQueries(zone *time.Location) []Query {
	v := valueRoutes{zone: zone}
	page := []Param{limitDoc, cursorDoc}
	return []Query{
		{Path: "/analytics/customers", read: v.customers, Doc: RouteDoc{Summary: "Customers with orders, revenue, AOV, LTV, repeat interval and RFM scores",
			Params: append([]Param{strParam("segment", "RFM segment"), strParam("sort", "order of the list"), asOfDoc, explainDoc}, page...),
			Answer: AnyOf{value.CustomersAnswer{}, explain.Answer{}}}, csv: v.exportCustomers},
		{Path: "/contacts/{contactId}/value", read: v.contactValue, Doc: RouteDoc{Summary: "One contact's customer value and RFM scores",
			Params: []Param{asOfDoc, explainDoc, limitDoc, cursorDoc}, Answer: AnyOf{value.ValueAnswer{}, explain.Answer{}},
			Problems: []int{http.StatusNotFound}}},
		{Path: "/analytics/rfm", read: v.rfm, Doc: RouteDoc{Summary: "Customers and revenue per RFM segment, and the R x F grid",
			Params: []Param{asOfDoc, explainDoc, limitDoc, cursorDoc}, Answer: AnyOf{value.RFMAnswer{}, explain.Answer{}}}},
		{Path: "/analytics/repeat-rate", read: v.repeatRate, Doc: RouteDoc{Summary: "Repeat purchase rate by cohort of first purchase",
			Params: []Param{asOfDoc, explainDoc, limitDoc, cursorDoc}, Answer: AnyOf{value.RepeatAnswer{}, explain.Answer{}}}},
		{Path: "/analytics/seasonality", read: v.seasonality, Doc: RouteDoc{Summary: "Orders and revenue per business month of the year",
			Params: []Param{asOfDoc, explainDoc, limitDoc, cursorDoc}, Answer: AnyOf{value.SeasonAnswer{}, explain.Answer{}}}},
		{Path: "/analytics/upsell-candidates", read: v.upsell, Doc: RouteDoc{Summary: "Customers worth an upsell, each with the facts that made it one",
			Params: append([]Param{asOfDoc, explainDoc}, page...), Answer: AnyOf{value.UpsellAnswer{}, explain.Answer{}}}},
		{Path: "/analytics/dormant", read: v.dormant, Doc: RouteDoc{Summary: "Contacts with no activity for days, with their last activity",
			Params: append([]Param{intParamDoc("days", "days without activity (default 90)"), strParam("phase", "lifecycle phase"),
				strParam("owner", "owner"), asOfDoc, explainDoc}, page...),
			Answer: AnyOf{value.DormantAnswer{}, explain.Answer{}}}},
	}
}

type valueRoutes struct{ zone *time.Location }

// GET /v1/analytics/customers?segment=&sort=&limit=&cursor=&as_of=&explain=
func (v valueRoutes) customers(r *http.Request, rd read) (any, error) {
	q := r.URL.Query()
	asOf, err := asOfParam(r, true)
	if err != nil {
		return nil, err
	}
	limit, err := intParam(r, "limit")
	if err != nil {
		return nil, err
	}
	if path := q.Get("explain"); path != "" {
		return value.ExplainCustomers(r.Context(), rd.db, rd.t, v.zone, asOf, path, limit, q.Get("cursor"))
	}
	params := value.CustomersParams{Segment: q.Get("segment"), Sort: q.Get("sort"), Limit: limit, Cursor: q.Get("cursor")}
	// About now a page is the tables' alone but for each customer's recency, which At counts
	// to the as_of: kept while the tables do not change. About a past time it is read.
	kept, err := memoJSON(r.Context(), rd, "customers now", params, func(ctx context.Context) (any, error) {
		return value.QueryCustomersNow(ctx, rd.db, rd.t, v.zone, params)
	})
	if err != nil {
		return nil, err
	}
	if answer, ok := kept.(horizon.Present[value.CustomersAnswer]).At(asOf); ok {
		return answer, nil
	}
	params.AsOf = asOf
	return value.QueryCustomers(r.Context(), rd.db, rd.t, v.zone, params)
}

// GET /v1/contacts/{contactId}/value?as_of=&explain=&limit=&cursor=
func (v valueRoutes) contactValue(r *http.Request, rd read) (any, error) {
	asOf, err := asOfParam(r, true)
	if err != nil {
		return nil, err
	}
	if path := r.URL.Query().Get("explain"); path != "" {
		limit, err := intParam(r, "limit")
		if err != nil {
			return nil, err
		}
		return value.ExplainValue(r.Context(), rd.db, rd.t, v.zone, mux.Vars(r)["contactId"], asOf, path, limit, r.URL.Query().Get("cursor"))
	}
	return value.QueryValue(r.Context(), rd.db, rd.t, v.zone, value.ValueParams{ContactID: mux.Vars(r)["contactId"], AsOf: asOf})
}

// GET /v1/analytics/rfm?as_of=&explain=&limit=&cursor=
func (v valueRoutes) rfm(r *http.Request, rd read) (any, error) {
	asOf, err := asOfParam(r, true)
	if err != nil {
		return nil, err
	}
	if path := r.URL.Query().Get("explain"); path != "" {
		limit, err := intParam(r, "limit")
		if err != nil {
			return nil, err
		}
		return value.ExplainRFM(r.Context(), rd.db, rd.t, asOf, path, limit, r.URL.Query().Get("cursor"))
	}
	// About now the answer is the tables' alone, whatever the as_of: kept while they do not
	// change. About a past time it is read.
	kept, err := rd.memo(r.Context(), "rfm now", func(ctx context.Context) (any, error) {
		return value.QueryRFMNow(ctx, rd.db, rd.t, v.zone)
	})
	if err != nil {
		return nil, err
	}
	if answer, ok := kept.(horizon.Present[value.RFMAnswer]).At(asOf); ok {
		return answer, nil
	}
	return value.QueryRFM(r.Context(), rd.db, rd.t, v.zone, asOf)
}

// GET /v1/analytics/repeat-rate?as_of=&explain=&limit=&cursor=
func (v valueRoutes) repeatRate(r *http.Request, rd read) (any, error) {
	asOf, err := asOfParam(r, true)
	if err != nil {
		return nil, err
	}
	if path := r.URL.Query().Get("explain"); path != "" {
		limit, err := intParam(r, "limit")
		if err != nil {
			return nil, err
		}
		return value.ExplainRepeatRate(r.Context(), rd.db, rd.t, asOf, path, limit, r.URL.Query().Get("cursor"))
	}
	return value.QueryRepeatRate(r.Context(), rd.db, rd.t, v.zone, asOf)
}

// GET /v1/analytics/seasonality?as_of=&explain=&limit=&cursor=
func (v valueRoutes) seasonality(r *http.Request, rd read) (any, error) {
	asOf, err := asOfParam(r, true)
	if err != nil {
		return nil, err
	}
	if path := r.URL.Query().Get("explain"); path != "" {
		limit, err := intParam(r, "limit")
		if err != nil {
			return nil, err
		}
		return value.ExplainSeasonality(r.Context(), rd.db, rd.t, asOf, path, limit, r.URL.Query().Get("cursor"))
	}
	return value.QuerySeasonality(r.Context(), rd.db, rd.t, v.zone, asOf)
}

// GET /v1/analytics/upsell-candidates?as_of=&limit=&cursor=&explain=
func (v valueRoutes) upsell(r *http.Request, rd read) (any, error) {
	asOf, err := asOfParam(r, true)
	if err != nil {
		return nil, err
	}
	limit, err := intParam(r, "limit")
	if err != nil {
		return nil, err
	}
	if path := r.URL.Query().Get("explain"); path != "" {
		return value.ExplainUpsell(r.Context(), rd.db, rd.t, asOf, path, limit, r.URL.Query().Get("cursor"))
	}
	return value.QueryUpsell(r.Context(), rd.db, rd.t, v.zone, value.UpsellParams{AsOf: asOf, Limit: limit,
		Cursor: r.URL.Query().Get("cursor")})
}

// GET /v1/analytics/dormant?days=&phase=&owner=&as_of=&limit=&cursor=&explain=
func (v valueRoutes) dormant(r *http.Request, rd read) (any, error) {
	q := r.URL.Query()
	asOf, err := asOfParam(r, true)
	if err != nil {
		return nil, err
	}
	days, err := intParam(r, "days")
	if err != nil {
		return nil, err
	}
	limit, err := intParam(r, "limit")
	if err != nil {
		return nil, err
	}
	params := value.DormantParams{AsOf: asOf, Days: days, Phase: q.Get("phase"), Owner: q.Get("owner"), Limit: limit, Cursor: q.Get("cursor")}
	if path := q.Get("explain"); path != "" {
		return value.ExplainDormant(r.Context(), rd.db, rd.t, params, path)
	}
	return value.QueryDormant(r.Context(), rd.db, rd.t, v.zone, params)
}
