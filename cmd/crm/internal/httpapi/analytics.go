package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/analytics"
	"github.com/eventcrm/crm/projections/horizon"
	"github.com/eventcrm/crm/projections/period"
)

// AnalyticsQueries are the HTTP routes of the sales analytics; periods and business dates
// are taken in zone (the business time zone; UTC when nil).
func AnalyticsQueries(zone *time.Location) []Query {
	explain := []Param{strParam("explain", "path of a figure in the answer: its parts instead of the answer"), limitDoc, cursorDoc}
	return []Query{
		{Path: "/analytics/kpis", read: func(r *http.Request, rd read) (any, error) { return queryKPIs(r, rd, zone) },
			Doc: RouteDoc{Summary: "KPIs per period: leads, conversions, deals, win rates, revenue, cycle times, tasks, activity per owner",
				Params: append([]Param{{Name: "period", Description: "length of a period", Enum: []string{"day", "week", "month", "quarter", "year"}},
					strParam("from", "first business date (YYYY-MM-DD)"), strParam("to", "last business date (YYYY-MM-DD)"),
					strParam("owner", "owner"), strParam("channel", "acquisition channel"), strParam("segment", "segment"), asOfDoc}, explain...),
				Answer: AnyOf{analytics.KPIAnswer{}, analytics.ExplainAnswer{}}},
			csv: func(r *http.Request, rd read, out *csvOut) error { return exportKPIs(r, rd, out, zone) }},
		{Path: "/analytics/forecast", read: func(r *http.Request, rd read) (any, error) { return queryForecast(r, rd, zone) },
			Doc: RouteDoc{Summary: "Open deals by expected close month and owner, weighted per currency, overdue closes apart",
				Params: append([]Param{strParam("owner", "owner"), strParam("from", "first month (YYYY-MM)"), strParam("to", "last month (YYYY-MM)"), asOfDoc}, explain...),
				Answer: AnyOf{analytics.ForecastAnswer{}, analytics.ExplainAnswer{}}}},
		{Path: "/analytics/nps", read: func(r *http.Request, rd read) (any, error) { return queryNPS(r, rd, zone) },
			Doc: RouteDoc{Summary: "NPS per period: responses, promoters, passives, detractors",
				Params: append([]Param{{Name: "period", Description: "length of a period", Enum: []string{"day", "week", "month", "quarter", "year"}},
					strParam("from", "first business date (YYYY-MM-DD)"), strParam("to", "last business date (YYYY-MM-DD)"),
					strParam("owner", "owner"), strParam("segment", "segment"), asOfDoc}, explain...),
				Answer: AnyOf{analytics.NPSAnswer{}, analytics.ExplainAnswer{}}}},
	}
}

// GET /v1/analytics/kpis?period=&from=&to=&owner=&channel=&segment=&as_of=&explain=&limit=&cursor=
func queryKPIs(r *http.Request, rd read, zone *time.Location) (any, error) {
	q := r.URL.Query()
	asOf, err := asOfParam(r, true)
	if err != nil {
		return nil, err
	}
	limit, err := intParam(r, "limit")
	if err != nil {
		return nil, err
	}
	params := analytics.KPIParams{Period: q.Get("period"), From: q.Get("from"), To: q.Get("to"), Owner: q.Get("owner"),
		Channel: q.Get("channel"), Segment: q.Get("segment"), AsOf: asOf, Zone: zone, Explain: q.Get("explain"), Limit: limit,
		Cursor: q.Get("cursor")}
	aboutNow := params
	aboutNow.AsOf = time.Time{}
	return keptAboutNow(r, rd, zone, asOf, "kpis", params, aboutNow, params.KeptAboutNow(), analytics.QueryKPIsNow, analytics.QueryKPIs)
}

// keptAboutNow answers the question params (as of asOf) from its present (see
// horizon.Present) when kept says the tables and the date answer it about now: kept while the
// tables do not change under the question without its as_of (aboutNow) and the business date
// of asOf, the answer for every as_of of that date from the horizon on. Otherwise, or before
// the horizon, it is read; an as_of asked for (not the default, the time of the request) is
// then kept under the whole question, since that answer is the tables' alone too (but with
// two filters or more, or explain, which are read per request).
func keptAboutNow[P, A any](r *http.Request, rd read, zone *time.Location, asOf time.Time, what string, params, aboutNow P, kept bool,
	now func(context.Context, *projections.DB, projections.Tables, P) (horizon.Present[A], error),
	query func(context.Context, *projections.DB, projections.Tables, P) (any, error)) (any, error) {
	read := func(ctx context.Context) (any, error) { return query(ctx, rd.db, rd.t, params) }
	if !kept {
		return read(r.Context())
	}
	date := domain.DateIn(asOf, period.Zone(zone))
	present, err := memoJSON(r.Context(), rd, what+" now "+string(date), aboutNow, func(ctx context.Context) (any, error) {
		return now(ctx, rd.db, rd.t, params)
	})
	if err != nil {
		return nil, err
	}
	if answer, ok := present.(horizon.Present[A]).At(asOf); ok {
		return answer, nil
	}
	if !r.URL.Query().Has("as_of") {
		return read(r.Context())
	}
	return memoJSON(r.Context(), rd, what, params, read)
}

// GET /v1/analytics/forecast?owner=&from=&to=&as_of=&explain=&limit=&cursor=
func queryForecast(r *http.Request, rd read, zone *time.Location) (any, error) {
	q := r.URL.Query()
	asOf, err := asOfParam(r, true)
	if err != nil {
		return nil, err
	}
	limit, err := intParam(r, "limit")
	if err != nil {
		return nil, err
	}
	params := analytics.ForecastParams{Owner: q.Get("owner"), From: q.Get("from"), To: q.Get("to"), AsOf: asOf, Zone: zone,
		Explain: q.Get("explain"), Limit: limit, Cursor: q.Get("cursor")}
	aboutNow := params
	aboutNow.AsOf = time.Time{}
	return keptAboutNow(r, rd, zone, asOf, "forecast", params, aboutNow, params.KeptAboutNow(), analytics.QueryForecastNow,
		analytics.QueryForecast)
}

// GET /v1/analytics/nps?period=&from=&to=&owner=&segment=&as_of=&explain=&limit=&cursor=
func queryNPS(r *http.Request, rd read, zone *time.Location) (any, error) {
	q := r.URL.Query()
	asOf, err := asOfParam(r, true)
	if err != nil {
		return nil, err
	}
	limit, err := intParam(r, "limit")
	if err != nil {
		return nil, err
	}
	return analytics.QueryNPS(r.Context(), rd.db, rd.t, analytics.NPSParams{Period: q.Get("period"), From: q.Get("from"),
		To: q.Get("to"), Owner: q.Get("owner"), Segment: q.Get("segment"), AsOf: asOf, Zone: zone, Explain: q.Get("explain"),
		Limit: limit, Cursor: q.Get("cursor")})
}
