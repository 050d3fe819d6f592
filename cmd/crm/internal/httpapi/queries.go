package httpapi

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/projections/board"
	"github.com/eventcrm/crm/projections/churn"
	"github.com/eventcrm/crm/projections/directory"
	"github.com/eventcrm/crm/projections/explain"
	"github.com/eventcrm/crm/projections/journey"
	"github.com/eventcrm/crm/projections/tasks"
	"github.com/eventcrm/crm/projections/timeline"
)

// Query is an HTTP route of a read model: GET /v1 + Path, answered from the tables of the
// read model it is listed with (cmd/crm/internal/readmodels lists each read model once,
// with its queries).
//
// Doc describes it for the OpenAPI description: its parameters and a value of its answer's
// type (the answer is wrapped in ReadAnswer, and the freshness and time-travel parameters
// are added, by MountReadModels).
type Query struct {
	Path string
	read readFunc
	Doc  RouteDoc
	// csv is the route's CSV form when it needs more than csvExports holds (the business
	// time zone).
	csv csvExport
}

// Queries are the queries of one read model, named by its projection.
type Queries struct {
	Projection string
	Routes     []Query
}

// BoardQueries are the HTTP routes of the pipeline board.
func BoardQueries() []Query {
	return []Query{{Path: "/pipeline/board", read: queryBoard, Doc: RouteDoc{Summary: "The pipeline board: open deals by stage",
		Params: []Param{asOfDoc, strParam("owner", "only this owner's deals"), strParam("stage", "only this stage"), limitDoc, cursorDoc,
			explainDoc},
		Answer: AnyOf{board.Answer{}, explain.Answer{}}}}}
}

// JourneyQueries are the HTTP routes of the journeys.
func JourneyQueries() []Query {
	return []Query{
		{Path: "/journeys/{contactId}", read: queryJourney, Doc: RouteDoc{Summary: "One contact's journey through the phases",
			Params: []Param{asOfDoc}, Answer: journey.ContactAnswer{}}},
		{Path: "/analytics/journey-map", read: queryJourneyMap, Doc: RouteDoc{Summary: "The journey map: how contacts move between phases",
			Params: []Param{strParam("cohort", "creation month of the contacts (YYYY-MM)"), strParam("channel", "acquisition channel"),
				strParam("owner", "owner"), strParam("segment", "segment"), asOfDoc, boolParam("by_stage", "split the deal phases by stage"),
				explainDoc, limitDoc, cursorDoc},
			Answer: AnyOf{journey.Answer{}, explain.Answer{}}}},
	}
}

// ChurnQueries are the HTTP routes of the churn points.
func ChurnQueries() []Query {
	return []Query{{Path: "/analytics/churn-points", read: queryChurnPoints, Doc: RouteDoc{Summary: "Where contacts are lost",
		Params: []Param{asOfDoc, strParam("cohort", "creation month of the contacts (YYYY-MM)"), strParam("channel", "acquisition channel"),
			intParamDoc("dormant_days", "days without activity that make a contact dormant"), limitDoc, cursorDoc, explainDoc},
		Answer: AnyOf{churn.Answer{}, explain.Answer{}}}}}
}

// TimelineQueries are the HTTP routes of the customer timeline; open tasks are judged
// overdue against business dates in zone (the business time zone; UTC when nil).
func TimelineQueries(zone *time.Location) []Query {
	return []Query{{Path: "/contacts/{contactId}/timeline",
		read: func(r *http.Request, rd read) (any, error) { return queryTimeline(r, rd, zone) },
		Doc: RouteDoc{Summary: "One contact's timeline, newest first",
			Params: []Param{strParam("types", "comma-separated entry types to keep"), strParam("before", "the next_before of the previous page"), limitDoc},
			Answer: timeline.Answer{}}}}
}

// TasksQueries are the HTTP routes of the tasks; overdue is judged against business dates
// in zone (the business time zone; UTC when nil).
func TasksQueries(zone *time.Location) []Query {
	return []Query{{Path: "/tasks",
		read: func(r *http.Request, rd read) (any, error) { return queryTasks(r, rd, zone) },
		Doc: RouteDoc{Summary: "Tasks, with those overdue flagged",
			Params: []Param{strParam("assignee", "assignee"), strParam("contact_id", "one contact's tasks"), strParam("status", "open, done, cancelled or overdue"),
				strParam("due_from", "first due date (YYYY-MM-DD)"), strParam("due_to", "last due date (YYYY-MM-DD)"), asOfDoc, limitDoc, cursorDoc},
			Answer: tasks.Answer{}}}}
}

// GET /v1/pipeline/board?as_of=&owner=&stage=&limit=&cursor=&explain=
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
	params := board.Params{AsOf: asOf, Owner: q.Get("owner"), Stage: q.Get("stage"), Limit: limit, Cursor: q.Get("cursor"),
		Explain: q.Get("explain")}
	if params.Explain != "" {
		return board.Explain(r.Context(), rd.db, rd.t, params)
	}
	return board.Query(r.Context(), rd.db, rd.t, params)
}

// GET /v1/journeys/{contactId}?as_of=
func queryJourney(r *http.Request, rd read) (any, error) {
	asOf, err := asOfParam(r, false)
	if err != nil {
		return nil, err
	}
	return journey.QueryContact(r.Context(), rd.db, rd.t, journey.ContactParams{ContactID: mux.Vars(r)["contactId"], AsOf: asOf})
}

// GET /v1/analytics/journey-map?cohort=&channel=&owner=&segment=&as_of=&by_stage=&explain=&limit=&cursor=
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
	limit, err := intParam(r, "limit")
	if err != nil {
		return nil, err
	}
	params := journey.Params{Cohort: q.Get("cohort"), Channel: q.Get("channel"),
		Owner: q.Get("owner"), Segment: q.Get("segment"), AsOf: asOf, ByStage: byStage,
		Explain: q.Get("explain"), Limit: limit, Cursor: q.Get("cursor")}
	return memoJSON(r.Context(), rd, "journey-map", params, func(ctx context.Context) (any, error) {
		if params.Explain != "" {
			return journey.Explain(ctx, rd.db, rd.t, params)
		}
		return journey.Query(ctx, rd.db, rd.t, params)
	})
}

// GET /v1/analytics/churn-points?as_of=&cohort=&channel=&dormant_days=&limit=&cursor=&explain=
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
	params := churn.Params{AsOf: asOf, Cohort: q.Get("cohort"), Channel: q.Get("channel"),
		DormantDays: dormant, Limit: limit, Cursor: q.Get("cursor"), Explain: q.Get("explain")}
	if params.Explain != "" {
		return churn.Explain(r.Context(), rd.db, rd.t, params)
	}
	return churn.Query(r.Context(), rd.db, rd.t, params)
}

// GET /v1/contacts/{contactId}/timeline?types=&before=&limit=
//
// Open tasks on it are judged overdue now (or at the moment a time-travel question is about).
func queryTimeline(r *http.Request, rd read, zone *time.Location) (any, error) {
	q := r.URL.Query()
	limit, err := intParam(r, "limit")
	if err != nil {
		return nil, err
	}
	params := timeline.Params{ContactID: mux.Vars(r)["contactId"], Before: q.Get("before"), Limit: limit, Now: now(r), Zone: zone}
	if v := q.Get("types"); v != "" {
		params.Types = strings.Split(v, ",")
	}
	return timeline.Query(r.Context(), rd.db, rd.t, params)
}

// GET /v1/tasks?assignee=&contact_id=&status=&due_from=&due_to=&as_of=&limit=&cursor=
func queryTasks(r *http.Request, rd read, zone *time.Location) (any, error) {
	q := r.URL.Query()
	asOf, err := asOfParam(r, true)
	if err != nil {
		return nil, err
	}
	limit, err := intParam(r, "limit")
	if err != nil {
		return nil, err
	}
	return tasks.Query(r.Context(), rd.db, rd.t, tasks.Params{AsOf: asOf, Assignee: q.Get("assignee"),
		ContactID: q.Get("contact_id"), Status: q.Get("status"), DueFrom: q.Get("due_from"), DueTo: q.Get("due_to"),
		Limit: limit, Cursor: q.Get("cursor"), Zone: zone})
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

// DirectoryQueries are the HTTP routes of the directory: the contacts, deals and accounts
// lists and an account's roll-ups. They answer what the read model holds now, or at a past
// log position (at_position, known_at); as_of is refused, since the lists keep each record's
// present state and no business-time history.
func DirectoryQueries() []Query {
	return []Query{
		{Path: "/contacts", read: queryContacts, Doc: RouteDoc{Summary: "The contacts list", Answer: directory.Contacts{},
			Params: []Param{strParam("q", "text in the name, email, phone or company"), strParam("phase", "phase"), strParam("owner", "owner"),
				strParam("segment", "segment"), strParam("channel", "acquisition channel"), strParam("account_id", "one account's contacts"),
				strParam("opted_out", "true, false or a consent channel"), strParam("created_from", "RFC 3339 time or date, inclusive"),
				strParam("created_to", "RFC 3339 time or date, inclusive"), strParam("sort", "name, created, last_activity or phase; - first for descending"),
				limitDoc, cursorDoc}}},
		{Path: "/deals", read: queryDeals, Doc: RouteDoc{Summary: "The deals list", Answer: directory.Deals{},
			Params: []Param{strParam("status", "open, won or lost"), strParam("stage", "stage"), strParam("owner", "owner"),
				strParam("contact_id", "one contact's deals"), strParam("account_id", "one account's deals"), strParam("q", "text in the title"),
				strParam("expected_close_from", "date, inclusive"), strParam("expected_close_to", "date, inclusive"),
				strParam("closed_from", "date, inclusive"), strParam("closed_to", "date, inclusive"), strParam("sort", "sort key; - first for descending"),
				limitDoc, cursorDoc}}},
		{Path: "/accounts", read: queryAccounts, Doc: RouteDoc{Summary: "The accounts list", Answer: directory.Accounts{},
			Params: []Param{strParam("q", "text in the name or domain"), strParam("sort", "sort key; - first for descending"), limitDoc, cursorDoc}}},
		{Path: "/accounts/{accountId}/summary", read: queryAccountSummary, Doc: RouteDoc{Summary: "One account's roll-ups",
			Answer: directory.AccountSummary{}, Problems: []int{http.StatusNotFound}}},
	}
}

// GET /v1/contacts?q=&phase=&owner=&segment=&channel=&account_id=&opted_out=&created_from=
// &created_to=&sort=&limit=&cursor=
func queryContacts(r *http.Request, rd read) (any, error) {
	q := r.URL.Query()
	limit, err := listParams(r)
	if err != nil {
		return nil, err
	}
	p := contactParams(q)
	p.Limit, p.Cursor = limit, q.Get("cursor")
	return badQuery(directory.QueryContacts(r.Context(), rd.db, rd.t, p))
}

// contactParams are the filters and sort of a contacts question (JSON page or CSV export).
func contactParams(q url.Values) directory.ContactParams {
	return directory.ContactParams{
		Q: q.Get("q"), Phase: q.Get("phase"), Owner: q.Get("owner"), Segment: q.Get("segment"),
		Channel: q.Get("channel"), AccountID: q.Get("account_id"), OptedOut: q.Get("opted_out"),
		CreatedFrom: q.Get("created_from"), CreatedTo: q.Get("created_to"), Sort: q.Get("sort"),
	}
}

// GET /v1/deals?status=&stage=&owner=&contact_id=&account_id=&q=&expected_close_from=
// &expected_close_to=&closed_from=&closed_to=&sort=&limit=&cursor=
func queryDeals(r *http.Request, rd read) (any, error) {
	q := r.URL.Query()
	limit, err := listParams(r)
	if err != nil {
		return nil, err
	}
	p := dealParams(q)
	p.Limit, p.Cursor, p.At = limit, q.Get("cursor"), now(r)
	return badQuery(directory.QueryDeals(r.Context(), rd.db, rd.t, p))
}

// dealParams are the filters and sort of a deals question (JSON page or CSV export).
func dealParams(q url.Values) directory.DealParams {
	return directory.DealParams{
		Status: q.Get("status"), Stage: q.Get("stage"), Owner: q.Get("owner"), ContactID: q.Get("contact_id"),
		AccountID: q.Get("account_id"), Q: q.Get("q"),
		ExpectedCloseFrom: q.Get("expected_close_from"), ExpectedCloseTo: q.Get("expected_close_to"),
		ClosedFrom: q.Get("closed_from"), ClosedTo: q.Get("closed_to"), Sort: q.Get("sort"),
	}
}

// GET /v1/accounts?q=&sort=&limit=&cursor=
func queryAccounts(r *http.Request, rd read) (any, error) {
	q := r.URL.Query()
	limit, err := listParams(r)
	if err != nil {
		return nil, err
	}
	return badQuery(directory.QueryAccounts(r.Context(), rd.db, rd.t, directory.AccountParams{
		Q: q.Get("q"), Sort: q.Get("sort"), Limit: limit, Cursor: q.Get("cursor"),
	}))
}

// GET /v1/accounts/{accountId}/summary
//
// The open pipeline is weighed with the stage probabilities in force now (or at the moment a
// time-travel question is about).
func queryAccountSummary(r *http.Request, rd read) (any, error) {
	if _, err := listParams(r); err != nil {
		return nil, err
	}
	return directory.QuerySummary(r.Context(), rd.db, rd.t, mux.Vars(r)["accountId"], now(r))
}

// listParams refuses as_of, which the directory cannot answer, and reads limit.
func listParams(r *http.Request) (int, error) {
	if r.URL.Query().Has("as_of") {
		return 0, badField("as_of", "the directory keeps present state only: ask a past log position with at_position or known_at")
	}
	return intParam(r, "limit")
}

// badQuery answers a list's refusal of a parameter as what it is, a bad query parameter
// (400 naming it): the lists take no value the domain decides on.
func badQuery[T any](answer T, err error) (any, error) {
	if de := (*domain.Error)(nil); errors.As(err, &de) && de.Code == domain.CodeInvalid {
		return nil, badField(de.Field, "%s", de.Error())
	}
	if err != nil {
		return nil, err
	}
	return answer, nil
}
