package httpapi

import (
	"net/http"
	"strconv"

	"github.com/gorilla/mux"

	"github.com/eventcrm/crm/projections/leadscore"
)

// LeadScoreQueries are the HTTP routes of the lead scores: the hot list and a contact's
// score with its breakdown.
func LeadScoreQueries() []Query {
	return []Query{
		{Path: "/leads", read: queryLeads, Doc: RouteDoc{Summary: "The hot list: contacts by lead score",
			Params: []Param{{Name: "min_score", Description: "lowest score listed", Type: "number"}, strParam("owner", "owner"),
				strParam("sort", "order of the list (score)"), asOfDoc, limitDoc},
			Answer: leadscore.Leads{}}},
		{Path: "/contacts/{contactId}/score", read: queryContactScore, Doc: RouteDoc{Summary: "One contact's lead score with its breakdown",
			Params: []Param{asOfDoc}, Answer: leadscore.ContactScore{}, Problems: []int{http.StatusNotFound}}},
	}
}

// GET /v1/leads?min_score=&owner=&sort=score&as_of=&limit=
func queryLeads(r *http.Request, rd read) (any, error) {
	q := r.URL.Query()
	asOf, err := asOfParam(r, true)
	if err != nil {
		return nil, err
	}
	limit, err := intParam(r, "limit")
	if err != nil {
		return nil, err
	}
	params := leadscore.LeadParams{AsOf: asOf, Owner: q.Get("owner"), Sort: q.Get("sort"), Limit: limit}
	if v := q.Get("min_score"); v != "" {
		m, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return nil, badField("min_score", "min_score %q is not a number", v)
		}
		params.MinScore = &m
	}
	return badQuery(leadscore.QueryLeads(r.Context(), rd.db, rd.t, params))
}

// GET /v1/contacts/{contactId}/score?as_of=
func queryContactScore(r *http.Request, rd read) (any, error) {
	asOf, err := asOfParam(r, true)
	if err != nil {
		return nil, err
	}
	return leadscore.QueryContact(r.Context(), rd.db, rd.t, mux.Vars(r)["contactId"], asOf)
}
