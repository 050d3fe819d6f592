package httpapi

import (
	"net/http"
	"time"

	"github.com/eventcrm/crm/projections/analytics"
)

// AnalyticsQueries are the HTTP routes of the sales analytics; periods and business dates
// are taken in zone (the business time zone; UTC when nil).
func AnalyticsQueries(zone *time.Location) []Query {
	return []Query{
		{"/analytics/kpis", func(r *http.Request, rd read) (any, error) { return queryKPIs(r, rd, zone) }},
		{"/analytics/forecast", func(r *http.Request, rd read) (any, error) { return queryForecast(r, rd, zone) }},
		{"/analytics/nps", func(r *http.Request, rd read) (any, error) { return queryNPS(r, rd, zone) }},
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
	return analytics.QueryKPIs(r.Context(), rd.db, rd.t, analytics.KPIParams{Period: q.Get("period"), From: q.Get("from"),
		To: q.Get("to"), Owner: q.Get("owner"), Channel: q.Get("channel"), Segment: q.Get("segment"), AsOf: asOf, Zone: zone,
		Explain: q.Get("explain"), Limit: limit, Cursor: q.Get("cursor")})
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
	return analytics.QueryForecast(r.Context(), rd.db, rd.t, analytics.ForecastParams{Owner: q.Get("owner"), From: q.Get("from"),
		To: q.Get("to"), AsOf: asOf, Zone: zone, Explain: q.Get("explain"), Limit: limit, Cursor: q.Get("cursor")})
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
