package httpapi

import (
	"net/http"
	"time"

	"github.com/eventcrm/crm/projections/schedule"
)

// ScheduleQueries are the HTTP routes of the schedule of the time-driven triggers.
func ScheduleQueries() []Query {
	return []Query{{Path: "/reminders", read: queryReminders, Doc: RouteDoc{Summary: "Deadlines of reminders, escalations and dormancy not fired yet, earliest first",
		Params: []Param{timeParam("until", "latest deadline listed (RFC 3339; default a week from now)"), limitDoc},
		Answer: RemindersAnswer{}}}}
}

// RemindersAnswer is the answer of GET /v1/reminders.
type RemindersAnswer struct {
	Until     time.Time           `json:"until"`
	Deadlines []schedule.Deadline `json:"deadlines"`
}

// GET /v1/reminders?until=&limit= — the deadlines not fired yet that fire at or before until
// (default: a week from now), earliest first.
func queryReminders(r *http.Request, rd read) (any, error) {
	until := now(r).Add(7 * 24 * time.Hour)
	if v := r.URL.Query().Get("until"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return nil, badField("until", "until %q is not an RFC 3339 time", v)
		}
		until = t
	}
	limit, err := intParam(r, "limit")
	if err != nil {
		return nil, err
	}
	if limit == 0 {
		limit = 100
	}
	list, err := schedule.Pending(r.Context(), rd.db, rd.t, until, limit)
	return badQuery(RemindersAnswer{Until: until.UTC(), Deadlines: list}, err)
}
