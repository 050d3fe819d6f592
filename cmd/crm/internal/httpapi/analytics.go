package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/eventcrm/crm/domain"
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
	if !params.KeptAboutNow() {
		return analytics.QueryKPIs(r.Context(), rd.db, rd.t, params)
	}
	aboutNow := params
	aboutNow.AsOf = time.Time{}
	return keptAboutNow(r, rd, zone, asOf, "kpis", aboutNow, params,
		func(ctx context.Context) (horizon.Present[analytics.KPIAnswer], error) {
			return analytics.QueryKPIsNow(ctx, rd.db, rd.t, params)
		},
		func(ctx context.Context) (any, error) { return analytics.QueryKPIs(ctx, rd.db, rd.t, params) })
}

// keptAboutNow answers a question about now from its present (see horizon.Present), kept
// while the tables do not change under the question without its as_of (aboutNow) and the
// business date of asOf: the answer is the tables' and the date's alone for every as_of of
// that date from the horizon on. Before the horizon it is read, and an as_of asked for
// (not the default, the time of the request) is kept under the whole question (params):
// that answer is the tables' alone too.
func keptAboutNow[A any](r *http.Request, rd read, zone *time.Location, asOf time.Time, what string, aboutNow, params any,
	now func(context.Context) (horizon.Present[A], error), read func(context.Context) (any, error)) (any, error) {
	date := domain.DateIn(asOf, period.Zone(zone))
	kept, err := memoJSON(r.Context(), rd, what+" now "+string(date), aboutNow, func(ctx context.Context) (any, error) { return now(ctx) })
	if err != nil {
		return nil, err
	}
	if answer, ok := kept.(horizon.Present[A]).At(asOf); ok {
		return answer, nil
	}
	if !r.URL.Query().Has("as_of") {
		return read(r.Context())
	}
	return memoJSON(r.Context(), rd, what, params, read)
}

// memoJSON is rd.memo of the question named by what and params in JSON.
func memoJSON(ctx context.Context, rd read, what string, params any, compute func(ctx context.Context) (any, error)) (any, error) {
	question, err := json.Marshal(params)
	if err != nil {
		return nil, fmt.Errorf("%s question: %w", what, err)
	}
	return rd.memo(ctx, what+" "+string(question), compute)
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
	if !params.KeptAboutNow() {
		return analytics.QueryForecast(r.Context(), rd.db, rd.t, params)
	}
	aboutNow := params
	aboutNow.AsOf = time.Time{}
	return keptAboutNow(r, rd, zone, asOf, "forecast", aboutNow, params,
		func(ctx context.Context) (horizon.Present[analytics.ForecastAnswer], error) {
			return analytics.QueryForecastNow(ctx, rd.db, rd.t, params)
		},
		func(ctx context.Context) (any, error) { return analytics.QueryForecast(ctx, rd.db, rd.t, params) })
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
