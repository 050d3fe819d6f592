package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"

	"github.com/eventcrm/crm/projections/board"
	"github.com/eventcrm/crm/projections/churn"
	"github.com/eventcrm/crm/projections/journey"
)

// Query is an HTTP route of a read model: GET /v1 + Path, answered from the tables of the
// read model it is listed with (cmd/crm/internal/readmodels lists each read model once,
// with its queries).
type Query struct {
	Path string
	read readFunc
}

// Queries are the queries of one read model, named by its projection.
type Queries struct {
	Projection string
	Routes     []Query
}

// BoardQueries are the HTTP routes of the pipeline board.
func BoardQueries() []Query { return []Query{{"/pipeline/board", queryBoard}} }

// JourneyQueries are the HTTP routes of the journeys.
func JourneyQueries() []Query {
	return []Query{{"/journeys/{contactId}", queryJourney}, {"/analytics/journey-map", queryJourneyMap}}
}

// ChurnQueries are the HTTP routes of the churn points.
func ChurnQueries() []Query { return []Query{{"/analytics/churn-points", queryChurnPoints}} }

// GET /v1/pipeline/board?as_of=&owner=&stage=&limit=&cursor=
//
// As of now (or any time after the latest deal event) the board reads the totals and lengths
// of stay the fold keeps and a page of cards per stage; nothing is kept here, since the days
// in stage move with the time asked about. An earlier as_of reads the intervals.
func queryBoard(r *http.Request, rd read) (any, error) {
	q := r.URL.Query()
	asOf, err := asOfParam(r, true)
	if err != nil {
		return nil, err
	}
	limit, err := intParam(r, "limit")
	if err != nil {
		return nil, err
	}
	return board.Query(r.Context(), rd.db, rd.t, board.Params{AsOf: asOf, Owner: q.Get("owner"), Stage: q.Get("stage"),
		Limit: limit, Cursor: q.Get("cursor")})
}

// GET /v1/journeys/{contactId}?as_of=
func queryJourney(r *http.Request, rd read) (any, error) {
	asOf, err := asOfParam(r, false)
	if err != nil {
		return nil, err
	}
	return journey.QueryContact(r.Context(), rd.db, rd.t, journey.ContactParams{ContactID: mux.Vars(r)["contactId"], AsOf: asOf})
}

// GET /v1/analytics/journey-map?cohort=&channel=&owner=&segment=&as_of=&by_stage=
//
// The answer depends on the tables and the parameters only: it is read once per state.
func queryJourneyMap(r *http.Request, rd read) (any, error) {
	q := r.URL.Query()
	asOf, err := asOfParam(r, false)
	if err != nil {
		return nil, err
	}
	byStage := false
	if v := q.Get("by_stage"); v != "" {
		if byStage, err = strconv.ParseBool(v); err != nil {
			return nil, badField("by_stage", "by_stage %q is not true or false", v)
		}
	}
	params := journey.Params{Cohort: q.Get("cohort"), Channel: q.Get("channel"),
		Owner: q.Get("owner"), Segment: q.Get("segment"), AsOf: asOf, ByStage: byStage}
	question, err := json.Marshal(params)
	if err != nil {
		return nil, fmt.Errorf("journey map question: %w", err)
	}
	return rd.memo(r.Context(), "journey-map "+string(question), func(ctx context.Context) (any, error) {
		return journey.Query(ctx, rd.db, rd.t, params)
	})
}

// GET /v1/analytics/churn-points?as_of=&cohort=&channel=&dormant_days=&limit=&cursor=
//
// As of now (or any time after the latest event in the tables) the churn points read the
// counts the fold keeps, a few hundred rows, and count dormancy from the recently active
// contacts: nothing is kept here, since dormancy moves with the time asked about.
func queryChurnPoints(r *http.Request, rd read) (any, error) {
	q := r.URL.Query()
	asOf, err := asOfParam(r, true)
	if err != nil {
		return nil, err
	}
	dormant, err := intParam(r, "dormant_days")
	if err != nil {
		return nil, err
	}
	limit, err := intParam(r, "limit")
	if err != nil {
		return nil, err
	}
	return churn.Query(r.Context(), rd.db, rd.t, churn.Params{AsOf: asOf, Cohort: q.Get("cohort"), Channel: q.Get("channel"),
		DormantDays: dormant, Limit: limit, Cursor: q.Get("cursor")})
}

// asOfParam parses ?as_of=RFC3339 (business time). Without it, a query that needs a time is
// asked as of now: what is known now, about now; the others answer for everything known.
func asOfParam(r *http.Request, defaultNow bool) (time.Time, error) {
	v := r.URL.Query().Get("as_of")
	if v == "" {
		if defaultNow {
			return now(r), nil
		}
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, badField("as_of", "as_of %q is not an RFC 3339 time", v)
	}
	return t.UTC(), nil
}

// intParam parses an optional integer query parameter (0 when absent); the read model
// checks its range.
func intParam(r *http.Request, name string) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, badField(name, "%s %q is not an integer", name, v)
	}
	return n, nil
}
